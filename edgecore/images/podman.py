"""Debian's podman with edgecore's own configuration: no Docker engine runs on these machines.

podman reads the files ``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF`` name, so the
project keeps its own next to its other builds (``<cache_dir>/containers``) and never
touches the machine's: host networking (no CNI or netavark setup as root in a sandbox),
the cgroupfs manager (no systemd), Debian's runc, and image storage in the cache.  The
kernel's overlay driver is used where it mounts; vfs (a full copy per layer and per
container) where it does not.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError

CONTAINERS_CONF = """\
# Written by edgecore (edgecore/images/podman.py); podman reads it through CONTAINERS_CONF.
[containers]
netns = "host"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""

STORAGE_CONF = """\
# Written by edgecore (edgecore/images/podman.py); podman reads it through CONTAINERS_STORAGE_CONF.
[storage]
driver = "{driver}"
graphroot = "{graphroot}"
runroot = "{runroot}"
"""


def overlay_mounts(scratch: Path) -> bool:
    """Whether the kernel mounts an overlay on the filesystem of ``scratch`` (root only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        parts = {name: Path(folder) / name for name in ("lower", "upper", "work", "merged")}
        for part in parts.values():
            part.mkdir()
        options = f"lowerdir={parts['lower']},upperdir={parts['upper']},workdir={parts['work']}"
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(parts["merged"])], capture_output=True
        )
        if mounted.returncode != 0:
            return False
        subprocess.run(["umount", str(parts["merged"])], capture_output=True)
        return True


class Podman:
    """The podman command line under edgecore's configuration."""

    def __init__(self, binary: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.binary = binary
        self.env = dict(env)
        self.log_dir = log_dir

    def run(self, args: Sequence[str], what: str, log: str | None = None) -> str:
        """``podman args``; its output, or a StackError with the tail of its log."""
        if log is None:
            result = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True)
            if result.returncode != 0:
                raise StackError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-800:]}")
            return result.stdout
        path = self.log_dir / log
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            logged = subprocess.run([self.binary, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        if logged.returncode != 0:
            tail = "\n".join(path.read_text(errors="replace").splitlines()[-25:])
            raise StackError(f"{what} failed (exit {logged.returncode}); see {path}:\n{tail}")
        return ""

    def image(self, ref: str) -> dict[str, object] | None:
        """``podman image inspect`` of ``ref``, or None when there is no such image here."""
        result = subprocess.run(
            [self.binary, "image", "inspect", ref], env=self.env, capture_output=True, text=True
        )
        if result.returncode != 0:
            return None
        found = json.loads(result.stdout)
        return found[0] if found else None


def _write_if_changed(path: Path, text: str) -> None:
    """Other podman processes may be reading the file: it is replaced whole, and only when it changes."""
    if path.is_file() and path.read_text() == text:
        return
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, path)


@functools.cache
def _probed_driver(scratch: Path) -> Literal["overlay", "vfs"]:
    """overlay where the kernel mounts one, else vfs; probed once per process (a mount and an unmount)."""
    return "overlay" if overlay_mounts(scratch) else "vfs"


def _runroot(folder: Path) -> Path:
    """podman's run-time state: under /run for root, else the user's runtime folder, never a
    guessable folder in /tmp that another user could make first."""
    if os.geteuid() == 0:
        return Path("/run/edgecore-containers")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "edgecore-containers"
    private = folder / "run"
    private.mkdir(mode=0o700, exist_ok=True)
    return private


def podman(stack: StackSettings) -> Podman:
    """podman with the project's configuration files (written on first use)."""
    binary = shutil.which("podman")
    if binary is None:
        raise StackError("`podman` is not on PATH: run `make containers` (Debian's podman, runc, mmdebstrap)")
    folder = stack.cache_dir / "containers"
    folder.mkdir(parents=True, exist_ok=True)
    driver = stack.container_storage_driver
    if driver == "auto":
        driver = _probed_driver(folder / "probe")
    containers_conf = folder / "containers.conf"
    storage_conf = folder / f"storage-{driver}.conf"
    _write_if_changed(containers_conf, CONTAINERS_CONF)
    runroot = _runroot(folder)
    _write_if_changed(
        storage_conf,
        STORAGE_CONF.format(driver=driver, graphroot=folder / f"storage-{driver}", runroot=runroot),
    )
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(containers_conf),
        "CONTAINERS_STORAGE_CONF": str(storage_conf),
    }
    return Podman(binary, env, stack.cache_dir / "logs")
