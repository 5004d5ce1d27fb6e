"""The outbox's spool: a local copy of each image the gateway accepted, until its set has ended.

The edge bucket is the record of what a store accepted; the spool is only what the
shipper reads first.  A set is hundreds of images, and on an edge box the edge's MinIO
shares the CPU with the gateway, the model server and the shipper: reading each image
back from MinIO costs it far more CPU than reading a local file, and the set's images
are read at the moment the box also streams them to the core.  A spool file is cheap to
write when the image arrives (no fsync: the bucket is durable) and cheaper to read
(``bench/transfer.py`` prints both).  So a copy is kept beside the outbox, keyed
like the bucket object it copies, and removed once its set has shipped or been rejected.

The spool is a cache, never the only copy: a missing file, or one of the wrong size
(a crash mid-write), is read from the bucket instead; a file whose bytes turn out wrong
(the core's digest says so) is dropped and the bucket's copy sent on the next attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path

from foundation.layout import check_relative_path

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_relative_path(key)

    def put(self, key: str, data: bytes) -> None:
        """Keep a copy of ``data`` (best effort: a full disk only costs the shipper a bucket read)."""
        target = self.path(key)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            os.replace(partial, target)  # readers see the whole file or none
        except OSError as exc:
            log.warning("spool: could not keep %s (%s); the shipper will read it from the bucket", key, exc)
            with contextlib.suppress(OSError):
                partial.unlink()

    def get(self, key: str, size: int) -> bytes | None:
        """The copy of ``key`` if it is there with the recorded ``size``, else None."""
        try:
            data = self.path(key).read_bytes()
        except OSError:
            return None
        return data if len(data) == size else None

    def drop(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self.path(key).unlink()

    def drop_all(self, keys: list[str]) -> None:
        for key in keys:
            self.drop(key)
