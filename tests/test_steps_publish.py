"""publish and the registry, against the real MinIO and Kafka."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from components.export import export_model
from components.ingest import snapshot_production
from components.publish import publish
from components.train import build_model
from edgecore.synthetic.products import demo_catalogue
from foundation import events
from foundation.errors import IntegrityError
from foundation.events import ModelPublished
from foundation.layout import MANIFEST, Layout
from foundation.manifest import Manifest
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore

EDGE = "boutique"
MODEL = "boutique-products"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    catalogue = demo_catalogue(EDGE)
    out = tmp_path_factory.mktemp("export") / "v"
    export_model(
        build_model(len(catalogue.skus), 64),
        catalogue.skus,
        catalogue,
        out,
        64,
        {"accuracy": 0.97},
        {"datasets": ["boutique@v000001"]},
    )
    return out


def test_a_published_version_is_in_the_registry_and_announced_on_kafka_and_nothing_is_written_at_the_edge(
    exported: Path, isolated: Settings, iso_store: ObjectStore, iso_layout: Layout, unique: str
) -> None:
    ensure_topics(isolated.kafka)
    producer = EventProducer(isolated.kafka, source="tests/publish")
    try:
        event = publish(
            iso_store,
            iso_layout,
            exported,
            EDGE,
            lambda e: producer.publish(isolated.kafka.topic_model_published, e),
        )
    finally:
        producer.close()
    assert event.version == "v000001" and event.labels == demo_catalogue(EDGE).skus
    registry = Manifest.from_bytes(
        iso_store.get_bytes(iso_layout.model_manifest(MODEL, "v000001")), "registry"
    )
    assert registry.version == "v000001" and registry.metrics["accuracy"] == 0.97
    for name, entry in registry.files.items():
        assert iso_store.head(iso_layout.model_prefix(MODEL, "v000001").child(name)).sha256 == entry.sha256
    assert not iso_store.exists(iso_layout.edge_model_prefix(EDGE, MODEL, "v000001").child(MANIFEST))
    assert event.edges == [EDGE]
    assert event.files == {name: entry.sha256 for name, entry in registry.files.items()}
    consumer = KafkaConsumer(
        isolated.kafka.topic_model_published,
        bootstrap_servers=isolated.kafka.bootstrap_servers,
        group_id=f"t-{unique}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    try:
        received = [events.parse(record.value) for record in consumer]
    finally:
        consumer.close()
    assert [envelope.data for envelope in received] == [event]


def test_the_newest_published_version_is_production_and_is_fetched_verified(
    exported: Path, iso_store: ObjectStore, iso_layout: Layout, tmp_path: Path
) -> None:
    assert snapshot_production(iso_store, iso_layout, EDGE, tmp_path / "none") is None
    assert list((tmp_path / "none").iterdir()) == []
    sent: list[ModelPublished] = []
    publish(iso_store, iso_layout, exported, EDGE, sent.append)
    publish(iso_store, iso_layout, exported, EDGE, sent.append)
    manifest = snapshot_production(iso_store, iso_layout, EDGE, tmp_path / "prod")
    assert manifest is not None and manifest.version == "v000002" == sent[-1].version
    manifest.verify_dir(tmp_path / "prod")


def test_concurrent_publishes_never_get_the_same_version(
    exported: Path, iso_store: ObjectStore, iso_layout: Layout
) -> None:
    sent: list[ModelPublished] = []
    threads = [
        threading.Thread(target=publish, args=(iso_store, iso_layout, exported, EDGE, sent.append))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e.version for e in sent) == ["v000001", "v000002", "v000003", "v000004"]


def test_a_model_exported_for_another_edge_is_refused(
    exported: Path, iso_store: ObjectStore, iso_layout: Layout
) -> None:
    with pytest.raises(IntegrityError, match="not one of edge hypermarket's"):
        publish(iso_store, iso_layout, exported, "hypermarket", lambda e: None)
