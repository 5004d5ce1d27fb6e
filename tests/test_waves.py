"""Rollout waves across a fleet of InferenceServices on the real API server.

Three edges take one training run's release: north and south in wave 0, east in wave 1.
KServe's part (the rollouts, the predictors' answers and counters) is played by the
stand-in; the controller connects as the edge overlay's ServiceAccount.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_sync.delivery.controller import EdgeStatus, reconcile
from edge_sync.delivery.edges import EdgeSpec, dump_fleet
from edge_sync.delivery.fleet import ControllerFleet
from edge_sync.delivery.service import build_fleet
from edge_sync.delivery.targets import Target
from edge_sync.delivery.targets.isvc import PINNED, REJECTED_VERSION, SYNCED_AT, VERSION
from edgecore.cli import app, common
from foundation.layout import Layout, edge_model_name
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for
from testkit.delivery import EdgeCluster, deliver, subprocess_env

WAVES = {"north": 0, "south": 0, "east": 1}
RELEASE = {"release": "training-run-7"}


@pytest.fixture
def uris(edge_settings: Settings, store: ObjectStore, cluster: EdgeCluster) -> dict[str, str]:
    """Each edge serves v000001; the run's v000002 of every edge's model waits in its bucket."""
    layout = Layout(edge_settings.buckets)
    new = {}
    for edge in WAVES:
        cluster.add_edge(edge, deliver(store, layout, edge, "v000001").uri, **{VERSION: "v000001"})
        new[edge] = deliver(store, layout, edge, "v000002", metadata=RELEASE).uri
    return new


def _specs(cluster: EdgeCluster) -> list[EdgeSpec]:
    return [cluster.spec(edge).model_copy(update={"wave": wave}) for edge, wave in WAVES.items()]


def _fleet(
    settings: Settings, cluster: EdgeCluster, **rules: float
) -> tuple[ControllerFleet, dict[str, Target]]:
    targets: dict[str, Target] = {edge: cluster.target(edge) for edge in WAVES}
    delivery = {"wave_bake_s": 2.0, "wave_min_predictions": 0, **rules}
    return build_fleet(settings.updated(delivery=delivery), _specs(cluster), targets), targets


def _supervise(fleet: ControllerFleet) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=fleet.supervise, args=(stop,), daemon=True).start()
    return stop


def _halted(fleet: ControllerFleet, edge: str) -> EdgeStatus | None:
    row = {row.edge: row for row in fleet.statuses()}[edge]
    return row if "halted" in row.held else None


def _synced(cluster: EdgeCluster, edge: str) -> datetime:
    return datetime.fromisoformat(cluster.annotations(edge)[SYNCED_AT])


def test_a_later_wave_takes_the_release_only_after_the_first_wave_baked_it(
    edge_settings: Settings, cluster: EdgeCluster, uris: dict[str, str]
) -> None:
    fleet, _ = _fleet(edge_settings, cluster)
    try:
        outcomes = {o.edge: o for o in fleet.reconcile_all()}
        assert outcomes["north"].action == outcomes["south"].action == "rolled-out"
        assert outcomes["east"].action == "held" and "wave 1 waits for wave 0" in outcomes["east"].detail
        assert cluster.storage_uri("east") != uris["east"]

        stop = _supervise(fleet)
        try:
            wait_for(lambda: cluster.annotations("east").get(SYNCED_AT), 60, what="east synced by wave 1")
        finally:
            stop.set()
    finally:
        fleet.close()

    assert cluster.storage_uri("east") == uris["east"]
    baked = max(_synced(cluster, "north"), _synced(cluster, "south")) + timedelta(seconds=2.0)
    assert _synced(cluster, "east") >= baked


def test_a_wave_member_that_fails_its_rollout_halts_the_release_and_its_wave_goes_back(
    edge_settings: Settings, cluster: EdgeCluster, uris: dict[str, str]
) -> None:
    fleet, targets = _fleet(edge_settings, cluster, wave_bake_s=600.0)
    specs = {s.edge: s for s in _specs(cluster)}
    cluster.kserve.fail_uris.add(uris["north"])
    try:
        assert reconcile(specs["south"], targets["south"], fleet.ctx).action == "rolled-out"
        assert reconcile(specs["north"], targets["north"], fleet.ctx).action == "rolled-back"
        east = reconcile(specs["east"], targets["east"], fleet.ctx)
        assert east.action == "held" and "halted: north rolled it back" in east.detail

        stop = _supervise(fleet)
        try:
            wait_for(lambda: cluster.annotations("south").get(VERSION) == "v000001", 60, what="south back")
        finally:
            stop.set()
    finally:
        fleet.close()

    south = cluster.annotations("south")
    assert south[REJECTED_VERSION] == "v000002" and PINNED not in south, "rejected, not pinned"
    assert cluster.uri_changes("east") == [cluster.uri_changes("east")[0]], "east never repointed"


@pytest.mark.parametrize(
    ("unsure", "errors", "why"),
    [(30, 0, "unsure rate 75.0% over 30.0%"), (0, 4, "error rate 9.1% over 1.0%")],
    ids=["unsure rate", "error rate"],
)
def test_a_rate_over_its_limit_while_baking_sends_the_wave_back(
    edge_settings: Settings, cluster: EdgeCluster, uris: dict[str, str], unsure: int, errors: int, why: str
) -> None:
    fleet, _ = _fleet(edge_settings, cluster, wave_bake_s=600.0, wave_min_predictions=20)
    try:
        outcomes = {o.edge: o.action for o in fleet.reconcile_all()}
        assert outcomes == {"north": "rolled-out", "south": "rolled-out", "east": "held"}
        cluster.kserve.traffic(edge_model_name("north"), predictions=40, unsure=unsure, errors=errors)
        cluster.kserve.traffic(edge_model_name("south"), predictions=40, unsure=2)

        stop = _supervise(fleet)
        try:
            for edge in ("north", "south"):
                wait_for(lambda e=edge: cluster.annotations(e).get(VERSION) == "v000001", 60, what=edge)
            east = wait_for(lambda: _halted(fleet, "east"), 30, what="east shown as halted")
        finally:
            stop.set()
    finally:
        fleet.close()

    assert cluster.annotations("north")[REJECTED_VERSION] == "v000002"
    assert east.serving == "v000001" and "rolled it back" in east.held
    assert fleet.outcomes["south"].action == "rolled-back" and why in fleet.outcomes["south"].detail


def test_a_healthy_wave_with_too_few_predictions_keeps_baking(
    edge_settings: Settings, cluster: EdgeCluster, uris: dict[str, str]
) -> None:
    fleet, targets = _fleet(edge_settings, cluster, wave_bake_s=0.0, wave_min_predictions=20)
    specs = {s.edge: s for s in _specs(cluster)}
    try:
        fleet.reconcile_all()
        cluster.kserve.traffic(edge_model_name("north"), predictions=30)
        cluster.kserve.traffic(edge_model_name("south"), predictions=5)
        assert fleet.waves is not None
        fleet.waves.review()

        east = reconcile(specs["east"], targets["east"], fleet.ctx)
    finally:
        fleet.close()

    assert east.action == "held" and "south answered 5 of 20 predictions" in east.detail


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.out, "width", 250)


def test_edges_status_shows_each_edge_s_wave_and_each_wave_s_state(
    edge_settings: Settings, cluster: EdgeCluster, uris: dict[str, str], tmp_path: Path
) -> None:
    fleet, _ = _fleet(edge_settings, cluster, wave_bake_s=600.0)
    try:
        fleet.reconcile_all()
    finally:
        fleet.close()
    path = tmp_path / "edges.json"
    dump_fleet(_specs(cluster), path)
    env = subprocess_env(
        edge_settings, EDGECORE_EDGE_SYNC_WAVE_BAKE_S="600", EDGECORE_EDGE_SYNC_WAVE_MIN_PREDICTIONS="0"
    )

    result = CliRunner().invoke(app, ["edges", "status", "--fleet", str(path)], env=env)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    east = next(line for line in lines if line.startswith("│ east"))
    assert "│ 1 " in east and "wave 1 waits for wave 0" in east
    waves = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if "training-run-7" in line]
    assert waves == [
        ["training-run-7", "0", "2", "2", "baking"],
        ["training-run-7", "1", "1", "0", "waiting"],
    ]


def test_an_edge_synced_on_its_own_still_waits_for_the_earlier_waves_of_its_fleet_file(
    edge_settings: Settings, cluster: EdgeCluster, uris: dict[str, str], tmp_path: Path
) -> None:
    """``edges run --edge east``: a fleet of one edge, whose waves are still the fleet file's."""
    path = tmp_path / "edges.json"
    dump_fleet(_specs(cluster), path)
    settings = edge_settings.updated(delivery={"fleet_file": path, "wave_bake_s": 600.0})
    east = [s for s in _specs(cluster) if s.edge == "east"]

    fleet = build_fleet(settings, east, {"east": cluster.target("east")})
    try:
        (outcome,) = fleet.reconcile_all()
    finally:
        fleet.close()

    assert outcome.action == "held" and "wave 1 waits for wave 0: north does not serve" in outcome.detail
    assert cluster.storage_uri("east") != uris["east"]
