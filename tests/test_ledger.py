"""The listener's ledger in S3 (real MinIO): it survives restarts and two replicas never double a run."""

from __future__ import annotations

import pytest

from foundation.errors import ServiceUnavailable
from foundation.layout import Location
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from pipelines.ledger import KEEP_S, Ledger
from pipelines.runs import DatasetVersion, RunRequest


def version(n: int, dataset: str = "store-1") -> DatasetVersion:
    return DatasetVersion(dataset, f"v{n:06d}", "training", f"datasets/{dataset}/v{n:06d}/", dataset)


def assigned(ledger: Ledger, dv: DatasetVersion) -> RunRequest:
    """``dv`` recorded and given a run, as the listener does once its window is over."""
    ledger.record(dv)
    request = ledger.assign([dv])
    assert request is not None
    return request


@pytest.fixture
def where(bucket: str) -> Location:
    return Location(bucket, "listener/test-group/ledger.json")


def test_a_restarted_listener_finds_the_versions_still_waiting_for_a_run(
    store: ObjectStore, where: Location
) -> None:
    Ledger(store, where).record(version(1))

    restarted = Ledger(store, where)

    assert [dv for dv, _ in restarted.unassigned()] == [version(1)]


def test_a_version_two_replicas_both_see_is_recorded_as_new_once(store: ObjectStore, where: Location) -> None:
    first, second = Ledger(store, where), Ledger(store, where)  # both read the ledger before either wrote

    assert first.record(version(1)) is True
    assert second.record(version(1)) is False  # its write lost the race; it read again and found it


def test_two_replicas_flushing_the_same_pending_versions_start_one_run(
    store: ObjectStore, where: Location
) -> None:
    first = Ledger(store, where)
    first.record(version(1))
    second = Ledger(store, where)

    taken = first.assign([version(1)])
    lost = second.assign([dv for dv, _ in second.unassigned()])

    assert taken is not None and lost is None
    assert [r["run_key"] for r in Ledger(store, where).runs()] == [taken.run_key]


def test_a_run_that_was_assigned_but_never_recorded_as_launched_is_launched_again(
    store: ObjectStore, where: Location
) -> None:
    request = assigned(Ledger(store, where), version(1))

    after_a_crash = Ledger(store, where)

    assert [r.run_key for r in after_a_crash.launching()] == [request.run_key]


def test_a_new_run_knows_the_newest_version_each_dataset_was_already_trained_on(
    store: ObjectStore, where: Location
) -> None:
    ledger = Ledger(store, where)
    ledger.mark_launched(assigned(ledger, version(2)).run_key, "run-a")
    ledger.record(version(1))  # a retried set that landed in an older version

    late = ledger.assign([version(1)])

    assert late is not None and late.launched == (("store-1", "v000002"),)


def test_launched_runs_older_than_the_retention_leave_the_ledger_and_recent_ones_stay(
    store: ObjectStore, where: Location
) -> None:
    clock = [1_000_000.0]
    ledger = Ledger(store, where, now=lambda: clock[0])
    for n in (1, 2):
        ledger.mark_launched(assigned(ledger, version(n)).run_key, f"run-{n}")
        clock[0] += KEEP_S + 1  # the next one comes just over a retention period later

    kept = Ledger(store, where).runs()

    assert [r["run_id"] for r in kept] == ["run-2"]


def test_an_unreachable_s3_is_a_retryable_error(where: Location) -> None:
    s3 = Settings().s3.model_copy(update={"endpoint": "http://127.0.0.1:1"})

    with pytest.raises(ServiceUnavailable, match="listener ledger"):
        Ledger(ObjectStore(s3), where)
