"""Outbox and shipper: complete sets reach the core, through outages and restarts."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from edge_sync.uplink.gateway import Gateway
from edge_sync.uplink.outbox import PENDING, REJECTED, SHIPPED, Outbox
from edge_sync.uplink.service import build_gateway, build_shipper
from edge_sync.uplink.shipper import Shipper
from edgecore.stack import Stack
from foundation.credentials import new_token
from foundation.layout import Layout, Location
from foundation.manifest import Manifest
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for
from testkit.delivery import corrupt_in_place
from testkit.uplink import breaking_proxy, free_port, front_door, gateway_tokens, image_bytes, serving

EDGE = "store-a"
TOKEN = new_token()
DEVICE, STAFF = new_token(), new_token()
AS_DEVICE = {"Authorization": f"Bearer {DEVICE}"}
AS_STAFF = {"Authorization": f"Bearer {STAFF}"}


@dataclass
class Loop:
    edge_settings: Settings
    core_settings: Settings
    store: ObjectStore
    receiver_port: int

    @contextmanager
    def core(self, **limits: int) -> Iterator[str]:
        """The core's front door (with ``limits`` on what a set may hold), for as long as the block runs."""
        producer = EventProducer(self.core_settings.kafka, "edgecore/test-receiver")
        settings = self.core_settings.updated(uplink=limits) if limits else self.core_settings
        try:
            with (
                front_door(settings, {EDGE: TOKEN}, producer) as (_, app),
                serving(app, self.receiver_port, tls=settings) as url,
            ):
                yield url
        finally:
            producer.close()

    def gateway(self, token: str = TOKEN) -> tuple[Gateway, Shipper, Outbox]:
        """The edge's gateway, and its shipper presenting ``token`` to the core."""
        gateway = build_gateway(self.edge_settings, EDGE)
        outbox = gateway.outbox
        shipping = self.edge_settings.updated(door={"token": SecretStr(token)})
        shipper = build_shipper(shipping, EDGE, outbox, backoff_base_s=0.05)
        return gateway, shipper, outbox

    def dataset_images(self, version: str) -> dict[str, str]:
        """sha256 -> label of every image the dataset version's manifest lists."""
        layout = Layout(self.core_settings.buckets)
        raw = self.store.get_bytes(layout.dataset_manifest(EDGE, version))
        manifest = Manifest.from_bytes(raw, version)
        return {entry.sha256: path.split("/")[1] for path, entry in manifest.files.items()}

    def versions(self) -> list[str]:
        layout = Layout(self.core_settings.buckets)
        keys = [o.location.key for o in self.store.list(layout.datasets_prefix(EDGE))]
        return sorted(k.split("/")[2] for k in keys if k.endswith("/manifest.json"))


@pytest.fixture
def loop(stack: Stack, settings: Settings, store: ObjectStore, unique: str, tmp_path: Path) -> Loop:
    port = free_port()
    pki = {"ca_file": settings.ca_file, "cert_file": settings.cert_file, "key_file": settings.key_file}
    core = settings.updated(
        state_dir=tmp_path / "core-state",
        buckets={"training": f"test-train-{unique}"},
        kafka={"topic_training_data_ready": f"test-tdr-{unique}"},
        tls=pki,
    )
    ensure_topics(core.kafka)
    edge = settings.updated(
        state_dir=tmp_path / "edge-state",
        buckets={"edge_prefix": f"t{unique}-"},
        uplink={"shipper_backoff_max_s": 0.5},
        door={"url": f"https://127.0.0.1:{port}", "token": SecretStr(TOKEN)},
        tls={"ca_file": settings.ca_file},
    )
    gateway_tokens(edge, EDGE, devices={"camera-1": DEVICE}, staff={"manager": STAFF})
    return Loop(edge, core, store, port)


def _accept(gateway: Gateway, sku: str, seeds: list[int]) -> set[str]:
    shas = set()
    for seed in seeds:
        data = image_bytes(seed)
        gateway.accept_image(sku, "image/jpeg", data)
        shas.add(hashlib.sha256(data).hexdigest())
    return shas


def test_a_completed_set_is_shipped_into_a_dataset_version(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    accepted = _accept(gateway, "COLA-330", [1, 2, 3])
    set_id, _ = gateway.complete("COLA-330")

    with loop.core():
        results = shipper.ship_due()

    assert [(r.set_id, r.outcome, r.version) for r in results] == [(set_id, "shipped", "v000001")]
    assert _status(outbox, set_id) == SHIPPED
    assert loop.dataset_images("v000001") == {sha: "COLA-330" for sha in accepted}


def test_sets_wait_while_the_core_is_down_and_all_arrive_when_it_is_back(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    accepted = _accept(gateway, "COLA-330", [10, 11]) | _accept(gateway, "CHIPS-200", [12, 13, 14])
    gateway.complete("COLA-330")
    gateway.complete("CHIPS-200")

    down = shipper.ship_due()  # nothing listens on the receiver's port
    assert {r.outcome for r in down} == {"retry"}
    assert [s.status for s in outbox.sets()] == [PENDING, PENDING]
    assert all(s.attempts == 1 and s.last_error for s in outbox.sets())

    stop = threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop, 0.1))
    thread.start()
    try:
        wait_for(lambda: min(s.attempts for s in outbox.sets()) >= 3, 30, what="retries while down")
        assert [s.status for s in outbox.sets()] == [PENDING, PENDING]  # still down: still waiting
        with loop.core():
            wait_for(lambda: all(s.status == SHIPPED for s in outbox.sets()), 60, what="both sets shipped")
    finally:
        stop.set()
        thread.join()

    shipped: dict[str, str] = {}
    for version in loop.versions():
        shipped |= loop.dataset_images(version)
    assert set(shipped) == accepted
    assert sorted(loop.versions()) == ["v000001", "v000002"]


