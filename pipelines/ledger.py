"""The listener's durable record of dataset versions seen and runs launched, kept in S3.

One JSON document per consumer group, every change an S3 conditional write: the write
names the ETag the change was computed from, so of two listener replicas that both saw a
version, or both found the same pending versions, exactly one write lands and the other
reads again and finds the work done.  Nothing lives on the pod, so a restart (or a new
pod on another node) inside a coalescing window loses nothing.

The document keeps what a restart or a redelivery needs: versions not yet launched,
runs not yet recorded as launched, and launched ones for ``KEEP_S`` (longer than Kafka
keeps a record that could be redelivered), plus each dataset's newest launched version.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from foundation.errors import EdgecoreError, ServiceUnavailable
from foundation.layout import Location
from foundation.storage.store import ObjectStore
from pipelines.runs import DatasetVersion, RunRequest

log = logging.getLogger(__name__)
T = TypeVar("T")
KEEP_S = 8 * 24 * 3600.0
"""How long launched versions and runs stay in the document: a day longer than Kafka keeps a record
that could be redelivered (``EDGECORE_TOPIC_RETENTION_HOURS``, 7 days)."""
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
WARN_DOCUMENT_BYTES = MAX_DOCUMENT_BYTES // 4
ATTEMPTS = 20
"""Conditional writes tried before giving up (each loss means another replica's write landed)."""


def _empty() -> dict[str, Any]:
    return {"versions": {}, "runs": {}, "launched": {}}


class Ledger:
    """Versions pending or launched, runs launching or launched; read back after every lost write."""

    def __init__(self, store: ObjectStore, location: Location, now: Callable[[], float] = time.time) -> None:
        self._store = store
        self.location = location
        self._now = now
        self._doc: dict[str, Any] = _empty()
        self._etag: str | None = None
        self._reload()

    def close(self) -> None:
        """Nothing is held open: every change is already in S3."""

    # -- reading ---------------------------------------------------------------------------------
    def unassigned(self) -> list[tuple[DatasetVersion, float]]:
        """Versions waiting for a run, oldest first (as this replica last read or wrote them)."""
        rows = [
            (_version(key, v), float(v["first_seen"]))
            for key, v in self._doc["versions"].items()
            if v["run_key"] is None
        ]
        return sorted(rows, key=lambda r: (r[1], r[0].dataset, r[0].version))

    def launching(self) -> list[RunRequest]:
        self._reload()
        runs = sorted(self._doc["runs"].values(), key=lambda r: r["created"])
        return [RunRequest.from_json(r["request"]) for r in runs if r["status"] == "launching"]

    def runs(self) -> list[dict[str, Any]]:
        self._reload()
        return sorted(({"run_key": k, **r} for k, r in self._doc["runs"].items()), key=lambda r: r["created"])

    # -- changing --------------------------------------------------------------------------------
    def record(self, dv: DatasetVersion) -> bool:
        """True if this version is new (and is now durably pending)."""

        def change(doc: dict[str, Any]) -> bool:
            key = f"{dv.dataset}/{dv.version}"
            if key in doc["versions"]:
                return False
            doc["versions"][key] = {
                "bucket": dv.bucket,
                "prefix": dv.prefix,
                "edge": dv.edge,
                "first_seen": self._now(),
                "run_key": None,
            }
            return True

        return self._update(change)

    def assign(self, datasets: list[DatasetVersion]) -> RunRequest | None:
        """Give a new run key to those of ``datasets`` still unassigned; None if another replica
        assigned them all first.  The key is made once: if a write landed but its answer was lost,
        the document read again holds this key, and that is this run."""
        run_key = f"run-{uuid.uuid4().hex[:16]}"

        def change(doc: dict[str, Any]) -> RunRequest | None:
            if run_key in doc["runs"]:
                return RunRequest.from_json(doc["runs"][run_key]["request"])
            free = [d for d in datasets if _unassigned(doc, d)]
            if not free:
                return None
            request = RunRequest(run_key, tuple(free), _newest_assigned(doc, free))
            doc["runs"][request.run_key] = {
                "created": self._now(),
                "status": "launching",
                "run_id": None,
                "request": request.to_json(),
            }
            for d in free:
                doc["versions"][f"{d.dataset}/{d.version}"]["run_key"] = request.run_key
            return request

        return self._update(change)

    def mark_launched(self, run_key: str, run_id: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            run = doc["runs"].get(run_key)
            if run is None or run["status"] == "launched":
                return
            run.update(status="launched", run_id=run_id)
            for d in RunRequest.from_json(run["request"]).datasets:
                newest = doc["launched"].get(d.dataset)
                if newest is None or d.version > newest:  # zero-padded: lexical = numeric
                    doc["launched"][d.dataset] = d.version
            self._prune(doc)

        self._update(change)

    # -- the document ----------------------------------------------------------------------------
    def _update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the document and write it if it still has the ETag it was read at."""
        for _ in range(ATTEMPTS):
            doc = json.loads(json.dumps(self._doc))  # a copy: a lost write leaves ours untouched
            before = json.dumps(doc, sort_keys=True)
            result = change(doc)
            if json.dumps(doc, sort_keys=True) == before:
                return result
            body = _encode(doc)
            if len(body) > WARN_DOCUMENT_BYTES:
                log.warning(
                    "listener ledger %s is %d bytes (refused above %d)",
                    self.location.uri,
                    len(body),
                    MAX_DOCUMENT_BYTES,
                )
            etag = self._guard(partial(self._store.put_if_unchanged, self.location, body, self._etag))
            if etag is not None:
                self._doc, self._etag = doc, etag
                return result
            self._reload()  # another replica wrote first: decide again on what it wrote
        raise ServiceUnavailable(f"listener ledger {self.location.uri}: {ATTEMPTS} conditional writes lost")

    def _reload(self) -> None:
        found = self._guard(lambda: self._store.get_tagged(self.location, MAX_DOCUMENT_BYTES))
        if found is None:
            self._doc, self._etag = _empty(), None
        else:
            self._doc, self._etag = json.loads(found[0]), found[1]

    def _prune(self, doc: dict[str, Any]) -> None:
        cutoff = self._now() - KEEP_S
        old = {k for k, r in doc["runs"].items() if r["status"] == "launched" and r["created"] < cutoff}
        doc["runs"] = {k: r for k, r in doc["runs"].items() if k not in old}
        doc["versions"] = {k: v for k, v in doc["versions"].items() if v["run_key"] not in old}

    def _guard(self, call: Callable[[], T]) -> T:
        """Any S3 failure is retryable here: the record is redelivered, never lost."""
        try:
            return call()
        except EdgecoreError as exc:
            raise ServiceUnavailable(f"listener ledger {self.location.uri}: {exc}") from exc


def _unassigned(doc: dict[str, Any], d: DatasetVersion) -> bool:
    entry = doc["versions"].get(f"{d.dataset}/{d.version}")
    return entry is not None and entry["run_key"] is None


def _newest_assigned(doc: dict[str, Any], datasets: list[DatasetVersion]) -> tuple[tuple[str, str], ...]:
    """(dataset, newest version an earlier run took) for each dataset of ``datasets``."""
    names = {d.dataset for d in datasets}
    newest = {n: v for n, v in doc["launched"].items() if n in names}
    for key, entry in doc["versions"].items():
        name, version = key.split("/", 1)
        if name in names and entry["run_key"] is not None and version > newest.get(name, ""):
            newest[name] = version  # zero-padded: lexical = numeric
    return tuple(sorted(newest.items()))


def _version(key: str, v: dict[str, Any]) -> DatasetVersion:
    dataset, version = key.split("/", 1)
    return DatasetVersion(dataset, version, v["bucket"], v["prefix"], v["edge"])


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
