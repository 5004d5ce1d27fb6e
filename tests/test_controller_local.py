"""The local target against the real edge model server (``python -m serving.server``).

The models are real (tiny CNNs trained in seconds by ``serving_support``), so "answers
wrongly" means a version whose labels are out of order really predicts the wrong SKU.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_sync.delivery.controller import SyncContext, reconcile
from edge_sync.delivery.edges import EdgeSpec, LocalSpec
from edge_sync.delivery.metrics import SyncMetrics
from edge_sync.delivery.targets.address import VersionedInferenceProbe
from edge_sync.delivery.targets.local import LocalServerTarget
from foundation.assortment import add_products
from foundation.catalogue import Product
from foundation.layout import LABELS_FILE, MANIFEST, TFLITE_FILE, Layout, edge_model_name
from foundation.manifest import Manifest, entries_for_dir
from foundation.pointer import ModelPointer
from foundation.settings import Settings
from foundation.storage.reader import BucketReader
from foundation.storage.store import ObjectStore
from testkit.serving import (
    LABELS,
    Server,
    b64,
    catalogue,
    kiosk_jpeg,
    probe_photos,
    running_server,
    upload_version,
    write_version,
)

EDGE = "corner-shop"
MODEL = edge_model_name(EDGE)


def _rewrite_manifest(root: Path, labels: list[str]) -> Path:
    old = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
    new = old.model_copy(update={"files": entries_for_dir(root), "labels": labels})
    (root / MANIFEST).write_bytes(new.to_bytes())
    return root


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1, v2: good models; v3: labels out of order (answers wrongly); v4: does not load."""
    tmp = tmp_path_factory.mktemp("versions")
    good1 = write_version(tmp / "v000001", EDGE, "v000001", seed=0)
    good2 = write_version(tmp / "v000002", EDGE, "v000002", seed=1)
    wrong = write_version(tmp / "v000003", EDGE, "v000003", seed=1)
    rotated = LABELS[1:] + LABELS[:1]
    (wrong / LABELS_FILE).write_text(json.dumps(rotated))
    _rewrite_manifest(wrong, rotated)
    broken = write_version(tmp / "v000004", EDGE, "v000004", seed=1)
    (broken / TFLITE_FILE).write_bytes(b"not a flatbuffer " * 512)
    _rewrite_manifest(broken, LABELS)
    return {"v000001": good1, "v000002": good2, "v000003": wrong, "v000004": broken}


@pytest.fixture
def probes(tmp_path: Path) -> Path:
    return probe_photos(tmp_path / "probes", 900_000)


def _deliver(ctx: SyncContext, store: ObjectStore, versions: dict[str, Path], version: str) -> str:
    return upload_version(store, ctx.layout.edge_model_prefix(EDGE, MODEL, version), versions[version])


