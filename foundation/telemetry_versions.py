"""Telemetry stored as the next version of an edge's telemetry dataset, ``<edge>-telemetry``.

Staff's verdicts on alarms (``foundation.alarm_verdicts``) are versions too, of one file,
``verdicts/<sha256>.json``: training reads every version's, so a verdict labels readings
whichever version brought them.

Two paths lead here: an operator's upload of a plant's export (``edgecore sensors upload``)
and the batches a store's gateway ships through the front door
(``edge_sync.uplink.telemetry_desk``).  Both store each machine's series in the canonical
CSV form as ``telemetry/<machine>.csv``, the manifest last, as every dataset version's is:
a reader never sees half a version, and the sensor pipeline reads both alike.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from foundation.alarm_verdicts import VERDICTS_DIR, AlarmVerdict
from foundation.errors import InvalidInput
from foundation.layout import TELEMETRY_DIR, Layout, check_name, telemetry_dataset
from foundation.manifest import FileEntry, Manifest
from foundation.registry import claim_next_version
from foundation.storage.objects import ObjectStorage
from foundation.telemetry import Telemetry, write_csv


def store_telemetry_version(
    store: ObjectStorage,
    layout: Layout,
    series: list[Telemetry],
    edge: str,
    sensors: tuple[str, ...],
    source: str,
    metadata: dict[str, object] | None = None,
    version: str | None = None,
) -> Manifest:
    """``series`` (already read and checked whole) as a new version of ``<edge>-telemetry``; its manifest.

    The version number is claimed here, after every check, unless the caller claimed it
    (``version``): refused telemetry claims none.  A machine with several runs (its readings
    broke off in between) gets a file per run, ``telemetry/<machine>.<n>.csv``.
    """
    if not series:
        raise InvalidInput(f"{source}: no readings")
    for one in series:
        check_name(one.machine, "machine id")
    dataset = telemetry_dataset(edge)
    store.ensure_bucket(layout.training_bucket)
    if version is None:
        version = claim_next_version(store, layout.dataset_versions(dataset), owner=f"telemetry:{source}")
    runs = Counter(one.machine for one in series)
    seen: Counter[str] = Counter()
    files: dict[str, FileEntry] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for one in series:
            seen[one.machine] += 1
            stem = one.machine if runs[one.machine] == 1 else f"{one.machine}.{seen[one.machine]}"
            name = f"{TELEMETRY_DIR}/{stem}.csv"
            path = Path(scratch) / f"{stem}.csv"
            write_csv([one], path)
            stored = store.put_file(layout.dataset_file(dataset, version, name), path, "text/csv")
            files[name] = FileEntry(sha256=stored.sha256, size=stored.size)
    manifest = Manifest(
        kind="dataset",
        name=dataset,
        version=version,
        files=files,
        labels=list(sensors),
        metadata={
            **(metadata or {}),
            "edge": edge,
            "use_case": "sensors",
            "source": source,
            "machines": list(runs),
            "readings": sum(len(one.values) for one in series),
            "fault_readings": sum(int(np.count_nonzero(one.labels)) for one in series),
        },
    )
    store.put_bytes(layout.dataset_manifest(dataset, version), manifest.to_bytes(), "application/json")
    return manifest


def store_verdict_version(
    store: ObjectStorage,
    layout: Layout,
    body: bytes,
    verdicts: list[AlarmVerdict],
    edge: str,
    digest: str,
    version: str,
) -> Manifest:
    """A batch of verdicts (``body``, read already) as version ``version`` of ``<edge>-telemetry``."""
    dataset = telemetry_dataset(edge)
    name = f"{VERDICTS_DIR}/{digest}.json"
    stored = store.put_bytes(layout.dataset_file(dataset, version, name), body, "application/json")
    manifest = Manifest(
        kind="dataset",
        name=dataset,
        version=version,
        files={name: FileEntry(sha256=stored.sha256, size=stored.size)},
        labels=[],
        metadata={
            "edge": edge,
            "use_case": "sensors",
            "source": f"verdicts {digest[:12]}",
            "machines": sorted({one.machine for one in verdicts}),
            "verdicts": {
                kind: sum(one.verdict == kind for one in verdicts) for kind in ("confirmed", "dismissed")
            },
        },
    )
    store.put_bytes(layout.dataset_manifest(dataset, version), manifest.to_bytes(), "application/json")
    return manifest
