"""The one small interface every edge predictor is driven through.

A target keeps its own state: the serving version, the one before it, the version it
refused, and when the last rollout was confirmed are all read back from the target
itself (InferenceService annotations, the model server's repository), never from the
controller's memory, so a restarted controller picks up exactly where it was killed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from edge_sync.delivery.targets.counters import Counters

SEEN_FOR_S = 10.0
"""How long what ``state()`` read may stand in for a fresh read when ``apply`` follows it."""


@dataclass(frozen=True)
class Deployed:
    """A model version on a target; ``synced_at`` is None while its rollout is unconfirmed."""

    version: str
    uri: str
    synced_at: datetime | None = None


@dataclass(frozen=True)
class TargetState:
    """Everything a sync decides on, read back from the target in one request."""

    current: Deployed | None
    previous: Deployed | None
    rejected: str | None
    pinned: bool = False
    """An operator rolled the target back: it stays on its version until unpinned."""


class Target(Protocol):
    description: str
    local_copy: bool
    """True when the target loads the controller's verified local copy (a file:// URI)
    rather than the edge bucket's copy (an s3:// URI its own storage initializer fetches)."""

    def state(self) -> TargetState:
        """``current()``, ``previous()`` and ``rejected()`` from a single read."""
        ...

    def current(self) -> Deployed | None: ...

    def previous(self) -> Deployed | None: ...

    def rejected(self) -> str | None:
        """The last version this target rolled back from; it is not tried again."""
        ...

    def apply(self, uri: str, version: str) -> Deployed:
        """Serve ``version`` from ``uri`` and confirm it is healthy; idempotent.

        If the target already points at ``uri`` (a rollout a killed controller started)
        nothing is redeployed: only its health is awaited and confirmed.  On failure the
        previous version is restored and :class:`RolloutFailed` raised.
        """
        ...

    def rollback(self, why: str = "an operator rolled it back", pin: bool = True) -> Deployed | None:
        """The previous version back and the current one rejected; an operator's rollback also pins
        the target there (no version is synced to it until :meth:`unpin`), a halted wave's does not."""
        ...

    def unpin(self) -> None:
        """Let the target be synced again (the version rolled back from stays rejected)."""
        ...

    def counters(self) -> Counters | None:
        """What the predictor has answered so far (its /metrics), or None where it cannot be read."""
        ...
