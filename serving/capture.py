"""Saving images flagged unsure, off the request path.

A request only ever does a non-blocking ``put_nowait`` on a bounded queue; one daemon
thread uploads the image and then its prediction record to the edge bucket's
``unrecognized/`` prefix (record last: a record always has its image).  When S3 is
slow or down the queue fills and further captures are dropped and counted
(``edgecore_capture_dropped_total``): a kiosk answer never waits for a hard example.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from foundation.errors import EdgecoreError
from foundation.layout import Layout
from foundation.storage.store import ObjectStore
from serving import metrics

log = logging.getLogger(__name__)
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class CaptureItem:
    """One prediction flagged unsure: the encoded image (or the pixels it was sent as)."""

    image: bytes | None
    pixels: npt.NDArray[np.float32] | None
    record: dict[str, Any]


class Capture:
    """A bounded queue drained by one uploader thread."""

    def __init__(self, store: ObjectStore, layout: Layout, edge: str, max_queue: int = 256) -> None:
        self._store = store
        self._layout = layout
        self._edge = edge
        self._queue: queue.Queue[CaptureItem | None] = queue.Queue(maxsize=max_queue)
        self._bucket_ready = False
        self._thread = threading.Thread(target=self._run, name="capture-uploader", daemon=True)
        self._thread.start()

    def submit(self, item: CaptureItem) -> bool:
        """Queue a capture without ever blocking; False (and counted) if it was dropped."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            metrics.CAPTURE_DROPPED.inc()
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Upload what is queued (up to ``timeout``), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def join(self) -> None:
        """Wait until every queued capture is uploaded (or failed)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._upload(item)
                metrics.CAPTURED.inc()
            except EdgecoreError as exc:
                metrics.CAPTURE_FAILED.inc()
                log.warning("capture of an image flagged unsure on edge %s failed: %s", self._edge, exc)
            except Exception:  # the uploader must survive anything one image can do to it
                metrics.CAPTURE_FAILED.inc()
                log.exception("capture of an image flagged unsure on edge %s failed", self._edge)
            finally:
                self._queue.task_done()

    def _upload(self, item: CaptureItem) -> None:
        now = datetime.now(UTC)
        capture_id = f"{now:%H%M%S%f}-{uuid.uuid4().hex[:12]}"
        image_loc, record_loc = self._layout.unrecognized(self._edge, now.date(), capture_id)
        if not self._bucket_ready:
            self._store.ensure_bucket(image_loc.bucket)
            self._bucket_ready = True
        record = {**item.record, "captured_at": now.isoformat(), "image": image_loc.key}
        self._store.put_bytes(image_loc, _as_jpeg(item), content_type="image/jpeg")
        self._store.put_bytes(record_loc, json.dumps(record, indent=2).encode(), "application/json")


def _as_jpeg(item: CaptureItem) -> bytes:
    """The original JPEG as sent; PNGs and pixel tensors are encoded to JPEG here, off the request."""
    if item.image is not None and item.image.startswith(_JPEG_MAGIC):
        return item.image
    if item.image is not None:
        with Image.open(io.BytesIO(item.image)) as img:
            rgb = img.convert("RGB")
    elif item.pixels is not None:
        rgb = Image.fromarray(np.clip(item.pixels * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    else:
        raise ValueError("a capture needs an image or pixels")
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=95)
    return out.getvalue()
