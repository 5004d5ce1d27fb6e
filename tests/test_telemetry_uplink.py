"""Telemetry through the front door: a store's closed batches become versions of ``<edge>-telemetry``.

A real front door over TLS (the stack's CA) on buckets of its own in the stack's MinIO, and
the store's real telemetry shipper posting its batches to it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from edge_sync.uplink.telemetry_batches import TelemetryBatches
from edge_sync.uplink.telemetry_desk import DIGEST_HEADER
from edge_sync.uplink.telemetry_shipper import TelemetryShipper
from edgecore.stack import Stack
from foundation.alarm_verdicts import VERDICTS_DIR, AlarmVerdict, read_verdicts
from foundation.credentials import new_token
from foundation.errors import NotFound
from foundation.layout import MANIFEST, TELEMETRY_DIR, telemetry_dataset
from foundation.manifest import Manifest
from foundation.registry import claim_next_version
from foundation.settings import Settings
from foundation.tls import client_context
from testkit.uplink import DoorCore, door_core

PLANT, OTHER = "plant", "other"
TOKENS = {PLANT: new_token(), OTHER: new_token()}
NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
SENSORS = ("temperature_c", "vibration_mm_s", "current_a", "pressure_bar")


@pytest.fixture(scope="module")
def core(stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoorCore]:
    with door_core(settings, tmp_path_factory.mktemp("core"), TOKENS) as door:
        yield door


@pytest.fixture
def shippers(core: DoorCore, tmp_path: Path) -> Iterator[Callable[..., TelemetryShipper]]:
    """The store's telemetry shipper on its own batches (with another token if given); closed after."""
    made: list[TelemetryShipper] = []

    def make(token: str = TOKENS[PLANT]) -> TelemetryShipper:
        client = httpx.Client(
            headers={"Authorization": f"Bearer {token}"}, verify=client_context(core.settings.ca_file)
        )
        made.append(TelemetryShipper(core.url, PLANT, client, TelemetryBatches(tmp_path / str(len(made)))))
        return made[-1]

    yield make
    for shipper in made:
        shipper.close()


def _record(batches: TelemetryBatches, machine: str, n: int, start: float = 1_767_225_600.0) -> None:
    times = [start + 10.0 * i for i in range(n)]
    batches.record(machine, SENSORS, times, [[40.0 + i, 2.0, 11.0, math.nan] for i in range(n)])
    batches.close_batch()


def _manifest(core: DoorCore, version: str) -> Manifest:
    loc = core.layout.dataset_manifest(telemetry_dataset(PLANT), version)
    return Manifest.from_bytes(core.store.get_bytes(loc), loc.uri)


def _versions(core: DoorCore) -> list[str]:
    """The versions of the store's telemetry dataset whose manifest is written."""
    root = core.layout.datasets_prefix(telemetry_dataset(PLANT))
    keys = [o.location.key[len(root.key) :] for o in core.store.list(root)]
    return sorted(key.split("/")[0] for key in keys if key.endswith(f"/{MANIFEST}"))


def test_a_closed_batch_ships_as_the_next_version_of_the_store_s_telemetry_dataset(
    core: DoorCore, shippers: Callable[..., TelemetryShipper]
) -> None:
    shipper = shippers()
    _record(shipper.batches, "press-1", 30)
    before = _versions(core)

    outcomes = shipper.ship_ready()

    [version] = sorted(set(_versions(core)) - set(before))
    manifest = _manifest(core, version)
    assert list(outcomes.values()) == ["shipped"] and shipper.batches.ready() == []
    assert set(manifest.files) == {f"{TELEMETRY_DIR}/press-1.csv"}
    assert manifest.metadata["readings"] == 30 and manifest.metadata["edge"] == PLANT


def test_a_batch_sent_again_is_answered_with_the_version_it_already_became(core: DoorCore) -> None:
    body = b"time,machine,temperature_c,vibration_mm_s,current_a,pressure_bar,label\n"
    body += b"1767225600.000,press-2,41.0,2.0,11.0,5.0,0\n1767225610.000,press-2,41.5,2.0,11.0,5.0,0\n"
    headers = {
        "Authorization": f"Bearer {TOKENS[PLANT]}",
        "Content-Type": "text/csv",
        DIGEST_HEADER: hashlib.sha256(body).hexdigest(),
    }
    url = f"{core.url}/v1/edges/{PLANT}/telemetry"
    tls = client_context(core.settings.ca_file)

    first = httpx.post(url, content=body, headers=headers, verify=tls)
    again = httpx.post(url, content=body, headers=headers, verify=tls)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"version": first.json()["version"], "duplicate": True}


def test_a_batch_sent_with_another_store_s_token_waits_and_nothing_is_stored(
    core: DoorCore, shippers: Callable[..., TelemetryShipper]
) -> None:
    shipper = shippers(TOKENS[OTHER])
    _record(shipper.batches, "press-3", 5)
    before = _versions(core)

    outcomes = shipper.ship_ready()

    assert list(outcomes.values()) == ["retry"] and len(shipper.batches.ready()) == 1
    assert _versions(core) == before


