"""What the core's status page shows, read from where the loop keeps it.

Nothing here is a second record: dataset versions and model versions are read from
their manifests in the registry, training runs from the listener's ledger (and, for
runs the local launcher ran, their outcome and the gate's evaluation beside them),
what each store serves and how its predictor fares from the reports stores send through
the front door (``foundation.edge_report``), the rollout waves from the sync controllers'
own reads when the core holds the fleet file, and dead letters from their Kafka topic.  Each section
is read on its own, so one that cannot be read (Kafka down, no fleet file) says why
and the others still show.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from edge_sync.delivery.history import model_history
from edge_sync.delivery.service import fleet_status, select
from foundation.credentials import read_tokens_file
from foundation.edge_report import MAX_REPORT_BYTES, EdgeReport
from foundation.errors import EdgecoreError
from foundation.layout import Layout, edge_model_name, parse_version
from foundation.messaging import DLQ_REASON, DLQ_TOPIC, connection
from foundation.registry import complete_versions, read_version
from foundation.settings import Settings
from foundation.storage.objects import ObjectReader
from pipelines.ledger import Ledger
from pipelines.listener import GROUP_ID
from pipelines.results import evaluations
from pipelines.runs import RunRequest

VERSIONS_SHOWN = 12
RUNS_SHOWN = 30
DEAD_LETTERS_SHOWN = 20
DEAD_LETTERS_READ_S = 5.0
"""The longest the dead-letters section reads, however busy the topic."""


@dataclass
class CoreStatus:
    """The readers of one core: its settings, its S3 reader, and the listener group it reports on."""

    settings: Settings
    reader: ObjectReader
    ledger: Ledger
    group: str = GROUP_ID
    _versions: dict[tuple[str, str], dict[str, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Each shown dataset version's row, by (dataset, version): its manifest is read once."""
    _reading: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def layout(self) -> Layout:
        return Layout(self.settings.buckets)

    def edges(self) -> list[str]:
        """Every store the core knows: enrolled at the front door, or with a dataset."""
        tokens = self.settings.door_tokens_file
        enrolled = set(read_tokens_file(tokens)) if tokens.is_file() else set()
        return sorted(enrolled | {d["edge"] for d in self.datasets() if d["edge"]})

    def datasets(self) -> list[dict[str, Any]]:
        """Each dataset's newest versions: when each became complete, and how many images it holds.

        The models section reads the datasets too (``edges``), and a refresh asks for both at once: the
        second waits for the first, and a complete version's manifest (never rewritten) is read once,
        its row kept while the version is shown.  The versions themselves are listed on every call.
        """
        layout, found, kept = self.layout, [], {}
        with self._reading:
            for key in self.reader.list_prefixes(layout.datasets_root()):
                name = key.rstrip("/").rsplit("/", 1)[-1]
                versions = complete_versions(self.reader, layout.datasets_prefix(name))[-VERSIONS_SHOWN:]
                for v in versions:
                    kept[name, v] = self._versions.get((name, v)) or self._dataset_version(name, v)
                rows = [kept[name, v] for v in reversed(versions)]
                edge = next((r["edge"] for r in rows if r["edge"]), "")
                found.append({"dataset": name, "edge": edge, "versions": rows})
            self._versions = kept
        return found

    def runs(self) -> list[dict[str, Any]]:
        """The listener's newest runs, each with its datasets and, where it ran here, outcome and gate."""
        rows = []
        for run in reversed(self.ledger.runs()[-RUNS_SHOWN:]):
            request = RunRequest.from_json(run["request"])
            row = {
                "run_key": run["run_key"],
                "created": run["created"],
                "status": run["status"],
                "run_id": run.get("run_id"),
                "datasets": [f"{d.dataset}@{d.version}" for d in request.datasets],
                **_local_outcome(self.settings.listener_dir / "local" / run["run_key"]),
            }
            rows.append(row)
        return rows

    def models(self) -> list[dict[str, Any]]:
        """Each edge's model versions, newest first, with their accuracy and the datasets they learnt."""
        reader, layout = self.reader, self.layout
        found = []
        for edge in self.edges():
            model = edge_model_name(edge)
            history = [r for r in model_history(reader, layout, edge, model) if r.in_registry and r.manifest]
            versions = [
                {
                    "version": r.version,
                    "created": r.manifest.created.isoformat(),
                    "accuracy": r.accuracy,
                    "datasets": r.manifest.metadata.get("datasets", []),
                    "release": r.manifest.metadata.get("release"),
                }
                for r in reversed(history)
                if r.manifest is not None
            ]
            found.append({"edge": edge, "model": model, "versions": versions})
        return found

    def stores(self) -> list[dict[str, Any]]:
        """Each store's newest report: what it serves, how far behind the registry, and its series."""
        layout, found = self.layout, []
        for key in self.reader.list_prefixes(layout.edge_reports_prefix()):
            edge = key.rstrip("/").rsplit("/", 1)[-1]
            try:
                raw = self.reader.get_bytes(layout.edge_report(edge), max_bytes=MAX_REPORT_BYTES)
                report = EdgeReport.from_bytes(raw, f"of edge {edge}")
            except EdgecoreError as exc:
                found.append({"edge": edge, "error": str(exc)[:300], "points": []})
                continue
            found.append(self._store(report))
        return found

    def _store(self, report: EdgeReport) -> dict[str, Any]:
        versions = complete_versions(self.reader, self.layout.models_prefix(report.model))
        serving = parse_version(report.serving) if report.serving else 0
        received = report.received or report.at
        return {
            **report.model_dump(mode="json", exclude={"points", "received", "at"}),
            "error": None,
            "newest": versions[-1] if versions else None,
            "behind": sum(1 for v in versions if parse_version(v) > serving),
            "reported": received.isoformat(),
            "age_s": round((datetime.now(UTC) - received).total_seconds()),
            "points": [{**p.model_dump(mode="json"), "unsure_rate": p.unsure_rate} for p in report.points],
        }

    def fleet(self) -> dict[str, Any]:
        """What each edge of the core's fleet file serves, and the rollout waves."""
        if not self.settings.fleet_file.is_file():
            return {
                "edges": [],
                "waves": [],
                "note": f"no fleet file at the core ({self.settings.fleet_file}): each store's own "
                "controller knows what it serves (`edgecore edges status` at the store)",
            }
        rows, waves = fleet_status(self.settings, select(self.settings, ()))
        return {"edges": [_plain(r) for r in rows], "waves": [_plain(w) for w in waves], "note": ""}

    def dead_letters(self) -> list[dict[str, Any]]:
        """The newest records refused onto the dead-letter topic, with why (never their payload)."""
        kafka = self.settings.kafka
        consumer = KafkaConsumer(**connection(kafka), enable_auto_commit=False, bootstrap_timeout_ms=3000)
        try:
            partitions = consumer.partitions_for_topic(kafka.topic_dead_letter) or set()
            assigned = [TopicPartition(kafka.topic_dead_letter, p) for p in partitions]
            consumer.assign(assigned)
            ends = consumer.end_offsets(assigned)
            for tp in assigned:
                consumer.seek(tp, max(0, ends[tp] - DEAD_LETTERS_SHOWN))
            records = read_to(consumer, ends, DEAD_LETTERS_READ_S)
        finally:
            consumer.close()
        rows = [_dead_letter(r) for r in records]
        return sorted(rows, key=lambda r: r["timestamp"], reverse=True)[:DEAD_LETTERS_SHOWN]

    def _dataset_version(self, name: str, version: str) -> dict[str, Any]:
        prefix = self.layout.dataset_prefix(name, version)
        manifest = read_version(self.reader, prefix, kind="dataset").manifest
        return {
            "version": version,
            "created": manifest.created.isoformat(),
            "images": len(manifest.files),
            "edge": str(manifest.metadata.get("edge", "")),
            "source": str(manifest.metadata.get("source", "")),
        }


