"""Fixtures of the edge sync tests (a pytest plugin, registered in conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_sync.delivery.controller import SyncContext
from edge_sync.delivery.metrics import SyncMetrics
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.reader import BucketReader
from testkit.delivery import EdgeCluster
from testkit.kubeapi import CRD, KubeApiServer, load_schema


@pytest.fixture(scope="session")
def crd_schema() -> dict[str, Any]:
    if not CRD.is_file():
        pytest.skip(
            f"the KServe CRD is not at {CRD} (../shared/crds is absent): cannot validate InferenceServices"
        )
    return load_schema()


@pytest.fixture
def cluster(crd_schema: dict[str, Any], tmp_path: Path) -> Iterator[EdgeCluster]:
    server = KubeApiServer(crd_schema, ready_delay_s=0.05)
    context = f"edge-cluster-{uuid.uuid4().hex[:6]}"
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", [context])
    yield EdgeCluster(server, kubeconfig, context)
    server.stop()


@pytest.fixture
def edge_settings(stack: Any, unique: str, tmp_path: Path) -> Settings:
    """Settings whose edge buckets and state are this test's own."""
    return Settings().updated(
        state_dir=tmp_path / "state", buckets={"edge_prefix": f"t-{unique}-"}, delivery={"poll_s": 0.2}
    )


@pytest.fixture
def ctx(edge_settings: Settings) -> SyncContext:
    return SyncContext(
        BucketReader.connect(edge_settings.s3),  # what a fleet verifies through
        Layout(edge_settings.buckets),
        SyncMetrics(),
        edge_settings.state_dir / "edge-sync",
        4,
    )