def test_a_malformed_batch_is_refused_kept_aside_with_the_reason_and_claims_no_version(
    core: DoorCore, shippers: Callable[..., TelemetryShipper]
) -> None:
    shipper = shippers()
    secret_cell = "not-a-number-4f1c"
    header = "time,machine,temperature_c,vibration_mm_s,current_a,pressure_bar,label"
    body = f"{header}\n1,press-4,{secret_cell},1,1,1,0\n"
    digest = hashlib.sha256(body.encode()).hexdigest()
    (shipper.batches.ready_dir / f"{1:020d}-{digest}.csv").write_text(body)
    before = _versions(core)

    outcomes = shipper.ship_ready()

    reason = (shipper.rejected_dir / f"{1:020d}-{digest}.reason").read_text()
    assert list(outcomes.values()) == ["rejected"] and shipper.batches.ready() == []
    assert "HTTP 400" in reason and "row 2" in reason and secret_cell not in reason
    assert _versions(core) == before
    with pytest.raises(NotFound):
        core.store.get_bytes(core.layout.dataset_set_marker(telemetry_dataset(PLANT), digest))


def test_a_machine_whose_readings_broke_off_is_stored_as_a_file_per_run(
    core: DoorCore, shippers: Callable[..., TelemetryShipper]
) -> None:
    shipper = shippers()
    times = [1_767_225_600.0 + 10.0 * i for i in range(6)] + [1_767_229_200.0 + 10.0 * i for i in range(6)]
    shipper.batches.record("press-5", SENSORS, times, [[40.0, 2.0, 11.0, 5.0]] * 12)
    shipper.batches.close_batch()
    before = _versions(core)

    shipper.ship_ready()

    [version] = sorted(set(_versions(core)) - set(before))
    assert set(_manifest(core, version).files) == {
        f"{TELEMETRY_DIR}/press-5.1.csv",
        f"{TELEMETRY_DIR}/press-5.2.csv",
    }


def test_a_batch_whose_earlier_attempt_died_after_claiming_a_version_is_stored_in_that_version(
    core: DoorCore, shippers: Callable[..., TelemetryShipper]
) -> None:
    shipper = shippers()
    _record(shipper.batches, "press-6", 10)
    [ready] = shipper.batches.ready()
    digest = ready.stem.rsplit("-", 1)[-1]
    dataset = telemetry_dataset(PLANT)
    claimed = claim_next_version(core.store, core.layout.dataset_versions(dataset), "an attempt that died")
    marker = core.layout.dataset_set_marker(dataset, digest)
    core.store.put_bytes(marker, json.dumps({"version": claimed}).encode())

    shipper.ship_ready()

    assert claimed in _versions(core)
    assert _manifest(core, claimed).metadata["batch_sha256"] == digest


def test_a_verdict_ships_after_the_readings_it_speaks_of_as_a_version_of_its_own(
    core: DoorCore, shippers: Callable[..., TelemetryShipper]
) -> None:
    shipper = shippers()
    shipper.batches.record(
        "press-7", SENSORS, [1_767_225_600.0 + 10.0 * i for i in range(8)], [[40.0] * 4] * 8
    )
    verdict = AlarmVerdict(
        machine="press-7",
        window_id="w-7",
        start=1_767_225_600.0,
        end=1_767_225_670.0,
        verdict="dismissed",
        at=NOW,
    )
    shipper.batches.queue_verdict(verdict)
    before = _versions(core)

    shipper.ship_ready()

    readings, verdicts = sorted(set(_versions(core)) - set(before))
    assert set(_manifest(core, readings).files) == {f"{TELEMETRY_DIR}/press-7.csv"}
    [name] = _manifest(core, verdicts).files
    stored = core.store.get_bytes(core.layout.dataset_file(telemetry_dataset(PLANT), verdicts, name))
    assert name.startswith(f"{VERDICTS_DIR}/") and read_verdicts(stored) == [verdict]
    assert _manifest(core, verdicts).metadata["verdicts"] == {"confirmed": 0, "dismissed": 1}


def test_verdicts_the_door_cannot_read_are_kept_aside_and_claim_no_version(
    core: DoorCore, shippers: Callable[..., TelemetryShipper]
) -> None:
    shipper = shippers()
    body = json.dumps({"verdicts": [{"machine": "press-8", "verdict": "dismissed"}]}).encode()
    digest = hashlib.sha256(body).hexdigest()
    (shipper.batches.ready_dir / f"{1:020d}-{digest}.json").write_bytes(body)
    before = _versions(core)

    outcomes = shipper.ship_ready()

    assert list(outcomes.values()) == ["rejected"] and shipper.batches.ready() == []
    assert "HTTP 400" in (shipper.rejected_dir / f"{1:020d}-{digest}.reason").read_text()
    assert _versions(core) == before
