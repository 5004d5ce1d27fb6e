"""The shipper: sends each complete set from the outbox to the core receiver.

A set is streamed as a tar, image by image, to the HTTP request (a few images ahead
are prefetched), so memory does not grow with the set.  Each image is read from the
outbox's spool (:mod:`edge_sync.uplink.spool`) or, where the spool has no good copy (a
hard example, a lost file), from the edge bucket through the signed wire reader.  The
request declares its length (the tar's size follows from the recorded image sizes), so
the core can refuse a set over its bounds before reading it.

The images are not hashed on the way: the core hashes every image it receives and
refuses a set whose images do not make its digest (built from the sha256s recorded at
acceptance).  Only then does the shipper hash its images: to name the one that changed
on the edge (the set is kept aside for an operator), to drop a damaged spool copy (the
bucket's is sent next time) or, when all are intact, to retry a set that was damaged in
transit.  Once a set has shipped, or been rejected, its spool copies are removed, by a
thread of their own: unlinking hundreds of image files takes a good share of a set's
transfer time, and the next set need not wait for it.  A set
is fixed when it is completed (labelled hard examples included), so every retry sends
the same images and the core recognizes a retransmission by the set digest.

Failures carry the decision: the core unreachable, a 5xx, a 408/429 or a broken
stream are retried with exponential backoff (with jitter, capped by
``shipper_backoff_max_s``), across restarts, because the schedule lives in the outbox.
A 401 or 403 says the edge's credential is wrong, not its images: the set waits, and
ships once the credential is fixed.  Any other 4xx marks the set rejected with the
core's reason and keeps it, and its images, for an operator (``edgecore edge requeue``
sends it again).  Nothing is ever deleted from the edge bucket.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from edge_sync.uplink.archive import (
    DIGEST_HEADER,
    END_OF_ARCHIVE,
    member_header,
    member_span,
    padding,
    set_digest,
)
from edge_sync.uplink.outbox import Item, Outbox, OutboxSet
from foundation.assortment import shipped
from foundation.errors import EdgecoreError, IntegrityError, NotFound, ServiceUnavailable, SetDigestMismatch
from foundation.layout import CatalogueHome, Location, check_name
from foundation.settings import UplinkSettings
from foundation.storage.reader import BucketReader

log = logging.getLogger(__name__)
RETRY_STATUSES = {408, 425, 429}
CREDENTIAL_STATUSES = {401, 403}
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
        uplink: UplinkSettings,
        door_url: str,
        edge: str,
        outbox: Outbox,
        reader: BucketReader,
        client: httpx.Client,
        catalogue: CatalogueHome,
        backoff_base_s: float = 1.0,
    ) -> None:
        """``client`` carries the edge's credential and trusts the core's CA (``service.build_shipper``)."""
        self.edge = check_name(edge, "edge id")
        self.outbox = outbox
        self.reader = reader
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = uplink.shipper_backoff_max_s
        self.url = door_url.rstrip("/")
        self.catalogue = catalogue
        self._client = client
        self._janitor = ThreadPoolExecutor(1, thread_name_prefix="spool-drop")

    def close(self) -> None:
        """Close the connections; spool copies still being removed are removed first."""
        self._janitor.shutdown(wait=True)
        self._client.close()
        self.reader.close()

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
        """One attempt: the set's items are read from the outbox once, its outcome written once."""
        items = self.outbox.items(outbox_set.id)
        try:
            result = self._send(outbox_set.id, items)
        except (ServiceUnavailable, httpx.TransportError, ValueError) as exc:  # ValueError: a garbled answer
            result = ShipResult(outbox_set.id, "retry", reason=f"{type(exc).__name__}: {exc}")
        except EdgecoreError as exc:  # an image missing or corrupt on the edge: keep for an operator
            result = ShipResult(outbox_set.id, "rejected", reason=f"{type(exc).__name__}: {exc}")
        self._record(outbox_set, result, items)
        return result

    def _record(self, outbox_set: OutboxSet, result: ShipResult, items: list[Item]) -> None:
        if result.outcome in ("shipped", "duplicate"):
            assert result.version is not None
            self.outbox.mark_shipped(result.set_id, result.version)
            self._unspool(items)
            log.info("set %s: %s as %s", result.set_id, result.outcome, result.version)
        elif result.outcome == "rejected":
            self.outbox.mark_rejected(result.set_id, result.reason or "rejected")
            self._unspool(items)  # never sent again; an operator works from the bucket
            log.error("set %s rejected: %s", result.set_id, result.reason)
        else:
            delay = min(self.backoff_max_s, self.backoff_base_s * 2**outbox_set.attempts)
            delay *= random.uniform(0.5, 1.0)
            attempts = self.outbox.mark_retry(result.set_id, result.reason or "retry", delay)
            log.warning(
                "set %s: attempt %d failed (%s); next in %.1fs", result.set_id, attempts, result.reason, delay
            )

    def _unspool(self, items: list[Item]) -> None:
        """A set that has ended (shipped or rejected) needs no spool copies any more."""
        keys = [item.key for item in items]
        self._janitor.submit(self.outbox.spool.drop_all, keys)

    # -- one attempt -------------------------------------------------------------------
    def _send(self, set_id: str, items: list[Item]) -> ShipResult:
        refused = self._send_catalogue(set_id)
        if refused is not None:
            return refused
        digest = set_digest(item.dataset_path for item in items)
        base = f"{self.url}/v1/edges/{self.edge}/sets"
        known = self._client.get(f"{base}/{digest}")
        if known.status_code == 200:
            return ShipResult(set_id, "duplicate", version=known.json()["version"])
        if known.status_code != 404:
            return self._refused(set_id, known)
        length = sum(member_span(item.size) for item in items) + len(END_OF_ARCHIVE)
        response = self._client.post(
            base,
            content=self._tar(items),
            headers={
                "Content-Type": "application/x-tar",
                "Content-Length": str(length),
                DIGEST_HEADER: digest,
            },
            timeout=httpx.Timeout(300.0, connect=5.0),
        )
        if response.status_code in (200, 201):
            body = response.json()
            outcome = "duplicate" if body["duplicate"] else "shipped"
            return ShipResult(set_id, outcome, version=body["version"])
        refused = self._refused(set_id, response)
        if _error_name(response) == SetDigestMismatch.__name__:
            return self._diagnose(refused, items)
        return refused

    def _send_catalogue(self, set_id: str) -> ShipResult | None:
        """The store's catalogue goes first, so the core trains on what the store sells now."""
        catalogue = shipped(self.reader, self.catalogue)
        if catalogue is None:
            return None
        response = self._client.put(
            f"{self.url}/v1/edges/{self.edge}/catalogue",
            content=catalogue.to_bytes(),
            headers={"Content-Type": "application/json"},
        )
        return None if response.status_code == 200 else self._refused(set_id, response)

    def _diagnose(self, refused: ShipResult, items: list[Item]) -> ShipResult:
        """The core received other images than the set's: which ones, or was it the network?"""
        damaged_copies = []
        for item in items:
            copy = self.outbox.spool.get(item.key, item.size)
            if copy is not None:
                if hashlib.sha256(copy).hexdigest() == item.sha256:
                    continue  # what was sent of this image was right
                self.outbox.spool.drop(item.key)
                damaged_copies.append(item.key)
            try:  # the bucket's copy: what was sent, or what will be
                self._from_bucket(item, verify_sha256=True)
            except (IntegrityError, NotFound) as exc:
                return ShipResult(refused.set_id, "rejected", reason=f"{refused.reason}; on the edge: {exc}")
        if damaged_copies:
            reason = f"{refused.reason}; spooled copies of {', '.join(damaged_copies)} were damaged: dropped"
        else:
            reason = f"{refused.reason}; every image is intact on the edge, so it was damaged in transit"
        return ShipResult(refused.set_id, "retry", reason=reason)

    @staticmethod
    def _refused(set_id: str, response: httpx.Response) -> ShipResult:
        try:
            reason = str(response.json().get("reason", response.text))
        except ValueError:
            reason = response.text[:500]
        reason = f"HTTP {response.status_code}: {reason}"
        if response.status_code in CREDENTIAL_STATUSES:
            reason = f"{reason} (the core refused this edge's credential; the set waits until it is fixed)"
            return ShipResult(set_id, "retry", reason=reason)
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
        """One image: the spool's copy, else the bucket's (not hashed: the core hashes it)."""
        copy = self.outbox.spool.get(item.key, item.size)
        return copy if copy is not None else self._from_bucket(item)

    def _from_bucket(self, item: Item, verify_sha256: bool = False) -> bytes:
        """One image; with ``verify_sha256``, checked against the sha256 recorded when it was accepted."""
        loc = Location(item.bucket, item.key)
        data = self.reader.get_bytes(loc, expected_sha256=item.sha256, verify_sha256=verify_sha256)
        if len(data) != item.size:
            raise IntegrityError(f"edge {self.edge}: {item.key} has {len(data)} bytes, recorded {item.size}")
        return data


def _error_name(response: httpx.Response) -> str | None:
    try:
        return str(response.json().get("error"))
    except (ValueError, AttributeError):
        return None
