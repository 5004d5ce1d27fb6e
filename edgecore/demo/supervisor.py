"""The demo's services as supervised processes: started in order, watched, stopped cleanly.

Each service is a real ``edgecore`` command in its own process group with its own
log file (``<state>/run/<name>.log``).  If one exits while the demo runs, the demo
stops with that service's last log lines instead of waiting for something that will
never happen; on the way out (normal end, failure or Ctrl-C) every service gets
SIGTERM, then SIGKILL, newest first.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType

import httpx

from edgecore.stack.process import ManagedProcess
from foundation.errors import PermanentError


class DemoFailed(PermanentError):
    """A stage of the demo did not do what it should: the demo exits non-zero."""


def http_ok(url: str, verify: str | bool = True) -> Callable[[], bool]:
    """``url`` answers 200 (``verify``: the CA bundle an https service is checked against)."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=2.0, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    return check


class Supervisor:
    def __init__(self, run_dir: Path, base_env: Mapping[str, str], executable: Sequence[str]) -> None:
        self.run_dir = run_dir
        self.base_env = dict(base_env)
        self.executable = list(executable)
        self._procs: dict[str, ManagedProcess] = {}
        self._starting: dict[str, Callable[[], bool]] = {}

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str],
        ready: Callable[[], bool],
        timeout_s: float = 180.0,
    ) -> ManagedProcess:
        """Start ``edgecore <args>`` and wait until ``ready`` passes (or it dies, or times out)."""
        proc = self.launch(name, args, env, ready)
        self.wait_ready(timeout_s)
        return proc

    def launch(
        self, name: str, args: Sequence[str], env: Mapping[str, str], ready: Callable[[], bool]
    ) -> ManagedProcess:
        """Start ``edgecore <args>`` without waiting: services start side by side, see :meth:`wait_ready`."""
        proc = ManagedProcess(name, self.run_dir, marker="edgecore")
        proc.start([*self.executable, *args], {**self.base_env, **env})
        self._procs[name] = proc
        self._starting[name] = ready
        return proc

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Until every launched service is ready; fail as soon as one dies."""
        deadline = time.monotonic() + timeout_s
        while self._starting:
            for name, ready in list(self._starting.items()):
                if ready():
                    del self._starting[name]
                elif self._procs[name].pid() is None:
                    raise DemoFailed(
                        f"{name} exited during start-up; last log lines:\n{self._procs[name].tail()}"
                    )
            if self._starting and time.monotonic() > deadline:
                name = next(iter(self._starting))
                raise DemoFailed(
                    f"{name} not ready after {timeout_s:.0f} s; last log lines:\n{self._procs[name].tail()}"
                )
            time.sleep(0.25)

    def check(self) -> None:
        """Raise if a service has exited: the demo cannot go on without it."""
        for name, proc in self._procs.items():
            if proc.pid() is None:
                raise DemoFailed(f"{name} exited; last log lines:\n{proc.tail()}")

    def tails(self, lines: int = 60) -> str:
        """Every service's stacks and last log lines: when a stage never completes, one says why.

        Each service writes its threads' stacks to its log on SIGUSR1
        (:func:`edgecore.cli.common.dump_stacks_on_sigusr1`) and goes on.
        """
        for proc in self._procs.values():
            pid = proc.pid()
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGUSR1)
        time.sleep(1.0)
        return "\n".join(
            f"--- {name} ({proc.log_file}):\n{proc.tail(lines)}" for name, proc in self._procs.items()
        )

    def tail(self, name: str, lines: int) -> str:
        return self._procs[name].tail(lines)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs.values())):
            proc.stop(timeout_s=15.0)
        self._procs.clear()
