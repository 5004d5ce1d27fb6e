"""Upload a plant's telemetry export as the next version of an edge's telemetry dataset.

The export is read whole first (``foundation.telemetry.read_csv``: a bad column or row is
refused in one line before anything is written), then each machine's series is stored in
the canonical CSV form as ``telemetry/<machine>.csv``, and the manifest goes last, as
every dataset version's does: a reader never sees half a version.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from foundation.errors import InvalidInput
from foundation.layout import TELEMETRY_DIR, Layout, check_name, telemetry_dataset
from foundation.manifest import FileEntry, Manifest
from foundation.registry import claim_next_version
from foundation.storage.objects import ObjectStorage
from foundation.telemetry import SENSORS, read_telemetry, write_csv


def upload_telemetry(
    store: ObjectStorage, layout: Layout, source: Path, edge: str, sensors: tuple[str, ...] = SENSORS
) -> Manifest:
    """Store ``source`` (a CSV or Parquet export) as a new version of ``<edge>-telemetry``; its manifest."""
    series = read_telemetry(source, sensors)
    if not series:
        raise InvalidInput(f"{source}: no readings")
    for one in series:
        check_name(one.machine, "machine id")
    dataset = telemetry_dataset(edge)
    store.ensure_bucket(layout.training_bucket)
    version = claim_next_version(store, layout.dataset_versions(dataset), owner=f"upload:{source.name}")
    files: dict[str, FileEntry] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for one in series:
            name = f"{TELEMETRY_DIR}/{one.machine}.csv"
            path = Path(scratch) / f"{one.machine}.csv"
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
            "edge": edge,
            "use_case": "sensors",
            "source": source.name,
            "machines": [one.machine for one in series],
            "readings": sum(len(one.values) for one in series),
            "fault_readings": sum(int(np.count_nonzero(one.labels)) for one in series),
        },
    )
    store.put_bytes(layout.dataset_manifest(dataset, version), manifest.to_bytes(), "application/json")
    return manifest
