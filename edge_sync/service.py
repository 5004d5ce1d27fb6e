"""Composing the edge-sync processes: what ``edgecore edge gateway|receiver|ship`` run.

The gateway process also runs its shipper in a thread (one process per store) and,
when asked, its MQTT intake; the
receiver is one process at the core.  uvicorn handles SIGTERM/SIGINT: it stops
accepting, finishes the requests in flight, and the shipper thread is stopped after.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import uvicorn
from fastapi import FastAPI

from edge_sync import gateway, receiver
from edge_sync.mqtt import MqttIntake
from edge_sync.outbox import Outbox, outbox_path
from edge_sync.shipper import Shipper
from edgecore.messaging import EventProducer, ensure_topics
from edgecore.settings import Settings
from edgecore.storage import ObjectStore

log = logging.getLogger(__name__)


def build_gateway(settings: Settings, edge: str) -> tuple[gateway.Gateway, Shipper]:
    store = ObjectStore(settings)
    outbox = Outbox(outbox_path(settings.outbox_dir, edge))
    gw = gateway.Gateway(settings, edge, store, outbox)
    return gw, Shipper(settings, edge, outbox, gw.pending_hard_examples)


def build_receiver(settings: Settings) -> receiver.Receiver:
    ensure_topics(settings)
    producer = EventProducer(settings, "edgecore/receiver")
    return receiver.Receiver(settings, ObjectStore(settings), producer, receiver.load_tokens(settings))


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
    intake = MqttIntake(gw, settings.mqtt_host, settings.mqtt_port)
    intake.start()
    try:
        yield intake
    finally:
        intake.stop()


def run_gateway(settings: Settings, edge: str, host: str, ship: bool, mqtt: bool = False) -> None:
    gw, shipper = build_gateway(settings, edge)
    app = gateway.create_app(gw)
    with ExitStack() as running:
        if mqtt:
            running.enter_context(mqtt_intake(gw, settings))
        if ship:
            running.enter_context(shipping(shipper))
        serve(app, host, settings.gateway_port)


def run_receiver(settings: Settings, host: str) -> None:
    rcv = build_receiver(settings)
    try:
        serve(receiver.create_app(rcv), host, settings.receiver_port)
    finally:
        rcv.close()
        rcv.producer.close()


def run_shipper(settings: Settings, edge: str, stop: threading.Event) -> None:
    _, shipper = build_gateway(settings, edge)
    try:
        shipper.run(stop)
    finally:
        shipper.close()
