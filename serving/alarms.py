"""When a machine's anomalous windows become an alarm: K of its last N, raised once, cleared once.

One window over the threshold is noise as often as a fault; an alarm asks for ``k`` of
a machine's last ``n`` windows (``foundation.sensor_model.SensorModel``) and is raised
once, not per window.  It clears only when none of the last ``n`` is anomalous, so a
machine hovering at the threshold does not flap.  The machines watched are bounded: an
edge that suddenly reports more than ``max_machines`` is refused, not remembered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from foundation.errors import InvalidInput
from foundation.layout import check_name


@dataclass(frozen=True)
class AlarmChange:
    machine: str
    raised: bool
    """True: the alarm was raised by this window; False: it was cleared."""
    anomalous: int
    """Anomalous windows among the last ``of`` when it changed."""
    of: int
    error: float
    """The reconstruction error of the window that changed it."""


@dataclass
class _Machine:
    recent: deque[bool]
    raised: bool = False


@dataclass
class Alarms:
    k: int
    n: int
    max_machines: int = 10_000
    _machines: dict[str, _Machine] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise InvalidInput(f"an alarm needs 1 <= k <= n, not k={self.k} n={self.n}")

    def observe(self, machine: str, anomalous: bool, error: float) -> AlarmChange | None:
        """Record one scored window of ``machine``; the change it makes to its alarm, if any."""
        state = self._machines.get(machine)
        if state is None:
            if len(self._machines) >= self.max_machines:
                raise InvalidInput(f"more than {self.max_machines} machines at one edge")
            state = self._machines[check_name(machine, "machine id")] = _Machine(deque(maxlen=self.n))
        state.recent.append(anomalous)
        count = sum(state.recent)
        if not state.raised and count >= self.k:
            state.raised = True
            return AlarmChange(machine, True, count, self.n, error)
        if state.raised and count == 0:
            state.raised = False
            return AlarmChange(machine, False, count, self.n, error)
        return None

    def raised(self) -> list[str]:
        return sorted(m for m, s in self._machines.items() if s.raised)

    def adopt(self, raised: list[str]) -> None:
        """Alarms that stand from the model version before: not raised again while the fault lasts,
        cleared as any alarm is, once none of this version's last ``n`` windows of the machine is."""
        for machine in raised[: self.max_machines - len(self._machines)]:
            self._machines.setdefault(machine, _Machine(deque(maxlen=self.n))).raised = True
