"""``edgecore site``: a store's own services started and stopped, and its gateway's tokens issued."""

from __future__ import annotations

import stat
from pathlib import Path

import psutil
from typer.testing import CliRunner

from edgecore.cli import app
from edgecore.stack import Stack
from edgecore.stack.site import EdgeSite
from foundation.credentials import read_tokens_file
from foundation.settings import Settings


def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["site", *args], env={"EDGECORE_STATE_DIR": str(tmp_path)})
    return result.exit_code, result.output


def _site(tmp_path: Path, edge: str) -> EdgeSite:
    return EdgeSite(Settings(state_dir=tmp_path), edge)


def test_a_token_is_written_for_its_owner_only_and_the_gateway_knows_it(tmp_path: Path) -> None:
    code, output = _run(tmp_path, "token", "--edge", "north", "--device", "kiosk-1")

    assert code == 0, output
    path = tmp_path / "sites" / "north" / "tokens" / "device-kiosk-1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    devices, _ = _site(tmp_path, "north").settings.gateway_tokens_files("north")
    assert read_tokens_file(devices)["kiosk-1"] == [path.read_text().strip()]
    assert path.read_text().strip() not in output, "never printed"


def test_a_second_token_keeps_the_first_valid_beside_it(tmp_path: Path) -> None:
    _run(tmp_path, "token", "--edge", "north", "--staff", "anna")
    first = (tmp_path / "sites" / "north" / "tokens" / "staff-anna").read_text().strip()

    _run(tmp_path, "token", "--edge", "north", "--staff", "anna")

    second = (tmp_path / "sites" / "north" / "tokens" / "staff-anna").read_text().strip()
    _, staff = _site(tmp_path, "north").settings.gateway_tokens_files("north")
    assert read_tokens_file(staff)["anna"] == [first, second]


def test_a_token_for_both_a_device_and_staff_is_a_one_line_error(tmp_path: Path) -> None:
    code, output = _run(tmp_path, "token", "--edge", "north", "--device", "a", "--staff", "b")

    assert code == 2 and output.strip() == "error: name exactly one of --device and --staff"


def test_up_starts_the_store_s_own_minio_and_down_stops_it(stack: Stack, tmp_path: Path) -> None:
    code, output = _run(tmp_path, "up", "--edge", "south", "--no-mqtt")
    assert code == 0, output
    pid = _site(tmp_path, "south").minio.process.pid()
    try:
        assert pid is not None and psutil.pid_exists(pid)
    finally:
        code, output = _run(tmp_path, "down", "--edge", "south")

    assert code == 0 and "minio" in output
    assert _site(tmp_path, "south").minio.process.pid() is None
