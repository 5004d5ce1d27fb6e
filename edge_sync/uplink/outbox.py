"""The edge's durable outbox: complete image sets waiting to ship to the core.

SQLite in WAL mode with ``synchronous=FULL``: once :meth:`Outbox.complete` returned, the
set survives a crash or a power cut.  An image belongs to at most one set (its key is
the primary key of ``items``), so completing a SKU twice never ships an image twice, and
nothing is deleted: a shipped set keeps its rows and the version the core gave it.
The gateway (completing sets) and the shipper (sending them) may be separate processes.
Beside the database, the outbox's :class:`edge_sync.uplink.spool.Spool` keeps a local copy of
each accepted image until its set has shipped or been rejected (``<edge>.spool/``, keyed
like the bucket).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_sync.uplink.archive import dataset_path
from edge_sync.uplink.spool import Spool
from foundation.journal import Journal

PENDING = "pending"
SHIPPED = "shipped"
REJECTED = "rejected"
INCOMING = "incoming"
HARD_EXAMPLE = "hard-example"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sets (
    id TEXT PRIMARY KEY,
    edge TEXT NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    version TEXT
);
CREATE TABLE IF NOT EXISTS items (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    set_id TEXT NOT NULL REFERENCES sets(id),
    kind TEXT NOT NULL,
    sku TEXT NOT NULL,
    image_id TEXT NOT NULL,
    ext TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX IF NOT EXISTS items_by_set ON items(set_id);
CREATE INDEX IF NOT EXISTS sets_by_status ON sets(status, next_attempt);
"""


@dataclass(frozen=True)
class Item:
    """One stored image of a set (its sha256 was recorded when it was accepted)."""

    bucket: str
    key: str
    kind: str
    sku: str
    image_id: str
    ext: str
    sha256: str
    size: int

    @property
    def member_name(self) -> str:
        return f"{self.sku}/{self.image_id}.{self.ext}"

    @property
    def dataset_path(self) -> str:
        return dataset_path(self.sku, self.sha256, self.ext)


@dataclass(frozen=True)
class OutboxSet:
    id: str
    edge: str
    created: float
    status: str
    attempts: int
    next_attempt: float
    last_error: str | None
    version: str | None


