"""Fixtures of the store page's tests (a pytest plugin, registered in conftest.py): a store's
gateway on a real MinIO bucket, its catalogue, and photos its model was unsure of, kept
by serving's own capture code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from edge_sync.uplink.gateway import create_app
from edge_sync.uplink.service import build_gateway, telemetry_batches
from edge_sync.uplink.telemetry_batches import TelemetryBatches
from edgecore.stack import Stack
from foundation.assortment import add_products
from foundation.catalogue import Product
from foundation.credentials import new_token
from foundation.layout import Layout
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from foundation.telemetry import SENSORS
from serving.alarms import AlarmChange
from serving.anomaly_reports import AnomalyReports
from serving.capture import Capture, CaptureItem
from serving.sensor_monitor import Alarm
from testkit.browser import Browser, chromium
from testkit.uplink import free_port, gateway_tokens, image_bytes, serving

PAGE_EDGE = "store-p"
PRODUCTS = [
    Product(sku="COLA-330", name="Cola 330 ml", price="1.20"),  # type: ignore[arg-type]
    Product(sku="CHIPS-200", name="Paprika chips", price="2.49"),  # type: ignore[arg-type]
    Product(sku="TEA-GREEN", name="Green tea", price="3.10"),  # type: ignore[arg-type]
    Product(sku="SOAP-100", name="Olive soap", price="1.75"),  # type: ignore[arg-type]
]


@dataclass
class StorePage:
    url: str
    settings: Settings
    store: ObjectStore
    layout: Layout
    staff_token: str
    device_token: str
    telemetry: TelemetryBatches
    """Where the gateway keeps readings and staff's verdicts for the core."""

    @contextmanager
    def login(self, token: str | None = None) -> Iterator[httpx.Client]:
        """A client holding a session cookie, as the page's script does."""
        with httpx.Client(base_url=self.url, headers={"X-Edgecore-Page": "1"}) as client:
            response = client.post("/v1/session", json={"token": token or self.staff_token})
            assert response.status_code == 201, response.text
            yield client

    def unsure_photos(self, guesses: list[list[tuple[str, float]]]) -> None:
        """One capture per entry, each with its top guesses, written the way serving keeps them."""
        capture = Capture(self.store, self.layout, PAGE_EDGE)
        names = {p.sku: p.name for p in PRODUCTS}
        for seed, top in enumerate(guesses):
            prediction: dict[str, Any] = {
                "sku": top[0][0],
                "confidence": top[0][1],
                "recognized": False,
                "top": [{"sku": sku, "probability": p, "name": names[sku]} for sku, p in top],
            }
            record = {
                "edge": PAGE_EDGE,
                "model": "products",
                "model_version": "v000003",
                "prediction": prediction,
            }
            capture.submit(CaptureItem(image=image_bytes(100 + seed, side=96), pixels=None, record=record))
        capture.join()
        capture.close()

    def machine_alarms(self, machines: list[str]) -> None:
        """An alarm window per machine, a minute apart, kept (and announced) as the sensor monitor does."""
        ensure_topics(self.settings.kafka, extra=[self.settings.kafka.anomaly_topic(PAGE_EDGE)])
        producer = EventProducer(self.settings.kafka, "tests/store-page")
        reports = AnomalyReports(
            PAGE_EDGE,
            "line-sensors",
            "v000001",
            0.4,
            6.5,
            SENSORS,
            self.store,
            self.layout,
            producer,
            self.settings.kafka.anomaly_topic(PAGE_EDGE),
        )
        try:
            for i, machine in enumerate(machines):
                window = np.random.default_rng(i).normal(5.0, 1.0, size=(30, len(SENSORS))).astype(np.float32)
                at = datetime(2026, 12, 3, 10, i, tzinfo=UTC)
                span_start = at - timedelta(seconds=690)  # 30 readings and 4 strides of 10, every 10 s
                reports.raised(Alarm(AlarmChange(machine, True, 3, 5, 1.25), window, at, 7.0, span_start))
        finally:
            producer.close()

    def hard_examples(self) -> dict[str, str]:
        """capture id → the SKU staff gave it."""
        found = self.store.list(self.layout.hard_examples_prefix(PAGE_EDGE))
        return {o.location.key.split("/")[2].split(".")[0]: o.location.key.split("/")[1] for o in found}


def verdict_path(alarm: dict[str, Any]) -> str:
    """Where the page puts staff's verdict on one alarm listed by ``GET /v1/alarms``."""
    return f"/v1/alarms/{alarm['machine']}/{alarm['day']}/{alarm['window_id']}/verdict"


@pytest.fixture
def store_page(stack: Stack, settings: Settings, unique: str, tmp_path: Path) -> Iterator[StorePage]:
    cfg = settings.updated(state_dir=tmp_path, buckets={"edge_prefix": f"p{unique}-"})
    staff, device = new_token(), new_token()
    gateway_tokens(cfg, PAGE_EDGE, devices={"camera-1": device}, staff={"manager": staff})
    gateway = build_gateway(cfg, PAGE_EDGE)
    store, layout = ObjectStore(cfg.s3), Layout(cfg.buckets)
    add_products(store, layout.edge_catalogue_home(PAGE_EDGE), PRODUCTS, by="back office")
    telemetry = telemetry_batches(cfg, PAGE_EDGE)
    with serving(create_app(gateway, telemetry), free_port()) as url:
        yield StorePage(url, cfg, store, layout, staff, device, telemetry)
    gateway.outbox.close()


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
TABLET = (820, 1180)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, at a tablet's size."""
    with chromium() as browser:
        browser.resize(*TABLET)
        yield browser


def cards(browser: Browser) -> int:
    return len(browser.find_all("article.card"))


def log_in(browser: Browser, page: StorePage) -> None:
    browser.open(page.url)
    browser.type("#token", page.staff_token)
    browser.click("#login-form button[type=submit]")
    browser.wait(lambda: browser.text("#staff-name") == "manager", "the staff name after logging in")
