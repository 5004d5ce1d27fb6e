"""The local stack: real MinIO and Kafka processes that `up`, `status` and `down` manage."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from edgecore.cli import app
from edgecore.stack import Stack
from edgecore.stack.kafka import new_cluster_id
from edgecore.stack.process import ManagedProcess
from edgecore.stack.settings import StackSettings
from edgecore.stack.smoke import smoke_check
from edgecore.stack.tools import StackError, require
from foundation.settings import Settings
from testkit.kafka import end_offset


def test_up_on_a_running_stack_is_a_no_op(stack: Stack) -> None:
    before = {s.service: s.pid for s in stack.status()}
    assert stack.up() is False
    after = stack.status()
    assert {s.service: s.pid for s in after} == before
    assert all(s.healthy for s in after)


def test_status_command_prints_a_table_of_healthy_services(stack: Stack) -> None:
    result = CliRunner().invoke(app, ["stack", "status"])
    assert result.exit_code == 0, result.output
    for word in ("kafka", "minio", "127.0.0.1:9092", "yes"):
        assert word in result.output


def test_a_second_stack_on_other_ports_starts_and_down_leaves_no_process(
    settings: Settings, tmp_path: Path
) -> None:
    other = Settings(state_dir=tmp_path / "state").updated(
        s3={"port": 19000}, kafka={"port": 19092, "edge_port": 19094}
    )
    stack = Stack(
        other,
        StackSettings().model_copy(
            update={
                "minio_console_port": 19001,
                "kafka_controller_port": 19093,
                "kube_apiserver_port": 16443,
                "etcd_port": 12379,
                "etcd_peer_port": 12380,
                "registry_port": 15443,
            }
        ),
    )
    services = sorted(svc.name for svc in stack.services())
    try:
        assert stack.up() is True
        pids = [s.pid for s in stack.status()] + [stack.kubernetes.etcd.pid()]
        assert all(s.healthy for s in stack.status())
        assert stack.up() is False
    finally:
        stopped = stack.down()
    assert sorted(stopped) == services and {"kafka", "minio", "kubernetes", "registry"} <= set(services)
    assert not any(
        pid and psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )
    assert [s.pid for s in stack.status()] == [None] * len(services)
    assert (tmp_path / "state" / "minio" / "data").is_dir(), "data is left in place"
    assert stack.down() == [], "a second down has nothing to stop"


def test_a_missing_toolchain_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match=r"`go` is not on PATH: install Go"):
        require("go")
    with pytest.raises(StackError, match="openjdk"):
        require("java")


def test_logs_of_an_unknown_service_is_a_cli_error() -> None:
    result = CliRunner().invoke(app, ["stack", "logs", "redis"])
    assert result.exit_code == 2
    assert "unknown service" in result.output


def test_a_process_it_starts_is_known_as_its_own_at_once(tmp_path: Path) -> None:
    """Right after start, the kernel may not show the child's command line yet: not a stranger."""
    marker = str(tmp_path / "marker.conf")
    proc = ManagedProcess("sleeper", tmp_path / "run", marker=marker)
    for _ in range(40):
        pid = proc.start([sys.executable, "-c", "import time; time.sleep(30)", marker], {})
        try:
            assert proc.pid() == pid
        finally:
            assert proc.stop()


def test_the_smoke_check_round_trips_on_its_own_topic_and_leaves_the_real_ones_alone(
    stack: Stack, settings: Settings
) -> None:
    real_topics = [settings.kafka.topic_training_data_ready, settings.kafka.topic_model_published]
    before = [end_offset(settings.kafka, topic) for topic in real_topics]
    smoke_before = end_offset(settings.kafka, settings.kafka.topic_smoke)

    report = smoke_check(settings)

    assert settings.kafka.topic_smoke in report["kafka"]
    assert end_offset(settings.kafka, settings.kafka.topic_smoke) == smoke_before + 1
    assert [end_offset(settings.kafka, topic) for topic in real_topics] == before


def test_a_kraft_cluster_id_never_starts_with_a_dash_which_the_storage_tool_takes_for_an_option() -> None:
    ids = [new_cluster_id() for _ in range(2000)]  # one random id in 64 would

    assert not [i for i in ids if i.startswith("-")]
    assert {len(i) for i in ids} == {22} and len(set(ids)) == len(ids)
