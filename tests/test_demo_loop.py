"""The main job: `edgecore demo` runs the whole loop, both rounds, and says how it went."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgecore.stack import Stack


def test_the_demo_delivers_a_model_to_each_store_then_a_new_product_to_the_hypermarket(stack: Stack) -> None:
    edgecore = Path(sys.executable).parent / "edgecore"
    done = subprocess.run(
        [str(edgecore), "demo", "--no-install", "--images", "20", "--kiosk-photos", "3", "--timeout", "1500"],
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [
        line
        for line in done.stdout.splitlines()
        if "│" in line and ("hypermarket" in line or "boutique" in line)
    ]
    assert len(rows) == 3, done.stdout
    assert any(line.split("│")[1].strip() == "2" and "KOMBU-GNG recognised" in line for line in rows), (
        done.stdout
    )
