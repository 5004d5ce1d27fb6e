"""Hot swap: a new version loads beside the old one and is switched in without a failed request.

The controller's protocol is exercised as the edge sync controller will drive it: the
version is delivered to the edge bucket, the serving pointer is written, and KServe's
model repository endpoint ``POST /v2/repository/models/<model>/load`` is called.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from foundation.layout import TFLITE_FILE, Layout, Location
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for
from testkit.serving import Server, kiosk_jpeg, point_at, publish_to_edge, running_server

PHOTOS = [
    kiosk_jpeg(label, 100 + i) for i in range(4) for label in ("APPLE-RED", "LIME-GREEN", "BLUEBERRY-BOX")
]


@dataclass(frozen=True)
class Fleet:
    server: Server
    uris: dict[str, str]


@pytest.fixture
def fleet(settings: Settings, store: ObjectStore, layout: Layout, tmp_path: Path) -> Iterator[Fleet]:
    edge = f"swap-{uuid.uuid4().hex[:10]}"
    uris = {
        v: publish_to_edge(store, layout, tmp_path, edge, v, seed=n)
        for n, v in enumerate(["v000001", "v000002"])
    }
    point_at(store, layout, edge, "v000001", uris["v000001"])
    with running_server(settings, edge, tmp_path / "state") as server:
        yield Fleet(server, uris)


@dataclass
class Outcome:
    started: float
    status: int
    version: str | None


def _hammer(server: Server, stop: threading.Event, out: list[Outcome], seed: int) -> None:
    url = f"{server.url}/v1/models/{server.model}:predict"
    with httpx.Client(timeout=30) as client:
        i = seed
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = client.post(
                    url, content=PHOTOS[i % len(PHOTOS)], headers={"content-type": "image/jpeg"}
                )
                version = response.json().get("model_version") if response.status_code == 200 else None
                out.append(Outcome(started, response.status_code, version))
            except httpx.HTTPError:
                out.append(Outcome(started, 0, None))
            i += 1


def _metric(server: Server, prefix: str) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_swap_under_concurrent_load_fails_no_request(
    fleet: Fleet, store: ObjectStore, layout: Layout
) -> None:
    server = fleet.server
    stop = threading.Event()
    outcomes: list[list[Outcome]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=_hammer, args=(server, stop, outcomes[n], n)) for n in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: all(len(o) >= 5 for o in outcomes), 60, what="every client answered before the swap")

    point_at(store, layout, server.edge, "v000002", fleet.uris["v000002"])
    loaded = httpx.post(f"{server.url}/v2/repository/models/{server.model}/load", timeout=120)
    swapped_at = time.monotonic()
    wait_for(
        lambda: all(sum(o.started > swapped_at for o in list(per)) >= 5 for per in outcomes),
        60,
        what="every client answered after the swap",
    )
    stop.set()
    for t in threads:
        t.join()

    assert loaded.status_code == 200, loaded.text
    assert loaded.json() == {"name": server.model, "load": True}
    everything = [o for per_client in outcomes for o in per_client]
    assert [o for o in everything if o.status != 200] == []
    assert {o.version for o in everything} == {"v000001", "v000002"}
    assert {o.version for o in everything if o.started > swapped_at} == {"v000002"}
    for per_client in outcomes:  # each client sees the old version, then only the new one
        versions = [o.version for o in per_client]
        first_new = versions.index("v000002")
        assert set(versions[:first_new]) == {"v000001"} and set(versions[first_new:]) == {"v000002"}
    assert (
        _metric(server, f'edgecore_serving_model_version{{model="{server.model}",version="v000002"}}') == 1.0
    )
    assert (
        _metric(server, f'edgecore_serving_model_version{{model="{server.model}",version="v000001"}}') == 0.0
    )


def test_loading_the_version_already_served_is_a_no_op(fleet: Fleet) -> None:
    server = fleet.server
    before = _metric(server, f'edgecore_model_swaps_total{{model="{server.model}"}}')

    loaded = httpx.post(f"{server.url}/v2/repository/models/{server.model}/load", timeout=120)

    assert loaded.status_code == 200
    assert _metric(server, f'edgecore_model_swaps_total{{model="{server.model}"}}') == before


def test_unload_then_load_takes_the_model_out_and_back(fleet: Fleet) -> None:
    server = fleet.server
    predict = f"{server.url}/v1/models/{server.model}:predict"
    headers = {"content-type": "image/jpeg"}

    unloaded = httpx.post(f"{server.url}/v2/repository/models/{server.model}/unload", timeout=30)
    while_unloaded = httpx.post(predict, content=PHOTOS[0], headers=headers, timeout=30)
    loaded = httpx.post(f"{server.url}/v2/repository/models/{server.model}/load", timeout=120)
    after = httpx.post(predict, content=PHOTOS[0], headers=headers, timeout=30)

    assert unloaded.json() == {"name": server.model, "unload": True}
    assert while_unloaded.status_code == 404
    assert loaded.status_code == 200
    assert after.status_code == 200 and after.json()["model_version"] == "v000001"


def test_a_tampered_version_is_refused_and_the_old_one_keeps_serving(
    fleet: Fleet, store: ObjectStore, layout: Layout
) -> None:
    server = fleet.server
    uri = fleet.uris["v000002"]
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    store.put_bytes(Location(bucket, key + TFLITE_FILE), b"not the model the manifest describes")
    point_at(store, layout, server.edge, "v000002", uri)

    loaded = httpx.post(f"{server.url}/v2/repository/models/{server.model}/load", timeout=120)
    after = httpx.post(
        f"{server.url}/v1/models/{server.model}:predict",
        content=PHOTOS[0],
        headers={"content-type": "image/jpeg"},
        timeout=30,
    )

    assert loaded.status_code == 503
    assert "sha256" in loaded.json()["error"]
    assert after.status_code == 200 and after.json()["model_version"] == "v000001"
