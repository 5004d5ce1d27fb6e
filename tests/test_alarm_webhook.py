"""A machine alarm also goes to a webhook: the same CloudEvent as on Kafka, never blocking scoring."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from edgecore.stack import Stack
from foundation.credentials import new_token
from foundation.errors import InvalidInput
from foundation.layout import Layout
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import ServingSettings, Settings
from foundation.storage.store import ObjectStore
from serving.alarm_webhook import QUEUE_SIZE, AlarmWebhook
from serving.alarms import AlarmChange
from serving.anomaly_reports import AnomalyReports
from serving.sensor_monitor import Alarm
from serving.sensors import build_webhook
from testkit.conditions import wait_for
from testkit.sensors import anomaly_events


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers each POST with the next status of ``answers`` (then 204)."""

    answers: list[int] = field(default_factory=list)
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hold: threading.Event | None = None
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if got.hold is not None:
                got.hold.wait(30)
            got.posts.append((dict(self.headers), body))
            self.send_response(got.answers.pop(0) if got.answers else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/alarms"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield got
    if got.hold is not None:
        got.hold.set()
    server.shutdown()


def _alarm(machine: str) -> Alarm:
    change = AlarmChange(machine, raised=True, anomalous=3, of=5, error=2.5)
    return Alarm(change, np.zeros((30, 4), np.float32), datetime(2026, 12, 3, 10, 0, tzinfo=UTC))


def test_an_alarm_reaches_kafka_and_the_webhook_as_one_cloudevent_with_the_token(
    stack: Stack, settings: Settings, unique: str, receiver: Receiver
) -> None:
    edge, token = f"hook-{unique}", new_token()
    cfg = settings.updated(buckets={"edge_prefix": f"w{unique}-"})
    store, layout = ObjectStore(cfg.s3), Layout(cfg.buckets)
    store.ensure_bucket(layout.edge_bucket(edge))
    webhook = AlarmWebhook(receiver.url, token)
    producer = EventProducer(cfg.kafka, f"/edgecore/sensors/{edge}")
    topic = cfg.kafka.anomaly_topic(edge)
    ensure_topics(cfg.kafka, extra=[topic])
    sensors = ("temperature_c", "vibration_mm_s", "current_a", "pressure_bar")
    reports = AnomalyReports(
        edge, "m", "v000001", 1.0, None, sensors, store, layout, producer, topic, webhook
    )

    reports.raised(_alarm("press-4"))

    wait_for(lambda: webhook.delivered == 1, 30, what="the webhook's post")
    headers, body = receiver.posts[0]
    posted = json.loads(body)
    assert headers["Authorization"] == f"Bearer {token}"
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert posted["type"] == "io.edgecore.anomaly-detected" and posted["data"]["machine"] == "press-4"
    on_kafka = anomaly_events(cfg, edge)
    assert [e.window_key for e in on_kafka] == [posted["data"]["window_key"]]
    producer.close()
    webhook.close()


def test_a_failing_receiver_gets_the_alarm_again(receiver: Receiver) -> None:
    receiver.answers = [503, 502]
    webhook = AlarmWebhook(receiver.url, backoff_s=0.01)

    webhook.send(b'{"id": "1"}')

    wait_for(lambda: webhook.delivered == 1, 30, what="the third post")
    assert len(receiver.posts) == 3
    webhook.close()


def test_an_alarm_the_receiver_refuses_is_not_sent_again(receiver: Receiver) -> None:
    receiver.answers = [400]
    webhook = AlarmWebhook(receiver.url, backoff_s=0.01)

    webhook.send(b'{"id": "1"}')

    wait_for(lambda: webhook.failed == 1, 30, what="the refusal")
    assert len(receiver.posts) == 1
    webhook.close()


def test_a_stuck_receiver_never_blocks_the_alarms_which_are_dropped_and_counted(receiver: Receiver) -> None:
    receiver.hold = threading.Event()
    webhook = AlarmWebhook(receiver.url)

    queued = [webhook.send(b"{}") for _ in range(QUEUE_SIZE + 5)]

    assert queued.count(False) >= 4 and webhook.dropped == queued.count(False)
    receiver.hold.set()
    webhook.close(timeout_s=1)


@pytest.mark.parametrize("url", ["http://hooks.example.com/x", "ftp://127.0.0.1/x", "https:///x"])
def test_a_webhook_url_that_is_neither_https_nor_loopback_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        AlarmWebhook(url)
    assert url not in str(refused.value)

    with pytest.raises(ValidationError) as invalid:
        ServingSettings(alarm_webhook_url=SecretStr(url))
    assert url not in invalid.value.errors()[0]["msg"]


def test_the_webhook_token_is_read_from_its_file(tmp_path: Path, receiver: Receiver) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{uuid.uuid4().hex}\n")
    settings = Settings(
        serving=ServingSettings(
            alarm_webhook_url=SecretStr(receiver.url), alarm_webhook_token_file=token_file
        )
    )

    webhook = build_webhook(settings)

    assert webhook is not None
    webhook.send(b"{}")
    wait_for(lambda: webhook.delivered == 1, 30, what="the post")
    assert receiver.posts[0][0]["Authorization"] == f"Bearer {token_file.read_text().strip()}"
    webhook.close()
