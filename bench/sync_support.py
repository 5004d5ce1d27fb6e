"""What bench/sync.py and bench/fleet.py share: settings, events, consoles, clean-up."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console

from foundation.events import ModelPublished
from foundation.layout import Layout, Location, edge_model_name
from foundation.settings import Settings
from foundation.storage.store import ObjectStore

console = Console(stderr=True)
out = Console(width=150)


def bench_settings(tag: str, workers: int) -> Settings:
    """Topics, bucket prefix and state of this run only.

    Polling is hourly, so only events (and the start-up poll) trigger syncs: what is timed.
    """
    return Settings().updated(
        state_dir=Path(tempfile.mkdtemp(prefix="edge-sync-bench-")),
        buckets={"edge_prefix": f"bench-{tag}-"},
        kafka={
            "topic_model_published": f"bench-published-{tag}",
            "topic_dead_letter": f"bench-dlq-{tag}",
            "topic_training_data_ready": f"bench-ready-{tag}",
            "topic_s3_events": f"bench-s3-{tag}",
        },
        delivery={"poll_s": 3600.0, "workers": workers, "ready_timeout_s": 120.0},
    )


def event_for(
    settings: Settings, layout: Layout, edge: str, version: str, files: dict[str, str]
) -> ModelPublished:
    """The ``model-published`` event the publish step sends for ``version`` of ``edge``'s model."""
    model = edge_model_name(edge)
    return ModelPublished(
        model=model,
        version=version,
        registry_uri=f"s3://{settings.buckets.models}/models/{model}/{version}/",
        edges=[edge],
        files=files,
        labels=["APPLE-RED", "LIME-GREEN", "BLUEBERRY-BOX"],
    )


def drop_buckets(store: ObjectStore, buckets: list[str]) -> None:
    """Empty and delete the run's buckets, in parallel, so a run leaves MinIO as it found it."""

    def drop(bucket: str) -> None:
        keys: list[Any] = [{"Key": o.location.key} for o in store.list(Location(bucket, ""))]
        for i in range(0, len(keys), 1000):
            store.client.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000]})
        store.client.delete_bucket(Bucket=bucket)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(drop, buckets))
