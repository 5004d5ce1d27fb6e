"""The core's status page over real HTTP, reading the real registry, ledger and Kafka topics."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from edgecore.console.app import build_status, create_app
from edgecore.console.status import DEAD_LETTERS_SHOWN
from edgecore.stack import Stack
from foundation.credentials import Credentials, new_token
from foundation.layout import MANIFEST, Layout, edge_model_name
from foundation.manifest import FileEntry, Manifest
from foundation.messaging import DLQ_REASON, ensure_topics
from foundation.registry import publish_model
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for
from testkit.listener import Running, listening
from testkit.uplink import free_port, serving

OPERATOR = new_token()
EDGE = "store-c"


@dataclass
class Core:
    url: str
    settings: Settings
    running: Running

    def section(self, name: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {OPERATOR}"}
        response = httpx.get(f"{self.url}/v1/status/{name}", headers=headers, timeout=30, **kwargs)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def core(stack: Stack, settings: Settings, unique: str, tmp_path: Path) -> Iterator[Core]:
    cfg = settings.updated(
        state_dir=tmp_path / "core",
        buckets={"training": f"test-train-{unique}", "models": f"test-models-{unique}"},
        kafka={
            "topic_training_data_ready": f"test-tdr-{unique}",
            "topic_dead_letter": f"test-dlq-{unique}",
            "topic_s3_events": f"test-s3-{unique}",
        },
    )
    ensure_topics(cfg.kafka)
    operators = Credentials("operator", inline={"lead": [OPERATOR]})
    with listening(cfg, unique, tmp_path) as running:
        app = create_app(build_status(cfg, running.group), operators)
        with serving(app, free_port()) as url:
            yield Core(url, cfg, running)


def publish(settings: Settings, folder: Path, accuracy: float, dataset: str) -> str:
    """A model version of EDGE registered the way the pipeline's publish step registers one."""
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(folder.name.encode() * 100)
    data = (folder / "model.tflite").read_bytes()
    manifest = Manifest(
        kind="model",
        name=edge_model_name(EDGE),
        version="v000000",
        files={"model.tflite": FileEntry(sha256=hashlib.sha256(data).hexdigest(), size=len(data))},
        labels=["COLA-330"],
        metrics={"accuracy": accuracy},
        metadata={"datasets": [dataset], "edge": EDGE},
    )
    (folder / MANIFEST).write_bytes(manifest.to_bytes())
    return publish_model(ObjectStore(settings.s3), Layout(settings.buckets), folder, "test").version


def test_without_an_operator_token_or_session_nothing_is_shown(core: Core) -> None:
    for headers in ({}, {"Authorization": f"Bearer {new_token()}"}):
        assert httpx.get(f"{core.url}/v1/status/runs", headers=headers).status_code == 401
    assert httpx.post(f"{core.url}/v1/session", json={"token": new_token()}).status_code == 401


def test_an_operator_session_reads_the_page(core: Core) -> None:
    with httpx.Client(base_url=core.url) as page:
        assert page.post("/v1/session", json={"token": OPERATOR}).status_code == 201

        answer = page.get("/v1/status/datasets")

    assert answer.status_code == 200 and answer.json() == {"section": "datasets", "rows": [], "error": None}


def test_published_versions_are_listed_newest_first_with_their_accuracy(core: Core, tmp_path: Path) -> None:
    first = publish(core.settings, tmp_path / "one", 0.91, f"{EDGE}@..v000001")
    second = publish(core.settings, tmp_path / "two", 0.97, f"{EDGE}@..v000002")
    (core.settings.door_tokens_file.parent).mkdir(parents=True, exist_ok=True)
    core.settings.door_tokens_file.write_text(f'{{"{EDGE}": ["{new_token()}"]}}')

    models = core.section("models")["rows"]

    assert [(m["edge"], m["model"]) for m in models] == [(EDGE, edge_model_name(EDGE))]
    versions = models[0]["versions"]
    assert [(v["version"], v["accuracy"], v["datasets"]) for v in versions] == [
        (second, 0.97, [f"{EDGE}@..v000002"]),
        (first, 0.91, [f"{EDGE}@..v000001"]),
    ]


def test_a_malformed_event_shows_as_a_dead_letter_with_its_reason_and_not_its_bytes(core: Core) -> None:
    kafka = core.settings.kafka
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    producer.send(kafka.topic_training_data_ready, b"secret-ish payload that is not an event").get(30)
    producer.close()
    wait_for(core.running.caught_up, 60, what="the malformed record handled")

    answer = core.section("dead-letters")

    assert answer["error"] is None
    [letter] = answer["rows"]
    assert letter["topic"] == kafka.topic_training_data_ready and letter["reason"]
    assert letter["bytes"] == len(b"secret-ish payload that is not an event")
    assert "secret-ish" not in str(answer)


def test_dead_letters_that_keep_arriving_do_not_keep_the_section_reading(core: Core) -> None:
    kafka = core.settings.kafka
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    stop, gave_up = threading.Event(), threading.Event()

    def keep_refusing() -> None:
        deadline = time.monotonic() + 90
        while not stop.wait(0.05):
            if time.monotonic() > deadline:
                gave_up.set()
                return
            producer.send(kafka.topic_dead_letter, b"x", headers=[(DLQ_REASON, b"refused")])

    sender = threading.Thread(target=keep_refusing, daemon=True)
    sender.start()
    try:
        wait_for(lambda: core.section("dead-letters")["rows"] != [], 60, what="the first dead letters shown")
        answer = core.section("dead-letters")
    finally:
        stop.set()
        sender.join()
        producer.close()

    assert not gave_up.is_set(), "the section answered only once the stream had stopped"
    assert 0 < len(answer["rows"]) <= DEAD_LETTERS_SHOWN


def test_without_a_fleet_file_the_fleet_section_says_where_to_look(core: Core) -> None:
    fleet = core.section("fleet")["rows"]

    assert fleet["edges"] == [] and "no fleet file at the core" in fleet["note"]


def test_a_section_that_cannot_be_read_says_why_and_the_others_still_answer(core: Core) -> None:
    no_kafka = core.settings.updated(kafka={"port": free_port()})
    operators = Credentials("operator", inline={"lead": [OPERATOR]})
    with serving(create_app(build_status(no_kafka, core.running.group), operators), free_port()) as url:
        without = Core(url, no_kafka, core.running)

        dead = without.section("dead-letters")
        datasets = without.section("datasets")

    assert dead["rows"] == [] and dead["error"]
    assert datasets["error"] is None
