"""The demo's own parts: its private world, and supervising the real services it starts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from edgecore.cli.demo import _executable, show, summary
from edgecore.demo.devices import KioskLog
from edgecore.demo.rounds import RoundResult
from edgecore.demo.supervisor import DemoFailed, Supervisor, http_ok
from edgecore.demo.world import World
from edgecore.stack import Stack
from edgecore.stack.certificates import Pki
from edgecore.stack.process import ManagedProcess
from foundation.settings import Settings


def test_the_services_it_starts_read_back_exactly_the_settings_of_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    world = World.create(Settings(state_dir=tmp_path), ["hypermarket", "boutique"], 20.0, 2.0)
    for name in list(os.environ):
        if name.startswith("EDGECORE_"):
            monkeypatch.delenv(name)
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == world.settings


def test_two_runs_share_no_bucket_topic_port_or_state(tmp_path: Path) -> None:
    a, b = (World.create(Settings(state_dir=tmp_path), ["hypermarket"], 0.0, 2.0) for _ in range(2))
    for setting in (
        "EDGECORE_TRAINING_BUCKET",
        "EDGECORE_MODELS_BUCKET",
        "EDGECORE_EDGE_BUCKET_PREFIX",
        "EDGECORE_TOPIC_MODEL_PUBLISHED",
        "EDGECORE_STATE_DIR",
    ):
        assert a.env()[setting] != b.env()[setting]
    site = a.sites["hypermarket"].plan
    ports = [
        a.settings.door.port,
        a.settings.listener.metrics_port,
        *vars(a.edges["hypermarket"]).values(),
        site.s3_port,
        site.mqtt_port,
    ]
    assert len(set(ports)) == len(ports)


def test_each_store_is_a_site_holding_none_of_the_core_s_storage_credentials(tmp_path: Path) -> None:
    world = World.create(Settings(state_dir=tmp_path), ["hypermarket"], 0.0, 2.0)
    site = world.sites["hypermarket"].environment()
    core = world.env()

    assert site["EDGECORE_S3_PORT"] != core["EDGECORE_S3_PORT"]
    assert site["EDGECORE_S3_SECRET_KEY"] != core["EDGECORE_S3_SECRET_KEY"]
    assert core["EDGECORE_S3_SECRET_KEY"] not in site.values()
    assert site["EDGECORE_S3_SECRET_KEY"] not in core.values()


def test_a_service_that_dies_at_start_up_fails_the_demo_with_its_log(tmp_path: Path) -> None:
    with Supervisor(tmp_path, os.environ, _executable()) as sup, pytest.raises(DemoFailed) as failed:
        sup.start("bad", ["edge", "listen", "--launcher", "nonsense"], {}, lambda: False, timeout_s=60)
    assert "bad exited during start-up" in str(failed.value)
    assert "nonsense" in str(failed.value) or "launcher" in str(failed.value)


def _door(sup: Supervisor, world: World) -> ManagedProcess:
    """The run's front door (over TLS with a CA of the test's own)."""
    Pki(world.settings.ca_file.parent).ensure()
    url = f"{world.settings.door.url}/healthz"
    return sup.start("door", ["core", "door"], world.env(), http_ok(url, verify=str(world.settings.ca_file)))


def test_services_are_watched_and_all_stopped_on_the_way_out(tmp_path: Path, stack: Stack) -> None:
    world = World.create(Settings(state_dir=tmp_path), ["shop"], 0.0, 2.0)
    with Supervisor(tmp_path / "run", os.environ, _executable()) as sup:
        proc = _door(sup, world)
        pid = proc.pid()
        assert pid is not None
        sup.check()
    assert proc.pid() is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_services_run_the_edgecore_of_this_environment() -> None:
    assert Path(_executable()[0]).parent == Path(sys.executable).parent


def test_a_stuck_stage_shows_where_each_service_waits_and_leaves_them_running(
    tmp_path: Path, stack: Stack
) -> None:
    world = World.create(Settings(state_dir=tmp_path), ["shop"], 0.0, 2.0)
    with Supervisor(tmp_path / "run", os.environ, _executable()) as sup:
        _door(sup, world)
        report = sup.tails()
        sup.check()
    assert "--- door" in report
    assert "most recent call first" in report


def test_the_summary_keeps_every_cell_on_one_line_in_a_log_file(capsys: pytest.CaptureFixture[str]) -> None:
    note = "KOMBU-GNG recognised 100%, old products 100%; 3 hard examples"
    kiosk = KioskLog(latencies_s=[0.0026], asked=52, right=52)
    show(summary([RoundResult(2, "hypermarket", "v000002", 1.0, 88.0, kiosk, note)]))

    rows = [line for line in capsys.readouterr().out.splitlines() if "hypermarket" in line]
    assert len(rows) == 1 and note in rows[0] and "v000002" in rows[0]
