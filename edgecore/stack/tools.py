"""Finding the toolchains the local stack is built with, and running build commands."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from foundation.errors import PermanentError


class StackError(PermanentError):
    """The local stack cannot be installed or started; the message says what to do."""


_HOW_TO_INSTALL = {
    "go": "Go 1.24 or newer (Debian: apt-get install golang; or https://go.dev/dl)",
    "java": "a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)",
    "mvn": "Apache Maven (Debian: apt-get install maven)",
}


def require(tool: str) -> str:
    """The path of ``tool``, or a StackError saying what to install."""
    path = shutil.which(tool)
    if path is None:
        raise StackError(f"`{tool}` is not on PATH: install {_HOW_TO_INSTALL[tool]}")
    return path


def run_build(
    argv: Sequence[str], env: Mapping[str, str], log: Path, what: str, cwd: Path | None = None
) -> None:
    """Run a build step with its output in ``log``; on failure show the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        result = subprocess.run(list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise StackError(f"{what} failed (exit {result.returncode}); see {log}:\n{tail}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
