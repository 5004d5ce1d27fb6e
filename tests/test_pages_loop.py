"""Both pages over the real data path, in Debian's Chromium: staff at a store log in, label three
photos, add a product and complete a set; it ships over TLS to the core's front door, becomes a
dataset version, and the listener launches a run; an operator logs in to the core's page and sees
that dataset and that run, and their model versions.  Screenshots: ``test-artifacts/browser/``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from page_fixtures import ARTIFACTS, PAGE_EDGE, PRODUCTS, StorePage, cards, log_in, verdict_path
from pydantic import SecretStr

from edge_sync.uplink.gateway import create_app as gateway_app
from edge_sync.uplink.service import (
    build_gateway,
    build_shipper,
    shipping,
    shipping_telemetry,
    telemetry_batches,
)
from edgecore.console.app import build_status
from edgecore.console.app import create_app as core_app
from edgecore.stack import Stack, enable_notifications
from foundation.assortment import add_products
from foundation.credentials import Credentials, new_token
from foundation.layout import Layout
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.browser import Browser
from testkit.conditions import wait_for
from testkit.listener import Running, listening
from testkit.uplink import free_port, front_door, gateway_tokens, image_bytes, serving

DOOR_TOKEN, DEVICE, STAFF, OPERATOR = new_token(), new_token(), new_token(), new_token()


@dataclass
class Loop:
    store: StorePage
    core_url: str
    running: Running


@pytest.fixture
def loop(stack: Stack, settings: Settings, unique: str, tmp_path: Path) -> Iterator[Loop]:
    core = settings.updated(
        state_dir=tmp_path / "core",
        buckets={"training": f"test-train-{unique}"},
        kafka={
            "topic_training_data_ready": f"test-tdr-{unique}",
            "topic_dead_letter": f"test-dlq-{unique}",
        },  # MinIO announces to the stack's one topic: the training bucket, unique, tells this one's apart
        listener={"coalesce_s": 0.0},
    )
    core_store = ObjectStore(core.s3)
    core_store.ensure_bucket(core.buckets.training)
    enable_notifications(core_store, core.buckets.training)  # telemetry versions are announced so
    ensure_topics(core.kafka)
    door_port = free_port()
    edge = core.updated(
        state_dir=tmp_path / "edge",
        buckets={"edge_prefix": f"l{unique}-"},
        door={"url": f"https://127.0.0.1:{door_port}", "token": SecretStr(DOOR_TOKEN)},
        tls={"ca_file": settings.ca_file},
    )
    gateway_tokens(edge, PAGE_EDGE, devices={"camera-1": DEVICE}, staff={"manager": STAFF})
    store, layout = ObjectStore(edge.s3), Layout(edge.buckets)
    gateway = build_gateway(edge, PAGE_EDGE)
    add_products(store, layout.edge_catalogue_home(PAGE_EDGE), PRODUCTS, by="back office")
    producer = EventProducer(core.kafka, "edgecore/test-receiver")
    operators = Credentials("operator", inline={"lead": [OPERATOR]})
    tls = core.updated(
        tls={"ca_file": settings.ca_file, "cert_file": settings.cert_file, "key_file": settings.key_file}
    )
    telemetry = telemetry_batches(edge, PAGE_EDGE)
    with (
        front_door(tls, {PAGE_EDGE: DOOR_TOKEN}, producer) as (_, door),
        serving(door, door_port, tls=tls),
        listening(core, unique, tmp_path) as running,
        serving(gateway_app(gateway, telemetry), free_port()) as gateway_url,
        shipping(build_shipper(edge, PAGE_EDGE, gateway.outbox, backoff_base_s=0.2)),
        shipping_telemetry(edge, PAGE_EDGE, telemetry),
        serving(core_app(build_status(core, running.group), operators), free_port()) as core_url,
    ):
        store_page = StorePage(gateway_url, edge, store, layout, STAFF, DEVICE, telemetry)
        yield Loop(store_page, core_url, running)
    producer.close()
    gateway.outbox.close()


def test_labels_given_at_a_store_reach_the_core_page_as_a_dataset_and_a_run(
    loop: Loop, browser: Browser
) -> None:
    store = loop.store
    device = {"Authorization": f"Bearer {DEVICE}", "Content-Type": "image/jpeg"}
    for seed in (1, 2, 3):
        httpx.post(f"{store.url}/v1/images/COLA-330", content=image_bytes(seed), headers=device)
    store.unsure_photos([[("COLA-330", 0.5), ("CHIPS-200", 0.3)]] * 3 + [[("SOAP-100", 0.4)]])

    log_in(browser, store)
    browser.wait(lambda: cards(browser) == 4, "four unsure photos")
    for left in (3, 2, 1):
        browser.click("article.card:nth-of-type(1) button.confirm")
        browser.wait(lambda n=left: cards(browser) == n, f"{left} photos left")
    browser.click('button.tab[data-section="products"]')
    browser.type("#product-sku", "KOMBU-GNG")
    browser.type("#product-name", "Ginger kombucha")
    browser.type("#product-price", "3.95")
    browser.click("#product-form button[type=submit]")
    browser.wait(lambda: "KOMBU-GNG" in browser.text("#product-rows"), "the new product in the table")
    browser.click('button.tab[data-section="shipments"]')
    browser.click('#loose-rows button[aria-label="Complete the set of COLA-330"]')
    browser.wait(lambda: "queued to ship" in browser.text("#status"), "the set to be queued")
    browser.screenshot(ARTIFACTS / "5-set-queued.png")

    request = wait_for(loop.running.launcher.requests, 90, what="a run launched for the shipped set")[0]

    browser.open(loop.core_url)
    browser.type("#token", OPERATOR)
    browser.click("#login-form button[type=submit]")
    browser.wait(lambda: PAGE_EDGE in browser.text("#datasets-rows"), "the dataset on the core page")
    browser.wait(lambda: request["run_key"] in browser.text("#runs-rows"), "the run on the core page")
    browser.screenshot(ARTIFACTS / "6-core-page.png")
    datasets = browser.text("#datasets-rows")
    assert "v000001" in datasets and " 6 " in f" {datasets} "  # 3 photos and 3 labelled hard examples
    assert f"{PAGE_EDGE}@v000001" in browser.text("#runs-rows")
    assert browser.text("#dead-letters-error") == ""

    browser.open(loop.store.url)  # the same browser, the same host: the core page's login left the store's
    browser.wait(lambda: browser.text("#staff-name") == "manager", "the store session still open")


def test_a_verdict_on_a_machine_alarm_reaches_the_core_and_the_listener_launches_the_sensor_round(
    loop: Loop,
) -> None:
    store = loop.store
    store.machine_alarms(["press-1"])
    with store.login() as page:
        [alarm] = page.get("/v1/alarms").json()["alarms"]
        path = verdict_path(alarm)
        assert page.put(path, json={"verdict": "dismissed"}).status_code == 201

    [request] = wait_for(loop.running.launcher.requests, 90, what="a run launched for the verdict")

    assert request["pipeline"] == "edgecore-sensors"
    assert request["arguments"]["datasets"] == [f"{PAGE_EDGE}-telemetry@..v000001"]
    assert store.telemetry.ready() == []
