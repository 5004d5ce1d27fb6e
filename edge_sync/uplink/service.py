"""The edge's uplink processes: what ``edgecore edge gateway | ship`` build and run.

Everything with I/O or process-wide effect is done here, once: buckets made sure of,
glibc's allocator tuned for the data path (``memory``), clients opened with their
credentials (the shipper's token is checked for strength first, and it trusts only the
configured CA).  The gateway process also runs its shipper in a thread (one process per
store) and, when asked, its MQTT intake; the receiving end is the core's front door
(``edge_sync.frontdoor``).  uvicorn handles SIGTERM/SIGINT: it stops accepting,
finishes the requests in flight, and the shipper thread is stopped after.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from edge_sync.uplink import gateway
from edge_sync.uplink.memory import bound_decode_memory, bound_large_allocations
from edge_sync.uplink.mqtt import MqttIntake
from edge_sync.uplink.outbox import Outbox, outbox_path
from edge_sync.uplink.sensor_intake import SensorIntake, SensorReadings
from edge_sync.uplink.shipper import Shipper
from edge_sync.uplink.telemetry_batches import TelemetryBatches
from edge_sync.uplink.telemetry_shipper import TelemetryShipper
from foundation.background import in_background
from foundation.credentials import Credentials, check_strength
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.reader import BucketReader
from foundation.storage.store import ObjectStore
from foundation.tls import edge_context, require_https

log = logging.getLogger(__name__)
TELEMETRY_SHIP_EVERY_S = 5.0


def build_gateway(settings: Settings, edge: str) -> gateway.Gateway:
    """The gateway of ``edge``: its bucket made sure of, its outbox opened, who may call it read."""
    bound_decode_memory()
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    store.ensure_bucket(layout.edge_bucket(edge))
    outbox = Outbox(outbox_path(settings.outbox_dir, edge))
    devices_file, staff_file = settings.gateway_tokens_files(edge)
    devices, staff = Credentials("device", path=devices_file), Credentials("staff", path=staff_file)
    if not staff.principals:
        log.warning("edge %s: no staff token in %s: sets cannot be completed", edge, staff_file)
    return gateway.Gateway(settings.uplink, settings.images, edge, store, layout, outbox, devices, staff)


def build_shipper(
    settings: Settings, edge: str, outbox: Outbox | None = None, backoff_base_s: float = 1.0
) -> Shipper:
    """The shipper of ``edge``, presenting the edge's token to the core's front door over TLS."""
    bound_large_allocations()
    return Shipper(
        settings.uplink,
        require_https(settings.door.url, "the core's front door (EDGECORE_DOOR_URL)"),
        edge,
        outbox or Outbox(outbox_path(settings.outbox_dir, edge)),
        BucketReader.connect(settings.s3),
        _door_client(settings, edge),
        Layout(settings.buckets).edge_catalogue_home(edge),
        backoff_base_s,
    )


def _door_client(settings: Settings, edge: str) -> httpx.Client:
    """HTTP to the core's front door: the edge's token presented, the core's CA trusted."""
    token = settings.door.token.get_secret_value()
    check_strength(token, f"edge {edge}'s front-door token (EDGECORE_DOOR_TOKEN)")
    return httpx.Client(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(60.0, connect=5.0),
        verify=edge_context(settings),
    )


def telemetry_batches(settings: Settings, edge: str) -> TelemetryBatches:
    """Where the gateway keeps the readings it took until the core has them."""
    return TelemetryBatches(settings.state_dir / "telemetry" / edge)


@contextmanager
def shipping_telemetry(
    settings: Settings, edge: str, batches: TelemetryBatches
) -> Iterator[TelemetryShipper]:
    """The telemetry shipper's loop in a thread, for as long as the block runs."""
    url = require_https(settings.door.url, "the core's front door (EDGECORE_DOOR_URL)")
    shipper = TelemetryShipper(url, edge, _door_client(settings, edge), batches)
    try:
        with in_background(lambda stop: shipper.run(stop, TELEMETRY_SHIP_EVERY_S), "telemetry-shipper"):
            yield shipper
    finally:
        shipper.close()


def shipping(shipper: Shipper) -> AbstractContextManager[threading.Event]:
    """The shipper's loop in a thread, for as long as the block runs."""
    return in_background(shipper.run, "shipper")


def serve(app: FastAPI, host: str, port: int, max_connections: int) -> None:
    """Plain HTTP, on the site's own network (loopback by default): the store's gateway, the core page."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=30,
        limit_concurrency=max_connections,
    )


@contextmanager
def mqtt_intake(gw: gateway.Gateway, settings: Settings) -> Iterator[MqttIntake]:
    """The MQTT intake of images, subscribed for as long as the block runs."""
    uplink = settings.uplink
    intake = MqttIntake(gw, uplink.mqtt_host, uplink.mqtt_port, _mqtt_password(settings, gw.edge))
    intake.start()
    try:
        yield intake
    finally:
        intake.stop()


@contextmanager
def sensor_intake(settings: Settings, edge: str, readings: SensorReadings) -> Iterator[SensorIntake]:
    """The MQTT intake of sensor readings, subscribed for as long as the block runs."""
    uplink = settings.uplink
    intake = SensorIntake(edge, uplink.mqtt_host, uplink.mqtt_port, _mqtt_password(settings, edge), readings)
    intake.start()
    try:
        yield intake
    finally:
        intake.stop()


def _mqtt_password(settings: Settings, edge: str) -> str:
    password = settings.uplink.mqtt_password.get_secret_value()
    check_strength(password, f"the gateway's MQTT password of edge {edge} (EDGECORE_MQTT_PASSWORD)")
    return password


def run_gateway(
    settings: Settings,
    edge: str,
    host: str,
    ship: bool,
    mqtt: bool = False,
    readings: SensorReadings | None = None,
    readings_metrics: CollectorRegistry | None = None,
    telemetry: TelemetryBatches | None = None,
) -> None:
    """``telemetry``: the batches the sensor monitor records readings in, shipped along with the sets."""
    gw = build_gateway(settings, edge)
    app = gateway.create_app(gw, telemetry)
    if readings_metrics is not None:
        gw.metrics.include(readings_metrics)
    if settings.uplink.gateway_metrics_port is not None:
        gw.metrics.serve(settings.uplink.gateway_metrics_port, settings.uplink.gateway_metrics_host)
    with ExitStack() as running:
        if mqtt:
            running.enter_context(mqtt_intake(gw, settings))
            if readings is not None:
                running.enter_context(sensor_intake(settings, edge, readings))
        if ship:
            running.enter_context(shipping(build_shipper(settings, edge, gw.outbox)))
            if telemetry is not None:
                running.enter_context(shipping_telemetry(settings, edge, telemetry))
        port = settings.uplink.gateway_port
        log.info("edge %s: the store page is at http://%s:%d/staff/", edge, host, port)
        serve(app, host, port, settings.uplink.gateway_max_connections)


def run_shipper(settings: Settings, edge: str, stop: threading.Event) -> None:
    shipper = build_shipper(settings, edge)
    try:
        shipper.run(stop)
    finally:
        shipper.close()
