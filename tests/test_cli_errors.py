"""What a user who got a setting or an address wrong sees: one line saying what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EDGECORE = str(Path(sys.executable).parent / "edgecore")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGECORE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def test_a_setting_that_is_not_a_number_is_one_line_naming_its_variable() -> None:
    result = _run("settings", "show", EDGECORE_S3_PORT="abc")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting: EDGECORE_S3_PORT: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_a_setting_out_of_its_range_is_refused() -> None:
    result = _run("settings", "show", EDGECORE_CONFIDENCE_THRESHOLD="2")

    assert result.returncode == 2
    assert "EDGECORE_CONFIDENCE_THRESHOLD: Input should be less than or equal to 1" in result.stderr


def test_the_value_given_is_never_repeated() -> None:
    result = _run("settings", "show", EDGECORE_S3_PORT="hunter2-sesame")

    assert result.returncode == 2 and "hunter2" not in result.stderr + result.stdout


def test_an_unreachable_kfp_api_is_one_line_naming_it() -> None:
    result = _run("pipeline", "run", "--host", "http://127.0.0.1:1")

    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: cannot reach the KFP API at http://127.0.0.1:1 (NewConnectionError): check the host given"
    ]


def test_settings_show_masks_the_alarm_webhook_url_which_often_carries_its_key() -> None:
    url = "https://hooks.example.com/services/T0/B0/key-that-must-not-print"

    result = _run("settings", "show", EDGECORE_ALARM_WEBHOOK_URL=url)

    assert result.returncode == 0, result.stderr
    assert "key-that-must-not-print" not in result.stdout + result.stderr