def test_a_set_shipped_again_after_a_lost_answer_is_not_duplicated(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    _accept(gateway, "COLA-330", [20, 21])
    set_id, _ = gateway.complete("COLA-330")
    with loop.core():
        first = shipper.ship_due()
        outbox.mark_retry(set_id, "pretend the answer was lost", 0)  # the edge never recorded it
        with sqlite3.connect(outbox.path) as db:  # as if the shipper died before recording "shipped"
            db.execute("UPDATE sets SET status = 'pending' WHERE id = ?", (set_id,))
        second = shipper.ship_due()

    assert first[0].outcome == "shipped" and second[0].outcome == "duplicate"
    assert first[0].version == second[0].version and loop.versions() == ["v000001"]


def test_labelled_hard_examples_ship_with_the_next_set(loop: Loop) -> None:
    gateway, shipper, _ = loop.gateway()
    layout = Layout(loop.edge_settings.buckets)
    capture, _ = layout.unrecognized(EDGE, date(2026, 11, 23), "cap-7")
    hard = image_bytes(30)
    loop.store.put_bytes(capture, hard, "image/jpeg")
    gateway.label_hard_example("2026-11-23", "cap-7", "CHIPS-200")
    accepted = _accept(gateway, "COLA-330", [31])
    gateway.complete("COLA-330")

    with loop.core():
        shipper.ship_due()

    assert loop.dataset_images("v000001") == {
        **{sha: "COLA-330" for sha in accepted},
        hashlib.sha256(hard).hexdigest(): "CHIPS-200",
    }
    assert gateway.pending_hard_examples() == []


def test_a_set_the_core_refuses_is_kept_with_the_reason_and_its_images(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    accepted = _accept(gateway, "COLA-330", [40, 41])
    set_id, _ = gateway.complete("COLA-330")

    with loop.core(max_set_members=1):
        result = shipper.ship_due()

    assert result[0].outcome == "rejected" and "413" in (result[0].reason or "")
    assert _status(outbox, set_id) == REJECTED
    assert _stored(loop) == accepted


def test_a_rejected_set_requeued_by_an_operator_ships(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    accepted = _accept(gateway, "COLA-330", [42, 43])
    set_id, _ = gateway.complete("COLA-330")
    with loop.core(max_set_members=1):
        shipper.ship_due()

    assert outbox.requeue() == [set_id]
    with loop.core():
        result = shipper.ship_due()

    assert result[0].outcome == "shipped" and _status(outbox, set_id) == SHIPPED
    assert set(loop.dataset_images("v000001")) == accepted


def test_a_wrong_token_holds_the_set_back_and_it_ships_once_the_token_is_fixed(loop: Loop) -> None:
    gateway, _, outbox = loop.gateway()
    wrong = loop.gateway(token=new_token())[1]
    accepted = _accept(gateway, "COLA-330", [44])
    set_id, _ = gateway.complete("COLA-330")

    with loop.core():
        refused = wrong.ship(outbox.sets()[0])
        right = loop.gateway()[1]
        shipped = right.ship(outbox.sets()[0])

    assert refused.outcome == "retry" and "401" in (refused.reason or "")
    assert shipped.outcome == "shipped" and _status(outbox, set_id) == SHIPPED
    assert set(loop.dataset_images("v000001")) == accepted


def test_an_image_changed_on_the_edge_with_no_spooled_copy_keeps_the_set_aside_naming_it(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    _accept(gateway, "COLA-330", [60, 61])
    set_id, _ = gateway.complete("COLA-330")
    changed = outbox.items(set_id)[0]
    outbox.spool.drop(changed.key)
    loc = Location(changed.bucket, changed.key)
    corrupt_in_place(loop.store, loc, _flip_middle_byte(loop.store.get_bytes(loc)))

    with loop.core():
        result = shipper.ship_due()

    assert result[0].outcome == "rejected"
    assert changed.key in (result[0].reason or "") and "does not match" in (result[0].reason or "")
    assert _status(outbox, set_id) == REJECTED
    assert loop.versions() == []


def test_a_damaged_spooled_copy_is_dropped_and_the_buckets_copy_shipped(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    accepted = _accept(gateway, "COLA-330", [63, 64])
    set_id, _ = gateway.complete("COLA-330")
    damaged = outbox.spool.path(outbox.items(set_id)[1].key)
    damaged.write_bytes(_flip_middle_byte(damaged.read_bytes()))

    with loop.core():
        first = shipper.ship_due()
        print("FIRST", first, outbox.sets())
        second = wait_for(shipper.ship_due, 10, what="the retry to fall due")

    assert first[0].outcome == "retry" and "spooled copies" in (first[0].reason or "")
    assert second[0].outcome == "shipped"
    assert loop.dataset_images("v000001") == {sha: "COLA-330" for sha in accepted}


def test_the_spooled_copies_of_a_shipped_set_are_removed_and_the_bucket_keeps_its_images(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    accepted = _accept(gateway, "COLA-330", [65, 66])
    set_id, _ = gateway.complete("COLA-330")
    spooled = [outbox.spool.path(item.key) for item in outbox.items(set_id)]
    assert all(path.is_file() for path in spooled)

    with loop.core():
        shipper.ship_due()

    wait_for(lambda: not any(path.exists() for path in spooled), 10, what="the spool copies to go")
    assert _stored(loop) == accepted


def test_the_spooled_copies_of_a_rejected_set_are_removed_and_the_bucket_keeps_its_images(loop: Loop) -> None:
    gateway, shipper, outbox = loop.gateway()
    accepted = _accept(gateway, "COLA-330", [67, 68])
    set_id, _ = gateway.complete("COLA-330")
    spooled = [outbox.spool.path(item.key) for item in outbox.items(set_id)]

    with loop.core(max_set_members=1):
        result = shipper.ship_due()

    assert result[0].outcome == "rejected"
    wait_for(lambda: not any(path.exists() for path in spooled), 10, what="the spool copies to go")
    assert _stored(loop) == accepted


def _stored(loop: Loop) -> set[str]:
    """The sha256 of every image in the edge bucket's incoming prefix."""
    layout = Layout(loop.edge_settings.buckets)
    return {o.location.key.split("/")[2].split(".")[0] for o in loop.store.list(layout.incoming_prefix(EDGE))}


def _flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def test_a_transfer_broken_off_on_the_way_is_sent_again_and_arrives_intact(loop: Loop) -> None:
    gateway, _, outbox = loop.gateway()
    accepted = _accept(gateway, "COLA-330", [70, 71, 72])
    set_id, _ = gateway.complete("COLA-330")

    with loop.core(), breaking_proxy(loop.receiver_port, after=3000) as port:
        via_proxy = loop.edge_settings.updated(door={"url": f"https://127.0.0.1:{port}"})
        shipper = build_shipper(via_proxy, EDGE, outbox, backoff_base_s=0.01)
        first = shipper.ship_due()
        second = wait_for(shipper.ship_due, 10, what="the retry to fall due")

    assert first[0].outcome == "retry"
    assert second[0].outcome == "shipped" and _status(outbox, set_id) == SHIPPED
    assert loop.dataset_images("v000001") == {sha: "COLA-330" for sha in accepted}


def test_a_restarted_gateway_ships_its_outbox(loop: Loop, tmp_path: Path) -> None:
    port = free_port()
    cfg = loop.edge_settings
    env = {**os.environ, **cfg.updated(uplink={"gateway_port": port}).environment()}
    command = [str(Path(sys.executable).parent / "edgecore"), "edge", "gateway", "--edge", EDGE]
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / "gw.log").open("ab")
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for(lambda: _healthy(url), 180, what="gateway up")
        except AssertionError:
            proc.kill()
            raise
        return proc

    gateway = start()
    try:
        accepted = _post_and_complete(url)
        wait_for(
            lambda: httpx.get(f"{url}/v1/pending", headers=AS_STAFF).json()["sets"][0]["attempts"] >= 1,
            30,
            what="a failed attempt while the core is down",
        )
    finally:
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()

    with loop.core():
        gateway = start()
        try:
            wait_for(lambda: loop.versions() == ["v000001"], 60, what="the outbox shipped after the restart")
            wait_for(
                lambda: httpx.get(f"{url}/v1/pending", headers=AS_STAFF).json()["sets"] == [],
                30,
                what="outbox drained",
            )
        finally:
            gateway.send_signal(signal.SIGTERM)
            try:
                code = gateway.wait(timeout=30)
            finally:
                gateway.kill()
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a graceful stop
    assert set(loop.dataset_images("v000001")) == accepted


def _post_and_complete(url: str) -> set[str]:
    accepted = set()
    for seed in (50, 51, 52):
        data = image_bytes(seed)
        headers = {"Content-Type": "image/jpeg", **AS_DEVICE}
        assert httpx.post(f"{url}/v1/images/COLA-330", content=data, headers=headers).status_code == 201
        accepted.add(hashlib.sha256(data).hexdigest())
    assert httpx.post(f"{url}/v1/sets/COLA-330/complete", headers=AS_STAFF).status_code == 202
    return accepted


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _status(outbox: Outbox, set_id: str) -> str | None:
    found = outbox.get(set_id)
    return None if found is None else found.status
