"""The main job: `edgecore demo` runs the whole loop, both rounds of photos and the machines' story, and
says how it went."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgecore.stack import Stack

# A stage that hangs fails inside the demo (with every service's log tail) well before
# the subprocess limit, and that one well before pytest's: the reason always reaches the report.
STAGE_TIMEOUT_S = 600
DEMO_TIMEOUT_S = 1500


def _why(text: str) -> str:
    """From the demo's error (then the services' stacks and logs) and the story's lines before it,
    else its last lines."""
    start = text.find("error:")
    if start < 0:
        return text[-12000:]
    story = "\n".join(text[:start].splitlines()[-30:])
    return f"{text[start : start + 30000]}\n--- the demo's last lines before the error ---\n{story}"


@pytest.mark.timeout(DEMO_TIMEOUT_S + 120)
def test_the_demo_delivers_a_model_to_each_store_then_a_new_product_then_stops_a_dismissed_alarm(
    stack: Stack, tmp_path: Path
) -> None:
    edgecore = Path(sys.executable).parent / "edgecore"
    output = tmp_path / "demo.log"
    with output.open("w") as log:
        try:
            done = subprocess.run(
                [
                    str(edgecore),
                    "demo",
                    "--no-install",
                    "--kiosk-photos",
                    "3",
                    "--timeout",
                    str(STAGE_TIMEOUT_S),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=DEMO_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not finish in {DEMO_TIMEOUT_S} s:\n{_why(output.read_text())}")
    text = output.read_text()
    assert done.returncode == 0, _why(text)
    rows = [
        line for line in text.splitlines() if "│" in line and ("hypermarket" in line or "boutique" in line)
    ]
    rounds = [line for line in rows if line.split("│")[1].strip() in ("1", "2")]
    machines = [line for line in rows if line not in rounds]
    assert len(rounds) == 3, text
    assert any(line.split("│")[1].strip() == "2" and "KOMBU-GNG recognised" in line for line in rounds), text
    assert len(machines) == 2, text
    assert any("wash dismissed, then not raised again" in line for line in machines), text
