"""The stores' people and machines, over the same HTTP APIs real ones would use.

``Store`` is a store's photo devices and its staff (gateway: upload, complete a set,
label a capture, judge a machine alarm); ``Kiosk`` is a customer-facing kiosk asking the store's model
server what a product is.  Photos come from the demo catalogue's renderer,
deterministic by (seed, edge, SKU, index): training photos and kiosk photos use
different indices, so the kiosks show the model photos it never saw.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from edgecore.demo.supervisor import DemoFailed
from edgecore.synthetic.photos import photo_rng, render

KIOSK_INDEX = 100_000
"""Kiosk photos are rendered from indices far above any training photo's."""


def _render(args: tuple[int, str, str, int]) -> bytes:
    seed, edge, sku, index = args
    return render(sku, photo_rng(seed, edge, sku, index))


def photos(pool: ProcessPoolExecutor, seed: int, edge: str, sku: str, indices: Iterable[int]) -> list[bytes]:
    return list(pool.map(_render, [(seed, edge, sku, i) for i in indices]))


def _expect(resp: httpx.Response, what: str, *ok: int) -> dict[str, Any]:
    if resp.status_code not in ok:
        raise DemoFailed(f"{what}: HTTP {resp.status_code}: {resp.text[:300]}")
    body: dict[str, Any] = resp.json()
    return body


class Store:
    """One store's devices and staff, talking to its gateway, each with its own token."""

    def __init__(self, edge: str, gateway_url: str, device_token: str, staff_token: str) -> None:
        self.edge = edge
        self._device = {"authorization": f"Bearer {device_token}"}
        self._http = httpx.Client(
            base_url=gateway_url, timeout=60.0, headers={"authorization": f"Bearer {staff_token}"}
        )

    def close(self) -> None:
        self._http.close()

    def upload(self, sku: str, images: list[bytes]) -> None:
        def post(image: bytes) -> None:
            headers = {"content-type": "image/jpeg", **self._device}
            resp = self._http.post(f"/v1/images/{sku}", content=image, headers=headers)
            _expect(resp, f"{self.edge}: uploading a photo of {sku}", 200, 201)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(post, images))

    def complete(self, sku: str) -> str:
        body = _expect(self._http.post(f"/v1/sets/{sku}/complete"), f"{self.edge}: completing {sku}", 202)
        return str(body["set_id"])

    def label(self, day: str, capture_id: str, sku: str) -> None:
        resp = self._http.post("/v1/hard-examples", json={"day": day, "capture_id": capture_id, "sku": sku})
        _expect(resp, f"{self.edge}: labelling capture {capture_id} as {sku}", 201)

    def alarms(self) -> list[dict[str, Any]]:
        """The machine alarms waiting for staff's verdict, newest first."""
        return list(_expect(self._http.get("/v1/alarms"), f"{self.edge}: machine alarms", 200)["alarms"])

    def judge(self, alarm: dict[str, Any], verdict: str) -> None:
        path = f"/v1/alarms/{alarm['machine']}/{alarm['day']}/{alarm['window_id']}/verdict"
        _expect(self._http.put(path, json={"verdict": verdict}), f"{self.edge}: judging an alarm", 201)

    def pending(self) -> dict[str, Any]:
        return _expect(self._http.get("/v1/pending"), f"{self.edge}: pending", 200)

    def wait_shipped(self, timeout_s: float) -> None:
        """Until the outbox holds no set that has not reached the core."""
        deadline = time.monotonic() + timeout_s
        while True:
            pending = self.pending()
            if not pending["sets"] and not pending["not_in_a_set"]:
                return
            if time.monotonic() > deadline:
                raise DemoFailed(f"{self.edge}: sets not shipped after {timeout_s:.0f} s: {pending}")
            time.sleep(0.5)


@dataclass
class KioskLog:
    """What one round's kiosk traffic at one store looked like."""

    latencies_s: list[float] = field(default_factory=list)
    asked: int = 0
    right: int = 0
    with_price: int = 0
    per_sku: dict[str, list[bool]] = field(default_factory=dict)

    def record(self, sku: str, answer: dict[str, Any], latency_s: float) -> bool:
        prediction = answer["predictions"][0]
        correct = prediction["sku"] == sku
        self.asked += 1
        self.right += correct
        self.with_price += "price" in prediction["top"][0]
        self.latencies_s.append(latency_s)
        self.per_sku.setdefault(sku, []).append(correct)
        return correct

    @property
    def accuracy(self) -> float:
        return self.right / self.asked if self.asked else 0.0

    def accuracy_of(self, sku: str) -> float:
        hits = self.per_sku.get(sku, [])
        return sum(hits) / len(hits) if hits else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1000 if self.latencies_s else float("nan")


class Kiosk:
    """A kiosk asking the store's model server what it photographed (raw JPEG body)."""

    def __init__(self, server_url: str, model: str) -> None:
        self.model = model
        self._http = httpx.Client(base_url=server_url, timeout=30.0)

    def close(self) -> None:
        self._http.close()

    def ask(self, image: bytes) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        resp = self._http.post(
            f"/v1/models/{self.model}:predict", content=image, headers={"content-type": "image/jpeg"}
        )
        latency = time.perf_counter() - started
        return _expect(resp, f"kiosk asking {self.model}", 200), latency

    def serving_version(self, probe: bytes) -> str | None:
        try:
            answer, _ = self.ask(probe)
        except (DemoFailed, httpx.HTTPError):
            return None
        return str(answer["model_version"])

    def session(self, shown: dict[str, list[bytes]], log: KioskLog) -> KioskLog:
        """Show every photo once, in turn across SKUs, as customers would."""
        rounds = max(len(images) for images in shown.values())
        for i in range(rounds):
            for sku, images in shown.items():
                if i < len(images):
                    answer, latency = self.ask(images[i])
                    log.record(sku, answer, latency)
        return log


def digest(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()
