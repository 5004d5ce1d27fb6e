"""The shipper: sends each complete set from the outbox to the core receiver.

A set is streamed as a tar straight from the edge bucket to the HTTP request (each
image is read from S3 in chunks while it is sent; a few images ahead are prefetched),
so memory does not grow with the set.  Before a set's first attempt the labelled hard
examples not yet shipped are attached to it in the outbox, so every retry sends exactly
the same images and the core recognizes a retransmission by the set digest.

Failures carry the decision: the core unreachable, a 5xx, a 408/429 or a broken
stream are retried with exponential backoff (with jitter, capped by
``shipper_backoff_max_s``), across restarts, because the schedule lives in the outbox;
any other 4xx marks the set rejected with the core's reason and keeps it, and its
images, for an operator.  Nothing is ever deleted from the edge bucket.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from edge_sync.archive import DIGEST_HEADER, END_OF_ARCHIVE, member_header, padding
from edge_sync.memory import bound_large_allocations
from edge_sync.outbox import HARD_EXAMPLE, Item, Outbox, OutboxSet
from edgecore.errors import EdgecoreError, IntegrityError, ServiceUnavailable
from edgecore.layout import Layout, Location, check_name
from edgecore.settings import Settings
from edgecore.storage import ObjectStore

log = logging.getLogger(__name__)
RETRY_STATUSES = {408, 425, 429}
PREFETCH = 16


@dataclass(frozen=True)
class ShipResult:
    set_id: str
    outcome: str  # shipped | duplicate | retry | rejected
    version: str | None = None
    reason: str | None = None


class Shipper:
    def __init__(
        self,
        settings: Settings,
        edge: str,
        store: ObjectStore,
        outbox: Outbox,
        hard_examples: Callable[[], list[Item]],
        backoff_base_s: float = 1.0,
    ) -> None:
        bound_large_allocations()
        self.settings = settings
        self.edge = check_name(edge, "edge id")
        self.store = store
        self.layout = Layout(settings)
        self.outbox = outbox
        self.hard_examples = hard_examples
        self.backoff_base_s = backoff_base_s
        self.url = settings.receiver_url.rstrip("/")
        token = settings.edge_token.get_secret_value()
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0, connect=5.0),
        )

    def close(self) -> None:
        self._client.close()

    # -- the loop ----------------------------------------------------------------------
    def run(self, stop: threading.Event, idle_s: float = 2.0) -> None:
        """Ship due sets until ``stop``; sleeps until the next retry is due (or ``idle_s``)."""
        while not stop.is_set():
            try:
                self.ship_due()
            except Exception:  # the outbox keeps every set: log, wait, try again
                log.exception("shipping round failed")
            next_due = self.outbox.next_due_time()
            wait = idle_s if next_due is None else min(idle_s, max(0.0, next_due - time.time()))
            stop.wait(wait)

    def ship_due(self) -> list[ShipResult]:
        return [self.ship(s) for s in self.outbox.due()]

    def ship(self, outbox_set: OutboxSet) -> ShipResult:
        try:
            if not outbox_set.hard_examples_attached:
                hard = [i for i in self.hard_examples() if i.kind == HARD_EXAMPLE]
                added = self.outbox.attach_hard_examples(outbox_set.id, hard)
                if added:
                    log.info("set %s: attached %d labelled hard examples", outbox_set.id, added)
            result = self._send(outbox_set.id)
        except (ServiceUnavailable, httpx.TransportError, ValueError) as exc:  # ValueError: a garbled answer
            result = ShipResult(outbox_set.id, "retry", reason=f"{type(exc).__name__}: {exc}")
        except EdgecoreError as exc:  # an image missing or corrupt on the edge: keep for an operator
            result = ShipResult(outbox_set.id, "rejected", reason=f"{type(exc).__name__}: {exc}")
        self._record(outbox_set, result)
        return result

    def _record(self, outbox_set: OutboxSet, result: ShipResult) -> None:
        if result.outcome in ("shipped", "duplicate"):
            assert result.version is not None
            self.outbox.mark_shipped(result.set_id, result.version)
            log.info("set %s: %s as %s", result.set_id, result.outcome, result.version)
        elif result.outcome == "rejected":
            self.outbox.mark_rejected(result.set_id, result.reason or "rejected")
            log.error("set %s rejected: %s", result.set_id, result.reason)
        else:
            delay = min(self.settings.shipper_backoff_max_s, self.backoff_base_s * 2**outbox_set.attempts)
            delay *= random.uniform(0.5, 1.0)
            attempts = self.outbox.mark_retry(result.set_id, result.reason or "retry", delay)
            log.warning(
                "set %s: attempt %d failed (%s); next in %.1fs", result.set_id, attempts, result.reason, delay
            )

    # -- one attempt -------------------------------------------------------------------
    def _send(self, set_id: str) -> ShipResult:
        items = self.outbox.items(set_id)
        digest = self.outbox.digest(set_id)
        base = f"{self.url}/v1/edges/{self.edge}/sets"
        known = self._client.get(f"{base}/{digest}")
        if known.status_code == 200:
            return ShipResult(set_id, "duplicate", version=known.json()["version"])
        if known.status_code != 404:
            return self._refused(set_id, known)
        response = self._client.post(
            base,
            content=self._tar(items),
            headers={"Content-Type": "application/x-tar", DIGEST_HEADER: digest},
            timeout=httpx.Timeout(300.0, connect=5.0),
        )
        if response.status_code in (200, 201):
            body = response.json()
            outcome = "duplicate" if body["duplicate"] else "shipped"
            return ShipResult(set_id, outcome, version=body["version"])
        return self._refused(set_id, response)

    @staticmethod
    def _refused(set_id: str, response: httpx.Response) -> ShipResult:
        try:
            reason = str(response.json().get("reason", response.text))
        except ValueError:
            reason = response.text[:500]
        reason = f"HTTP {response.status_code}: {reason}"
        if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
            return ShipResult(set_id, "retry", reason=reason)
        return ShipResult(set_id, "rejected", reason=reason)

    def _tar(self, items: list[Item]) -> Iterator[bytes]:
        """The tar, image by image; ``PREFETCH`` images are read ahead to hide S3 latency."""
        with ThreadPoolExecutor(PREFETCH, thread_name_prefix="shipper-read") as pool:
            ahead: deque[Future[bytes]] = deque()
            queue = iter(items)
            for item in queue:
                ahead.append(pool.submit(self._read, item))
                if len(ahead) >= PREFETCH:
                    break
            for item in items:
                data = ahead.popleft().result()
                nxt = next(queue, None)
                if nxt is not None:
                    ahead.append(pool.submit(self._read, nxt))
                yield member_header(item.member_name, len(data))
                yield data  # not joined with its header: that would copy every image once more
                if pad := padding(len(data)):
                    yield pad
            yield END_OF_ARCHIVE

    def _read(self, item: Item) -> bytes:
        """One image, verified against the sha256 recorded when it was accepted."""
        data = self.store.get_bytes(Location(item.bucket, item.key), expected_sha256=item.sha256)
        if len(data) != item.size:
            raise IntegrityError(f"edge {self.edge}: {item.key} has {len(data)} bytes, recorded {item.size}")
        return data
