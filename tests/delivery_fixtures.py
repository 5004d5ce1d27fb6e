"""Fixtures of the edge sync tests (a pytest plugin, registered in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_sync.delivery.controller import SyncContext
from edge_sync.delivery.metrics import SyncMetrics
from edgecore.stack.controlplane import ControlPlane
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.reader import BucketReader
from testkit.delivery import EdgeCluster, edge_cluster
from testkit.k8s_schemas import require_crds


@pytest.fixture
def cluster(kube: ControlPlane, tmp_path: Path) -> Iterator[EdgeCluster]:
    """An edge cluster's namespace on the real API server, the controller's RBAC enforced."""
    require_crds()
    with edge_cluster(kube, tmp_path) as cluster:
        yield cluster


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
