"""The uplink's processes: what ``edgecore edge gateway | ship | receiver`` build and run.

Everything with I/O or process-wide effect is done here, once: buckets made sure of,
topics created, glibc's allocator tuned for the data path (``memory``), clients opened
with their credentials.  The gateway process also runs its shipper in a thread (one
process per store) and, when asked, its MQTT intake; the receiver is one process at the
core.  uvicorn handles SIGTERM/SIGINT: it stops accepting, finishes the requests in
flight, and the shipper thread is stopped after.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from edge_sync.uplink import gateway, receiver
from edge_sync.uplink.memory import bound_large_allocations
from edge_sync.uplink.mqtt import MqttIntake
from edge_sync.uplink.outbox import Outbox, outbox_path
from edge_sync.uplink.shipper import Shipper
from foundation.layout import Layout
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.reader import BucketReader
from foundation.storage.store import ObjectStore
from foundation.storage.wire import S3Wire

log = logging.getLogger(__name__)


def build_gateway(settings: Settings, edge: str) -> gateway.Gateway:
    """The gateway of ``edge``: its bucket made sure of, its outbox opened."""
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    store.ensure_bucket(layout.edge_bucket(edge))
    outbox = Outbox(outbox_path(settings.outbox_dir, edge))
    return gateway.Gateway(settings.uplink, settings.images, edge, store, layout, outbox)


def build_shipper(
    settings: Settings, edge: str, outbox: Outbox | None = None, backoff_base_s: float = 1.0
) -> Shipper:
    """The shipper of ``edge``, presenting the edge's token to the core."""
    bound_large_allocations()
    token = settings.uplink.edge_token.get_secret_value()
    client = httpx.Client(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(60.0, connect=5.0)
    )
    return Shipper(
        settings.uplink,
        edge,
        outbox or Outbox(outbox_path(settings.outbox_dir, edge)),
        BucketReader.connect(settings.s3),
        client,
        backoff_base_s,
    )


def build_receiver(
    settings: Settings, tokens: dict[str, str] | None = None, producer: EventProducer | None = None
) -> receiver.Receiver:
    """The core's receiver: topics and the training bucket made sure of, the allocator tuned."""
    bound_large_allocations()
    ensure_topics(settings.kafka)
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    store.ensure_bucket(layout.training_bucket)
    return receiver.Receiver(
        settings.uplink,
        settings.images.max_pixels,
        settings.s3.multipart_chunk_mb * 1_048_576,
        store,
        S3Wire(settings.s3),
        layout,
        producer or EventProducer(settings.kafka, "edgecore/receiver"),
        settings.kafka.topic_training_data_ready,
        receiver.load_tokens(settings.uplink) if tokens is None else tokens,
    )


@contextmanager
def shipping(shipper: Shipper) -> Iterator[threading.Event]:
    """The shipper's loop in a thread, for as long as the block runs."""
    stop = threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop,), name="shipper", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)


def serve(app: FastAPI, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=30)


@contextmanager
def mqtt_intake(gw: gateway.Gateway, settings: Settings) -> Iterator[MqttIntake]:
    """The MQTT intake, subscribed for as long as the block runs."""
    intake = MqttIntake(gw, settings.uplink.mqtt_host, settings.uplink.mqtt_port)
    intake.start()
    try:
        yield intake
    finally:
        intake.stop()


def run_gateway(settings: Settings, edge: str, host: str, ship: bool, mqtt: bool = False) -> None:
    gw = build_gateway(settings, edge)
    shipper = build_shipper(settings, edge, gw.outbox)
    app = gateway.create_app(gw)
    with ExitStack() as running:
        if mqtt:
            running.enter_context(mqtt_intake(gw, settings))
        if ship:
            running.enter_context(shipping(shipper))
        serve(app, host, settings.uplink.gateway_port)


def run_receiver(settings: Settings, host: str) -> None:
    rcv = build_receiver(settings)
    try:
        serve(receiver.create_app(rcv), host, settings.uplink.receiver_port)
    finally:
        rcv.close()
        rcv.producer.close()


def run_shipper(settings: Settings, edge: str, stop: threading.Event) -> None:
    shipper = build_shipper(settings, edge)
    try:
        shipper.run(stop)
    finally:
        shipper.close()
