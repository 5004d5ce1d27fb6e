"""Finding the toolchains the local stack is built with, and running build commands."""

from __future__ import annotations

import os
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


def unpack_debian(packages: Sequence[str], root: Path, cache_dir: Path, what: str) -> None:
    """Debian's ``packages`` fetched with ``apt-get download`` (no root needed) and unpacked with
    ``dpkg-deb -x`` into ``root``, which appears only once complete."""
    apt_get, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt_get is None or dpkg_deb is None:
        raise StackError(f"no {what} and no apt-get to fetch it: install it (Debian: apt-get install {what})")
    debs = cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    log = cache_dir / "logs" / f"{what}-download.log"
    env = dict(os.environ)
    run_build([apt_get, "download", *packages], env, log, f"apt-get download {what}", cwd=debs)
    staging = root.with_name(f"{root.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for package in packages:
        for deb in sorted(debs.glob(f"{package}_*.deb")):
            run_build([dpkg_deb, "-x", str(deb), str(staging)], env, log, f"unpacking {deb.name}")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)  # a half-unpacked tree is never taken for an installed one


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
