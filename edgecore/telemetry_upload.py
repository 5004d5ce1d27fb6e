"""Upload a plant's telemetry export as the next version of an edge's telemetry dataset.

The export is read whole first (``foundation.telemetry.read_csv``: a bad column or row is
refused in one line before anything is written); storing it is
``foundation.telemetry_versions``'s, as for the batches a store's gateway ships.
"""

from __future__ import annotations

from pathlib import Path

from foundation.layout import Layout
from foundation.manifest import Manifest
from foundation.storage.objects import ObjectStorage
from foundation.telemetry import SENSORS, read_telemetry
from foundation.telemetry_versions import store_telemetry_version


def upload_telemetry(
    store: ObjectStorage, layout: Layout, source: Path, edge: str, sensors: tuple[str, ...] = SENSORS
) -> Manifest:
    """Store ``source`` (a CSV or Parquet export) as a new version of ``<edge>-telemetry``; its manifest."""
    series = read_telemetry(source, sensors)
    return store_telemetry_version(store, layout, series, edge, sensors, source.name)
