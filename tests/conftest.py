"""Fixtures: the real local stack (MinIO + Kafka), started once per test session.

The fixture uses the same ``Stack`` code as ``edgecore stack up``.  If the stack was
already running it is reused and left running; if this session started it, it is
stopped at the end.  Either way the topics and buckets the tests made are deleted.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from edgecore.stack import Stack
from edgecore.stack.controlplane import ControlPlane
from edgecore.stack.tools import StackError, port_open
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.buckets import buckets_removed_afterwards
from testkit.conditions import wait_for
from testkit.kafka import topics_removed_afterwards

pytest_plugins = ["training_fixtures", "delivery_fixtures", "page_fixtures"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


STACK_ATTEMPTS = 2
STACK_FAILURES: list[str] = []
"""Why the stack did not come up, printed at the end of the run, where CI's excerpt of it shows."""


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    stack = Stack(settings)
    started = _bring_up(stack, settings)
    store = ObjectStore(settings.s3)
    try:
        with topics_removed_afterwards(settings.kafka), buckets_removed_afterwards(store, settings.buckets):
            yield stack
    finally:
        if started:
            stack.down()


def _bring_up(stack: Stack, settings: Settings) -> bool:
    """Twice at most: a shared machine may still be releasing the ports of whatever ran before."""
    ports = [(settings.s3.host, settings.s3.port), (settings.kafka.host, settings.kafka.port)]
    for attempt in range(1, STACK_ATTEMPTS + 1):
        try:
            return stack.up()
        except StackError as exc:
            STACK_FAILURES.append(f"attempt {attempt}: {exc}")
            stack.down()
            if attempt == STACK_ATTEMPTS:
                raise
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not any(port_open(*p) for p in ports), 60, what="the stack's ports free")
    raise AssertionError("unreachable")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STACK_FAILURES:
        terminalreporter.write_sep("=", "the local stack did not come up")
        for failure in STACK_FAILURES:
            terminalreporter.write_line(failure)


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
