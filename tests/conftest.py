"""Fixtures: the real local stack (MinIO + Kafka), started once per test session.

The fixture uses the same ``Stack`` code as ``edgecore stack up``.  If the stack was
already running it is reused and left running; if this session started it, it is
stopped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from edgecore.stack import Stack
from edgecore.stack.controlplane import ControlPlane
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore

pytest_plugins = ["training_fixtures", "delivery_fixtures"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    stack = Stack(settings)
    started = stack.up()
    yield stack
    if started:
        stack.down()


@pytest.fixture(scope="session")
def kube(stack: Stack) -> ControlPlane:
    """The stack's Kubernetes API server (etcd and kube-apiserver, no container runtime)."""
    return stack.kubernetes


@pytest.fixture(scope="session")
def store(stack: Stack, settings: Settings) -> ObjectStore:
    return ObjectStore(settings.s3)


@pytest.fixture(scope="session")
def layout(settings: Settings) -> Layout:
    return Layout(settings.buckets)


@pytest.fixture
def bucket(store: ObjectStore) -> str:
    """A fresh, empty bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(name)
    return name


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and object names."""
    return uuid.uuid4().hex[:10]
