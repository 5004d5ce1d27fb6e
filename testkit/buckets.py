"""Buckets the tests made, removed at the end of the session, as their topics are.

Every test makes buckets of its own.  Kept, they piled up run after run on a developer's
stack (thousands of them), and MinIO's background scan of them took a steady share of a
CPU from every later test and bench.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundation.settings import BucketSettings
from foundation.storage.store import ObjectStore

FORCE_DELETE = "x-minio-force-delete"
"""MinIO's extension to DeleteBucket: the bucket goes with everything in it, in one request."""


@contextlib.contextmanager
def buckets_removed_afterwards(store: ObjectStore, buckets: BucketSettings) -> Iterator[None]:
    """Buckets created while the block runs, other than the core buckets, are deleted at its end."""
    before = _names(store)
    yield
    made = _names(store) - before - {buckets.training, buckets.models}
    client = store.client
    client.meta.events.register("before-sign.s3.DeleteBucket", _force)
    try:
        for name in sorted(made):
            with contextlib.suppress(ClientError, BotoCoreError):
                client.delete_bucket(Bucket=name)
    finally:
        client.meta.events.unregister("before-sign.s3.DeleteBucket", _force)


def _names(store: ObjectStore) -> set[str]:
    return {bucket["Name"] for bucket in store.client.list_buckets().get("Buckets", [])}


def _force(request: Any, **_: Any) -> None:
    request.headers[FORCE_DELETE] = "true"
