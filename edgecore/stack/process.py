"""Background processes started by the stack, tracked by pid files.

``down`` must stop only what ``up`` started: a pid file alone is not enough (pids are
reused), so the process's command line must also contain the marker recorded at start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from edgecore.stack.tools import StackError


@dataclass(frozen=True)
class ManagedProcess:
    """One long-running service process: its pid file, log file and identifying marker."""

    name: str
    run_dir: Path
    marker: str

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
            ours = alive and any(self.marker in part for part in proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            ours = False
        if not ours:
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI; Ctrl-C in the shell does not reach it
            )
        self._await_command_line(proc.pid)
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def _await_command_line(self, pid: int, timeout_s: float = 5.0) -> None:
        """Return once the new process shows its command line (or has died).

        Popen can return while the child is still inside execve, whose argv the kernel
        has not published yet: ``/proc/<pid>/cmdline`` is empty for that moment, and
        :meth:`pid` would take the process for a stranger, drop its pid file and leave
        it running with nobody to stop it (seen: a broker "exited during start-up" that
        was in fact listening).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if any(self.marker in part for part in psutil.Process(pid).cmdline()):
                    return
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return  # it died (or is not ours to read): pid() says so, the caller reports
            time.sleep(0.005)

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout_s``; True if a process was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            proc = psutil.Process(pid)
            os.killpg(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except psutil.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                proc.wait(timeout=10)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 40) -> str:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 256 * lines))
                return b"\n".join(fh.read().splitlines()[-lines:]).decode(errors="replace")
        except FileNotFoundError:
            return ""


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, proc: ManagedProcess) -> None:
    """Poll ``check`` until it passes; fail early, with the log tail, if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if proc.pid() is None:
            raise StackError(f"{what} exited during start-up; last log lines:\n{proc.tail()}")
        time.sleep(0.25)
    raise StackError(f"{what} not ready after {timeout_s:.0f}s; last log lines:\n{proc.tail()}")
