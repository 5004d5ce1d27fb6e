"""Buckets the tests made, removed at the end of the session, as their topics are.

Every test makes buckets of its own.  Kept, they piled up run after run on a developer's
stack (thousands of them), and MinIO's background scan of them took a steady share of a
CPU from every later test and bench.  Only buckets that appeared during the session and
are named as tests name them (a uuid's ten hex digits or more) go: a store's bucket made by
``make demo`` or a bench beside the run has no such name, and stays.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundation.settings import BucketSettings
from foundation.storage.store import ObjectStore

FORCE_DELETE = "x-minio-force-delete"
"""MinIO's extension to DeleteBucket: the bucket goes with everything in it, in one request."""
TEST_MADE = re.compile(r"(?:^|[^0-9a-f])[0-9a-f]{10,}(?:$|[^0-9a-f])")


@contextlib.contextmanager
def buckets_removed_afterwards(store: ObjectStore, buckets: BucketSettings) -> Iterator[None]:
    """Test-made buckets created while the block runs (not the core's two) are deleted at its end.

    Best effort: a bucket that cannot go is reported as a warning, and the rest still go.
    """
    before = _names(store)
    yield
    try:
        made = _names(store) - before - {buckets.training, buckets.models}
    except (ClientError, BotoCoreError) as exc:
        warnings.warn(f"the test session's buckets were not removed: {exc}", stacklevel=2)
        return
    failed = _delete(store, sorted(name for name in made if TEST_MADE.search(name)))
    if failed:
        warnings.warn(f"{len(failed)} test buckets were not removed, first {failed[0]}", stacklevel=2)


def _names(store: ObjectStore) -> set[str]:
    return {bucket["Name"] for bucket in store.client.list_buckets().get("Buckets", [])}


def _delete(store: ObjectStore, names: list[str]) -> list[str]:
    """Each bucket with its objects; returns why each that is still there could not go."""
    client, failed = store.client, []
    client.meta.events.register("before-sign.s3.DeleteBucket", _force)
    try:
        for name in names:
            try:
                client.delete_bucket(Bucket=name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                    failed.append(f"{name}: {exc}")
            except BotoCoreError as exc:
                failed.append(f"{name}: {exc}")
    finally:
        client.meta.events.unregister("before-sign.s3.DeleteBucket", _force)
    return failed


def _force(request: Any, **_: Any) -> None:
    request.headers[FORCE_DELETE] = "true"
