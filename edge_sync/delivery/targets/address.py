"""Asking an InferenceService's own address which model version it serves.

KServe's ``Ready`` condition is no proof that a new version serves: in RawDeployment mode
it has been reported True while the new Deployment was still rolling out (kserve#4626),
and ``status.observedGeneration`` is copied from the child Deployment's counter, so it
cannot tell which InferenceService generation it describes (kserve#6081).  The proof
is the predictor itself answering the Open Inference Protocol's versioned ready route
for the new version, through the address KServe publishes in ``status.address.url``.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

import httpx


class AddressProbe(Protocol):
    def serves(self, address: str, model: str, version: str) -> bool:
        """Whether the predictor at ``address`` says ``model`` ``version`` is loaded and ready."""
        ...


class VersionedReadyProbe:
    """``GET <address>/v2/models/<model>/versions/<version>/ready`` answered 200.

    One short request per look, so a fleet's rollout polls cheaply; an unreachable or
    slow predictor is "not yet", never an error: the rollout's own deadline decides.
    """

    def __init__(self, timeout_s: float = 2.0, verify: bool | str = True) -> None:
        self._http = httpx.Client(timeout=timeout_s, verify=verify, follow_redirects=False)

    def serves(self, address: str, model: str, version: str) -> bool:
        route = f"/v2/models/{quote(model, safe='')}/versions/{quote(version, safe='')}/ready"
        try:
            return self._http.get(address.rstrip("/") + route).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._http.close()