@pytest.fixture(scope="module")
def shop(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One edge bucket and state folder for the module (the server is started once)."""
    return Settings().updated(
        state_dir=tmp_path_factory.mktemp("shop") / "state",
        buckets={"edge_prefix": f"t-{uuid.uuid4().hex[:10]}-"},
    )


@pytest.fixture(scope="module")
def running(
    shop: Settings, versions: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, store: ObjectStore
) -> Iterator[Server]:
    ctx = _context(shop, tmp_path_factory.mktemp("setup"))
    _serve_v1(ctx, store, versions)
    with running_server(
        shop,
        EDGE,
        tmp_path_factory.mktemp("server"),
        capture=False,
        edge_bucket_prefix=shop.buckets.edge_prefix,
    ) as srv:
        yield srv


def _context(settings: Settings, workdir: Path) -> SyncContext:
    return SyncContext(BucketReader.connect(settings.s3), Layout(settings.buckets), SyncMetrics(), workdir, 4)


def _serve_v1(ctx: SyncContext, store: ObjectStore, versions: dict[str, Path]) -> None:
    """Only v1 delivered, and confirmed by an earlier sync."""
    keep = ctx.layout.edge_model_prefix(EDGE, MODEL, "v000001").key
    store.ensure_bucket(ctx.layout.edge_bucket(EDGE))
    for obj in store.list(ctx.layout.edge_models_prefix(EDGE, MODEL)):
        if not obj.location.key.startswith(keep):
            store.delete(obj.location)
    uri = _deliver(ctx, store, versions, "v000001")
    pointer = ModelPointer(model=MODEL, version="v000001", uri=uri, synced_at=datetime.now(UTC))
    store.put_bytes(ctx.layout.edge_model_pointer(EDGE, MODEL), pointer.to_bytes())


@pytest.fixture
def ctx(shop: Settings, versions: dict[str, Path], tmp_path: Path) -> SyncContext:
    return _context(shop, tmp_path / "edge-sync")


@pytest.fixture
def server(running: Server, ctx: SyncContext, store: ObjectStore, versions: dict[str, Path]) -> Server:
    """The edge server answering with v1 at the start of each test."""
    _serve_v1(ctx, store, versions)
    httpx.post(f"{running.url}/v2/repository/models/{MODEL}/load", timeout=120).raise_for_status()
    assert _answering_version(running) == "v000001"
    return running


def _spec(server: Server, probes: Path) -> EdgeSpec:
    return EdgeSpec(edge=EDGE, target=LocalSpec(url=server.url, probes=probes))


def _target(server: Server, probes: Path, ctx: SyncContext, store: ObjectStore) -> LocalServerTarget:
    return LocalServerTarget(server.url, EDGE, MODEL, probes, store, ctx.layout, 120)


def _answering_version(server: Server) -> str:
    body = {"instances": [{"image_bytes": {"b64": b64(kiosk_jpeg("LIME-GREEN", 7))}}]}
    resp = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", json=body, timeout=30)
    resp.raise_for_status()
    return str(resp.json()["model_version"])


def test_a_new_version_is_loaded_checked_with_probes_and_answers(
    ctx: SyncContext, store: ObjectStore, versions: dict[str, Path], server: Server, probes: Path
) -> None:
    _deliver(ctx, store, versions, "v000002")
    target = _target(server, probes, ctx, store)

    outcome = reconcile(_spec(server, probes), target, ctx)

    assert (outcome.action, outcome.serving) == ("rolled-out", "v000002")
    assert _answering_version(server) == "v000002"
    previous = target.previous()
    assert previous is not None and previous.version == "v000001"


def test_the_kserve_targets_address_probe_confirms_the_version_a_real_edge_server_answers_with(
    server: Server,
) -> None:
    """What the KServe target asks a predictor through its InferenceService's address."""
    probe = VersionedInferenceProbe()

    assert probe.serves(server.url, MODEL, "v000001", 30.0)
    assert not probe.serves(server.url, MODEL, "v000002", 30.0)


def test_repeating_the_sync_changes_nothing(
    ctx: SyncContext, store: ObjectStore, versions: dict[str, Path], server: Server, probes: Path
) -> None:
    _deliver(ctx, store, versions, "v000002")
    reconcile(_spec(server, probes), _target(server, probes, ctx, store), ctx)
    pointer = store.get_bytes(ctx.layout.edge_model_pointer(EDGE, MODEL))

    outcome = reconcile(_spec(server, probes), _target(server, probes, ctx, store), ctx)

    assert outcome.action == "up-to-date"
    assert store.get_bytes(ctx.layout.edge_model_pointer(EDGE, MODEL)) == pointer


def test_a_version_that_answers_wrongly_is_rolled_back(
    ctx: SyncContext, store: ObjectStore, versions: dict[str, Path], server: Server, probes: Path
) -> None:
    _deliver(ctx, store, versions, "v000003")
    target = _target(server, probes, ctx, store)

    outcome = reconcile(_spec(server, probes), target, ctx)

    assert (outcome.action, outcome.serving) == ("rolled-back", "v000001")
    assert "probe images wrong" in outcome.detail
    assert _answering_version(server) == "v000001"
    assert target.rejected() == "v000003"


def test_a_first_version_that_answers_wrongly_is_not_tried_again(
    ctx: SyncContext, store: ObjectStore, versions: dict[str, Path], running: Server, probes: Path
) -> None:
    pointer_at = ctx.layout.edge_model_pointer(EDGE, MODEL)
    for obj in store.list(ctx.layout.edge_models_prefix(EDGE, MODEL)):
        store.delete(obj.location)
    store.delete(pointer_at)
    _deliver(ctx, store, versions, "v000003")
    target = _target(running, probes, ctx, store)
    first = reconcile(_spec(running, probes), target, ctx)
    pointer = store.get_bytes(pointer_at)

    again = reconcile(_spec(running, probes), target, ctx)

    assert first.action == "rolled-back"
    assert (again.action, again.detail) == ("skipped-rejected", "rolled back before; not retried")
    assert store.get_bytes(pointer_at) == pointer, "no second rollout"


def test_a_version_that_fails_to_load_is_rolled_back_and_the_old_one_keeps_answering(
    ctx: SyncContext, store: ObjectStore, versions: dict[str, Path], server: Server, probes: Path
) -> None:
    _deliver(ctx, store, versions, "v000004")
    target = _target(server, probes, ctx, store)

    outcome = reconcile(_spec(server, probes), target, ctx)

    assert (outcome.action, outcome.serving) == ("rolled-back", "v000001")
    assert _answering_version(server) == "v000001"
    assert ctx.metrics.value("edgecore_edge_sync_rollbacks_total", edge=EDGE) == 1


def _one_mislabelled_probe(probes: Path) -> Path:
    """A probe filed under the wrong SKU: even a good model 'misses' it."""
    first, second = sorted(p for p in probes.iterdir())[:2]
    (second / "mislabelled.jpg").write_bytes(next(first.glob("*.jpg")).read_bytes())
    return probes


@pytest.mark.parametrize(
    ("probe_accuracy", "action", "serving"),
    [(0.8, "rolled-out", "v000002"), (1.0, "rolled-back", "v000001")],
    ids=["a good version that misses the odd probe is rolled out", "a strict edge rolls it back"],
)
def test_the_edge_decides_how_many_probes_a_new_version_may_miss(
    ctx: SyncContext,
    store: ObjectStore,
    versions: dict[str, Path],
    server: Server,
    probes: Path,
    probe_accuracy: float,
    action: str,
    serving: str,
) -> None:
    _deliver(ctx, store, versions, "v000002")
    target = LocalServerTarget(
        server.url, EDGE, MODEL, _one_mislabelled_probe(probes), store, ctx.layout, 120, probe_accuracy
    )

    outcome = reconcile(_spec(server, probes), target, ctx)

    assert (outcome.action, outcome.serving) == (action, serving)


@pytest.fixture
def sells_more(ctx: SyncContext, store: ObjectStore) -> Iterator[str]:
    """The edge's catalogue: the models' products and one more, which no version knows."""
    extra = Product(sku="OAT-MILK", name="Oat milk", price=Decimal("1.99"))
    home = ctx.layout.edge_catalogue_home(EDGE)
    add_products(store, home, [*catalogue(EDGE).products, extra], "test")
    yield extra.sku
    for obj in store.list(home.changes):
        store.delete(obj.location)
    store.delete(home.catalogue)


def test_a_version_that_does_not_know_a_product_the_edge_sells_is_refused(
    ctx: SyncContext,
    store: ObjectStore,
    versions: dict[str, Path],
    server: Server,
    probes: Path,
    sells_more: str,
) -> None:
    _deliver(ctx, store, versions, "v000002")

    outcome = reconcile(_spec(server, probes), _target(server, probes, ctx, store), ctx)

    assert (outcome.action, outcome.serving) == ("refused", "v000001")
    assert f"does not know ['{sells_more}']" in outcome.detail
    assert _answering_version(server) == "v000001"


def test_an_operator_rollback_pins_the_edge_instead_of_leaving_it_behind(
    ctx: SyncContext, store: ObjectStore, versions: dict[str, Path], server: Server, probes: Path
) -> None:
    _deliver(ctx, store, versions, "v000002")
    target = _target(server, probes, ctx, store)
    reconcile(_spec(server, probes), target, ctx)
    target.rollback()

    outcome = reconcile(_spec(server, probes), target, ctx)

    assert (outcome.action, outcome.serving) == ("pinned", "v000001")
    assert _answering_version(server) == "v000001"
    assert ctx.metrics.value("edgecore_edge_sync_versions_behind", edge=EDGE) == 0
    assert ctx.metrics.value("edgecore_edge_sync_pinned", edge=EDGE) == 1
    target.unpin()
    after = reconcile(_spec(server, probes), target, ctx)
    assert (after.action, after.serving) == ("skipped-rejected", "v000001")
