"""What bench/sync.py and bench/fleet.py share: settings, events, consoles, clean-up."""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console

from edgecore.events import ModelPublished
from edgecore.layout import Layout, Location, edge_model_name
from edgecore.settings import Settings
from edgecore.storage import ObjectStore

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))  # the test support: real model versions, the Kubernetes API server

console = Console(stderr=True)
out = Console(width=150)


def bench_settings(tag: str, workers: int) -> Settings:
    return Settings(
        edge_bucket_prefix=f"bench-{tag}-",
        state_dir=Path(tempfile.mkdtemp(prefix="edge-sync-bench-")),
        topic_model_published=f"bench-published-{tag}",
        topic_dead_letter=f"bench-dlq-{tag}",
        topic_training_data_ready=f"bench-ready-{tag}",
        topic_s3_events=f"bench-s3-{tag}",
        edge_sync_poll_s=3600.0,  # only events (and the start-up poll) trigger syncs here
        edge_sync_workers=workers,
        edge_sync_ready_timeout_s=120.0,
    )


def event_for(
    settings: Settings, layout: Layout, edge: str, version: str, files: dict[str, str]
) -> ModelPublished:
    model = edge_model_name(edge)
    return ModelPublished(
        model=model,
        version=version,
        registry_uri=f"s3://{settings.models_bucket}/models/{model}/{version}/",
        edge_uris={edge: layout.edge_model_prefix(edge, model, version).uri},
        files=files,
        labels=["APPLE-RED", "LIME-GREEN", "BLUEBERRY-BOX"],
    )


def drop_buckets(store: ObjectStore, buckets: list[str]) -> None:
    def drop(bucket: str) -> None:
        keys: list[Any] = [{"Key": o.location.key} for o in store.list(Location(bucket, ""))]
        for i in range(0, len(keys), 1000):
            store.client.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000]})
        store.client.delete_bucket(Bucket=bucket)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(drop, buckets))