def read_to(consumer: KafkaConsumer, ends: dict[TopicPartition, int], deadline_s: float) -> list[Any]:
    """Each partition's records up to the end offset it had when the read began, within ``deadline_s``.

    Reading until the topic goes quiet would never end while dead letters keep arriving
    (when an operator is most likely to look), holding every record in memory meanwhile.
    """
    records: list[Any] = []
    deadline = time.monotonic() + deadline_s
    waiting = {tp for tp, end in ends.items() if consumer.position(tp) < end}
    while waiting and time.monotonic() < deadline:
        for tp, batch in consumer.poll(timeout_ms=200).items():
            records.extend(r for r in batch if r.offset < ends[tp])
            if consumer.position(tp) >= ends[tp]:
                waiting.discard(tp)
                consumer.pause(tp)
    return records


def _local_outcome(run_root: Path) -> dict[str, Any]:
    """The outcome and gate of a run the local launcher ran here; nothing for a KFP run."""
    outcome_file = run_root / "outcome.json"
    if not outcome_file.is_file():
        return {"state": None, "gate": {}}
    outcome = json.loads(outcome_file.read_text())
    gate = {
        edge: {
            "passed": e.passed,
            "reasons": e.reasons,
            "accuracy": e.accuracy,
            "recall": e.recall,
            "production_version": e.production_version,
        }
        for edge, e in evaluations(run_root / "pipeline-root").items()
    }
    return {"state": outcome.get("state"), "error": outcome.get("error"), "gate": gate}


def _dead_letter(record: Any) -> dict[str, Any]:
    headers = {k: v.decode(errors="replace") for k, v in (record.headers or [])}
    return {
        "timestamp": record.timestamp,
        "topic": headers.get(DLQ_TOPIC, ""),
        "reason": headers.get(DLQ_REASON, "")[:300],
        "bytes": len(record.value or b""),
    }


def _plain(row: Any) -> dict[str, Any]:
    """A status row as JSON: times as ISO 8601."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in vars(row).items()}


def readable(section: str, read: Any) -> dict[str, Any]:
    """One section's rows, or why it could not be read."""
    try:
        return {"section": section, "rows": read(), "error": None}
    except (EdgecoreError, KafkaError, OSError, ValueError) as exc:
        return {"section": section, "rows": [], "error": f"{type(exc).__name__}: {exc}"[:300]}