class Outbox:
    """One edge's outbox file; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spool = Spool(path.with_suffix(".spool"))
        self._journal = Journal(path, _SCHEMA)

    def close(self) -> None:
        self._journal.close()

    # -- the gateway's side ------------------------------------------------------------
    def complete(self, edge: str, items: Iterable[Item]) -> tuple[str, int] | None:
        """Record a set of the given images not yet in any set; ``None`` if all were."""
        set_id = uuid.uuid4().hex
        with self._journal.transaction() as db:
            db.execute("INSERT INTO sets (id, edge, created) VALUES (?, ?, ?)", (set_id, edge, time.time()))
            added = self._add(db, set_id, items)
            if added == 0:
                db.execute("DELETE FROM sets WHERE id = ?", (set_id,))
                return None
        return set_id, added

    def known_keys(self, bucket: str, keys: Iterable[str]) -> set[str]:
        """Which of these keys are already in a set."""
        wanted = list(keys)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._journal.query(
                f"SELECT key FROM items WHERE bucket = ? AND key IN ({marks})", (bucket, *chunk)
            )
            found.update(r["key"] for r in rows)
        return found

    # -- the shipper's side ------------------------------------------------------------
    def due(self, now: float | None = None) -> list[OutboxSet]:
        """Pending sets whose next attempt is due, oldest first."""
        rows = self._journal.query(
            "SELECT * FROM sets WHERE status = ? AND next_attempt <= ? ORDER BY created",
            (PENDING, time.time() if now is None else now),
        )
        return [_set(r) for r in rows]

    def next_due_time(self) -> float | None:
        row = self._journal.query("SELECT MIN(next_attempt) AS t FROM sets WHERE status = ?", (PENDING,))[0]
        return None if row["t"] is None else float(row["t"])

    def items(self, set_id: str) -> list[Item]:
        rows = self._journal.query(
            "SELECT * FROM items WHERE set_id = ? ORDER BY sku, image_id, key", (set_id,)
        )
        return [
            Item(r["bucket"], r["key"], r["kind"], r["sku"], r["image_id"], r["ext"], r["sha256"], r["size"])
            for r in rows
        ]

    def mark_shipped(self, set_id: str, version: str) -> None:
        with self._journal.transaction() as db:
            db.execute(
                "UPDATE sets SET status = ?, version = ?, last_error = NULL WHERE id = ?",
                (SHIPPED, version, set_id),
            )

    def mark_retry(self, set_id: str, error: str, delay_s: float) -> int:
        """Count a failed attempt and schedule the next one; returns the attempts so far."""
        with self._journal.transaction() as db:
            db.execute(
                "UPDATE sets SET attempts = attempts + 1, last_error = ?, next_attempt = ? WHERE id = ?",
                (error[:2000], time.time() + delay_s, set_id),
            )
            row = db.execute("SELECT attempts FROM sets WHERE id = ?", (set_id,)).fetchone()
        return int(row["attempts"])

    def mark_rejected(self, set_id: str, reason: str) -> None:
        """The core refused the set for good: keep it (and its images) for an operator."""
        with self._journal.transaction() as db:
            db.execute(
                "UPDATE sets SET status = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
                (REJECTED, reason[:2000], set_id),
            )

    def requeue(self, set_id: str | None = None) -> list[str]:
        """Send rejected sets (one, or all) again, at once: an operator fixed what was wrong."""
        where, args = ("status = ? AND id = ?", (REJECTED, set_id)) if set_id else ("status = ?", (REJECTED,))
        with self._journal.transaction() as db:
            ids = [r["id"] for r in db.execute(f"SELECT id FROM sets WHERE {where}", args).fetchall()]
            db.execute(
                f"UPDATE sets SET status = ?, next_attempt = ?, last_error = NULL WHERE {where}",
                (PENDING, time.time(), *args),
            )
        return ids

    def get(self, set_id: str) -> OutboxSet | None:
        rows = self._journal.query("SELECT * FROM sets WHERE id = ?", (set_id,))
        return _set(rows[0]) if rows else None

    def sets(self, status: str | None = None) -> list[OutboxSet]:
        if status is None:
            rows = self._journal.query("SELECT * FROM sets ORDER BY created")
        else:
            rows = self._journal.query("SELECT * FROM sets WHERE status = ? ORDER BY created", (status,))
        return [_set(r) for r in rows]

    def backlog(self) -> int:
        """Sets waiting to ship (retries included)."""
        return int(self._journal.query("SELECT COUNT(*) AS n FROM sets WHERE status = ?", (PENDING,))[0]["n"])

    def counts(self, set_id: str) -> dict[str, int]:
        rows = self._journal.query(
            "SELECT sku, COUNT(*) AS n FROM items WHERE set_id = ? GROUP BY sku", (set_id,)
        )
        return {r["sku"]: int(r["n"]) for r in rows}

    @staticmethod
    def _add(db: sqlite3.Connection, set_id: str, items: Iterable[Item]) -> int:
        added = 0
        for it in items:
            cur = db.execute(
                "INSERT OR IGNORE INTO items (bucket, key, set_id, kind, sku, image_id, ext, sha256, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (it.bucket, it.key, set_id, it.kind, it.sku, it.image_id, it.ext, it.sha256, it.size),
            )
            added += cur.rowcount
        return added


def _set(row: sqlite3.Row) -> OutboxSet:
    return OutboxSet(
        id=row["id"],
        edge=row["edge"],
        created=row["created"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt=row["next_attempt"],
        last_error=row["last_error"],
        version=row["version"],
    )


def outbox_path(outbox_dir: Path, edge: str) -> Path:
    return outbox_dir / f"{edge}.sqlite"
