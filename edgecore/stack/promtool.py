"""``promtool``, to unit-test the alert rules the project ships: Debian's Prometheus package.

A system ``promtool`` is used when present; otherwise Debian's ``prometheus`` package is
fetched with ``apt-get download`` and unpacked into the per-user cache, as Mosquitto is
(19 MB, seconds; building Prometheus from the Go module proxy takes minutes on 2 cores).
Only ``promtool test rules`` is used: nothing here runs a Prometheus server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, unpack_debian

SYSTEM_BINARY = Path("/usr/bin/promtool")


class PromtoolInstall:
    def __init__(self, stack: StackSettings) -> None:
        self.stack = stack
        self.root = stack.cache_dir / "prometheus"

    def binary(self) -> Path | None:
        if SYSTEM_BINARY.exists():
            return SYSTEM_BINARY
        cached = self.root / "usr" / "bin" / "promtool"
        return cached if cached.exists() else None

    def install(self) -> bool:
        """Unpack Debian's prometheus into the cache unless a promtool is there; True if unpacked."""
        if self.binary() is not None:
            return False
        unpack_debian(["prometheus"], self.root, self.stack.cache_dir, "prometheus")
        return True

    def test_rules(self, tests: Path) -> subprocess.CompletedProcess[str]:
        """``promtool test rules <tests>``: its exit code and what it printed."""
        binary = self.binary()
        if binary is None:
            raise StackError("promtool is not installed: run `edgecore stack install`")
        return subprocess.run(
            [str(binary), "test", "rules", str(tests)], capture_output=True, text=True, timeout=120
        )
