"""``edgecore edges status`` and ``edgecore edges run --once`` on a real fleet file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_sync.delivery.controller import SyncContext, reconcile
from edge_sync.delivery.edges import dump_fleet
from edgecore.cli import app, common
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.delivery import EdgeCluster, deliver, subprocess_env


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.out, "width", 250)


def test_status_shows_serving_and_previous_version_last_sync_and_lag(
    edge_settings: Settings, ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster, tmp_path: Path
) -> None:
    for edge in ("north", "south"):
        cluster.add_edge(edge, deliver(store, ctx.layout, edge, "v000001").uri)
        deliver(store, ctx.layout, edge, "v000002")
    reconcile(cluster.spec("north"), cluster.target("north"), ctx)  # south stays behind
    fleet = tmp_path / "edges.json"
    dump_fleet([cluster.spec("north"), cluster.spec("south")], fleet)

    result = CliRunner().invoke(
        app, ["edges", "status", "--fleet", str(fleet)], env=subprocess_env(edge_settings)
    )

    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    north = [cell.strip() for cell in rows["north"].split("│")[1:-1]]
    south = [cell.strip() for cell in rows["south"].split("│")[1:-1]]
    assert north[1] == f"kserve:{cluster.context}/{cluster.namespace}/north-products"
    assert north[2:5] == ["v000002", "v000001", "v000002"] and north[-1] == "0"
    assert south[2:5] == ["v000001", "-", "v000002"] and south[-1].endswith("s")


def test_run_once_syncs_every_edge_and_exits_nonzero_when_one_was_refused(
    edge_settings: Settings, ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster, tmp_path: Path
) -> None:
    cluster.add_edge("east", deliver(store, ctx.layout, "east", "v000001").uri)
    cluster.add_edge("west", deliver(store, ctx.layout, "west", "v000001").uri)
    v2 = deliver(store, ctx.layout, "east", "v000002").uri
    cluster.kserve.fail_uris.add(deliver(store, ctx.layout, "west", "v000002").uri)
    fleet = tmp_path / "edges.json"
    dump_fleet([cluster.spec("east"), cluster.spec("west")], fleet)

    result = CliRunner().invoke(
        app, ["edges", "run", "--once", "--fleet", str(fleet)], env=subprocess_env(edge_settings)
    )

    assert result.exit_code == 3, result.output
    assert cluster.storage_uri("east") == v2
    assert "rolled-back" in result.output and "rolled-out" in result.output
