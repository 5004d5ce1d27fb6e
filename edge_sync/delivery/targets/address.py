"""Asking an InferenceService's own address which model version it serves.

KServe's ``Ready`` condition is no proof that a new version serves: in RawDeployment mode
it has been reported True while the new Deployment was still rolling out (kserve#4626),
and ``status.observedGeneration`` is copied from the child Deployment's counter, so it
cannot tell which InferenceService generation it describes (kserve#6081).  The proof
is the predictor itself answering the Open Inference Protocol's versioned ready route
for the new version, through the address KServe publishes in ``status.address.url``, and
answering an inference on that version's route: a version that loads but cannot predict
is not healthy either.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Protocol
from urllib.parse import quote

import httpx
from PIL import Image

from edge_sync.delivery.targets.counters import Counters, read_counters

HEADER_LENGTH = "Inference-Header-Content-Length"


class AddressProbe(Protocol):
    def serves(self, address: str, model: str, version: str, timeout_s: float) -> bool:
        """Whether the predictor at ``address`` says ``model`` ``version`` is loaded and answers,
        within ``timeout_s``."""
        ...

    def counters(self, address: str, model: str, timeout_s: float) -> Counters | None:
        """The predictor's counters for ``model`` from ``<address>/metrics``; None if unreadable."""
        ...


class VersionedInferenceProbe:
    """``GET <address>/v2/models/<m>/versions/<v>/ready`` answered ready, then one small photo sent
    to ``POST …/versions/<v>/infer`` (binary ``BYTES``, as stock V2 clients send it) answered
    by that version.

    The inference is sent only once the version says it is ready, so most looks during a
    rollout are one short request; an unreachable, slow or odd predictor is "not yet",
    never an error: the rollout's own deadline decides.
    """

    def __init__(self, verify: bool | str = True) -> None:
        self._http = httpx.Client(verify=verify, follow_redirects=False)
        self._body, self._header_length = _photo_request()

    def serves(self, address: str, model: str, version: str, timeout_s: float) -> bool:
        base = f"{address.rstrip('/')}/v2/models/{quote(model, safe='')}/versions/{quote(version, safe='')}"
        try:
            ready = self._http.get(f"{base}/ready", timeout=timeout_s)
            if ready.status_code != 200 or _field(ready, "ready", True) is not True:
                return False
            answer = self._http.post(
                f"{base}/infer",
                content=self._body,
                headers={"Content-Type": "application/octet-stream", HEADER_LENGTH: self._header_length},
                timeout=timeout_s,
            )
            return answer.status_code == 200 and _field(answer, "model_version", None) == version
        except httpx.HTTPError:
            return False

    def counters(self, address: str, model: str, timeout_s: float) -> Counters | None:
        return read_counters(self._http, f"{address.rstrip('/')}/metrics", model, timeout_s)

    def close(self) -> None:
        self._http.close()


def _field(response: httpx.Response, name: str, default: object) -> object:
    """One field of a JSON object answer; ``default`` for an empty body, None for anything else."""
    if not response.content:
        return default
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _photo_request() -> tuple[bytes, str]:
    """A V2 request of one plain 64×64 JPEG, with the binary-data extension."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="JPEG")
    element = struct.pack("<I", buffer.tell()) + buffer.getvalue()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(element)},
                }
            ]
        }
    ).encode()
    return header + element, str(len(header))
