"""A KServe InferenceService in an edge cluster, repointed with a JSON merge patch.

Custom resources take no strategic merge patch, so every change is an RFC 7386 merge
patch (``null`` removes a key) carrying ``metadata.resourceVersion`` as a precondition:
a concurrent writer makes the API server answer 409 instead of being overwritten.  A
change of ``spec`` bumps ``metadata.generation``; the rollout is healthy once the KServe
controller reports that generation as observed with the ``Ready`` condition true.

The target's memory is the object's annotations, written in the same patch as the URI.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from edge_sync.delivery.targets.base import SEEN_FOR_S, Deployed, TargetState
from foundation.errors import (
    EdgecoreError,
    InvalidInput,
    NotFound,
    PermanentError,
    ResourceVersionConflict,
    RolloutFailed,
    ServiceUnavailable,
)
from foundation.layout import VERSION_RE

log = logging.getLogger(__name__)

GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MERGE_PATCH = "application/merge-patch+json"
ANNOTATION = "edgecore.io/"
VERSION = ANNOTATION + "model-version"
SYNCED_AT = ANNOTATION + "synced-at"
PREVIOUS_URI = ANNOTATION + "previous-storage-uri"
PREVIOUS_VERSION = ANNOTATION + "previous-model-version"
REJECTED_URI = ANNOTATION + "rejected-storage-uri"
REJECTED_VERSION = ANNOTATION + "rejected-model-version"
PINNED = ANNOTATION + "pinned"
OWNED_FIELDS = (
    "/spec/predictor/model/storageUri",
    "/spec/predictor/canaryTrafficPercent",
    *(
        "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        for key in (
            VERSION,
            SYNCED_AT,
            PREVIOUS_URI,
            PREVIOUS_VERSION,
            REJECTED_URI,
            REJECTED_VERSION,
            PINNED,
        )
    ),
)
"""JSON pointers of every field this target writes: a GitOps tool must leave them to it."""
IN_CLUSTER = "in-cluster"
PATCH_ATTEMPTS = 3
"""A patch lost in transit is sent again this many times in all."""


def api_client(context: str, kubeconfig: str | None = None, pool_size: int = 16) -> client.ApiClient:
    """One API client per kubeconfig context, shared by every target in that cluster.

    The context ``in-cluster`` means the pod's own service account (the controller
    deployed by ``manifests/edge`` runs inside the edge cluster it repoints).
    """
    try:
        configuration = client.Configuration()
        if context == IN_CLUSTER:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
    except (config.ConfigException, OSError) as exc:
        raise InvalidInput(f"kubeconfig {kubeconfig or '~/.kube/config'} context {context!r}: {exc}") from exc
    configuration.connection_pool_maxsize = pool_size
    configuration.retries = 2
    return client.ApiClient(configuration)


def _version_of(uri: str | None) -> str | None:
    for part in reversed((uri or "").rstrip("/").split("/")):
        if VERSION_RE.match(part):
            return part
    return None


def _ready(obj: dict[str, Any]) -> tuple[bool | None, str]:
    """True/False once the current generation is observed as Ready/not Ready; None while pending."""
    generation = obj.get("metadata", {}).get("generation")
    status = obj.get("status") or {}
    if generation is None or status.get("observedGeneration") != generation:
        return None, f"generation {generation} not observed yet"
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") == "Unknown":
        return None, "Ready is unknown"
    if ready.get("status") == "True":
        return True, "Ready"
    return False, f"{ready.get('reason', 'NotReady')}: {ready.get('message', '')}".strip()


class KServeTarget:
    local_copy = False

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        canary_percent: int = 0,
        ready_timeout_s: float = 60.0,
        context: str = "",
    ) -> None:
        self._api = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name
        self.canary_percent = canary_percent
        self.ready_timeout_s = ready_timeout_s
        self.description = f"kserve:{context}/{namespace}/{name}" if context else f"kserve:{namespace}/{name}"
        self._seen: tuple[float, dict[str, Any]] | None = None
        """What ``state()`` last read, and when: the object ``apply`` patches without a re-read."""

    # -- reading back the state --------------------------------------------------------
    def get(self) -> dict[str, Any]:
        return self._call(
            "get",
            lambda: self._api.get_namespaced_custom_object(
                GROUP, API_VERSION, self.namespace, PLURAL, self.name
            ),
        )

    def state(self) -> TargetState:
        """Read back from the InferenceService; a canary it cannot honour is refused here, before any
        version is fetched (``edges status`` shows why)."""
        obj = self.get()
        if self.canary_percent and _deployment_mode(obj) in RAW_MODES:
            raise InvalidInput(
                f"{self.description}: a canary needs KServe's Serverless mode; on a RawDeployment "
                "InferenceService canaryTrafficPercent splits nothing (set canary_percent to 0)"
            )
        self._seen = (time.monotonic(), obj)
        notes = _annotations(obj)
        return TargetState(
            _deployed(obj), _previous(obj), notes.get(REJECTED_VERSION), notes.get(PINNED) == "true"
        )

    def current(self) -> Deployed | None:
        return _deployed(self.get())

    def previous(self) -> Deployed | None:
        return _previous(self.get())

    def rejected(self) -> str | None:
        return _annotations(self.get()).get(REJECTED_VERSION)

    # -- changing it -------------------------------------------------------------------
    def apply(self, uri: str, version: str) -> Deployed:
        obj = self._repoint(uri, version)
        ok, why, obj = self._await_ready(obj)
        if ok and obj["spec"]["predictor"].get("canaryTrafficPercent") is not None:
            obj = self._patch(obj, {}, {"canaryTrafficPercent": None})  # promote
            ok, why, obj = self._await_ready(obj)
        if not ok:
            self._restore(self.get(), why)
            raise RolloutFailed(f"{self.description}: {version} ({uri}) rolled back: {why}")
        obj = self._confirm(obj)
        deployed = _deployed(obj)
        assert deployed is not None
        return deployed

    def _repoint(self, uri: str, version: str) -> dict[str, Any]:
        """Patch the storage URI to ``uri`` unless it is there already (a resumed rollout).

        The object ``state()`` has just read is patched without reading it again: the
        resourceVersion precondition turns any change since into a 409, and only then is
        it read afresh.  A resumed rollout always starts from a fresh read.
        """
        seen, self._seen = self._seen, None
        cached = seen[1] if seen is not None and time.monotonic() - seen[0] < SEEN_FOR_S else None
        obj = cached or self.get()
        if _model(obj).get("storageUri") == uri:
            return self.get() if cached else obj
        try:
            return self._patch_uri(obj, uri, version)
        except ResourceVersionConflict:
            obj = self.get()  # changed since read, or our own patch landed and its answer was lost
        return obj if _model(obj).get("storageUri") == uri else self._patch_uri(obj, uri, version)

    def _patch_uri(self, obj: dict[str, Any], uri: str, version: str) -> dict[str, Any]:
        before_uri = _model(obj).get("storageUri")
        notes = _annotations(obj)
        spec: dict[str, Any] = {"model": {"storageUri": uri}}
        if self.canary_percent:
            spec["canaryTrafficPercent"] = self.canary_percent
        obj = self._patch(
            obj,
            {
                VERSION: version,
                SYNCED_AT: None,
                PREVIOUS_URI: before_uri,
                PREVIOUS_VERSION: notes.get(VERSION) or _version_of(before_uri),
            },
            spec,
        )
        log.info(
            "%s: storageUri %s -> %s (generation %s)",
            self.description,
            before_uri,
            uri,
            obj["metadata"].get("generation"),
        )
        return obj

    def _confirm(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Record the confirmed sync; a status update in between (409) only needs a fresh read."""
        for _ in range(3):
            try:
                return self._patch(obj, {SYNCED_AT: datetime.now(UTC).isoformat()}, {})
            except ResourceVersionConflict:
                obj = self.get()
        return self._patch(obj, {SYNCED_AT: datetime.now(UTC).isoformat()}, {})

    def rollback(self) -> Deployed | None:
        obj = self.get()
        if not _annotations(obj).get(PREVIOUS_URI):
            return self.current()
        self._restore(obj, "an operator rolled it back", pin=True)
        return self.current()

    def unpin(self) -> None:
        obj = self.get()
        if _annotations(obj).get(PINNED):
            self._patch(obj, {PINNED: None}, {})

    def _restore(self, obj: dict[str, Any], why: str, pin: bool = False) -> None:
        notes = _annotations(obj)
        failed_uri = _model(obj).get("storageUri")
        failed_version = notes.get(VERSION) or _version_of(failed_uri)
        back_uri, back_version = notes.get(PREVIOUS_URI), notes.get(PREVIOUS_VERSION)
        rejected = {REJECTED_URI: failed_uri, REJECTED_VERSION: failed_version}
        if not back_uri:
            log.error(
                "%s: %s failed (%s) and there is no previous URI to restore",
                self.description,
                failed_version,
                why,
            )
            self._patch(obj, rejected, {})
            return
        log.warning(
            "%s: restoring %s (%s) after %s failed: %s",
            self.description,
            back_version,
            back_uri,
            failed_version,
            why,
        )
        obj = self._patch(
            obj,
            {
                **rejected,
                PINNED: "true" if pin else None,
                VERSION: back_version,
                PREVIOUS_URI: None,
                PREVIOUS_VERSION: None,
                SYNCED_AT: datetime.now(UTC).isoformat(),
            },
            {"model": {"storageUri": back_uri}, "canaryTrafficPercent": None},
        )
        ok, restored_why, _ = self._await_ready(obj)
        if not ok:
            log.error("%s: restored %s is not Ready either: %s", self.description, back_version, restored_why)

    def _patch(
        self, obj: dict[str, Any], annotations: dict[str, Any], predictor: dict[str, Any]
    ) -> dict[str, Any]:
        """A merge patch, sent again if it is lost in transit: the resourceVersion
        precondition turns a repeat of one that did land into a 409, never a second change."""
        body: dict[str, Any] = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}}
        if annotations:
            body["metadata"]["annotations"] = annotations
        if predictor:
            body["spec"] = {"predictor": predictor}
        for attempt in range(1, PATCH_ATTEMPTS + 1):
            try:
                return self._call(
                    "patch",
                    lambda: self._api.patch_namespaced_custom_object(
                        GROUP, API_VERSION, self.namespace, PLURAL, self.name, body
                    ),
                )  # the client sends a dict body to a custom object as MERGE_PATCH
            except ServiceUnavailable as exc:
                if attempt == PATCH_ATTEMPTS or not isinstance(exc.__cause__, HTTPError):
                    raise  # only a patch lost in transit is resent
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    def _await_ready(self, obj: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        """Poll until the patched generation is Ready (or not), with a growing interval.

        A new revision takes KServe at least a few hundred milliseconds, and each poll is
        a request to the edge's API server, which a whole fleet rolling out at once
        shares: so the first look is after 0.25 s and the interval grows to 1 s.
        """
        deadline = time.monotonic() + self.ready_timeout_s
        pause = 0.25
        while True:
            ok, why = _ready(obj)
            if ok is not None:
                return ok, why, obj
            now = time.monotonic()
            if now >= deadline:
                return False, f"not Ready within {self.ready_timeout_s:.0f} s ({why})", obj
            time.sleep(min(pause, max(0.0, deadline - now) + 0.01))
            pause = min(pause * 1.5, 1.0)
            obj = self.get()

    def _call(self, action: str, fn: Any) -> dict[str, Any]:
        where = f"{action} InferenceService {self.description}"
        try:
            result: dict[str, Any] = fn()
            return result
        except ApiException as exc:
            raise _wrap(exc, where) from exc
        except HTTPError as exc:  # urllib3 already retried what is safe to retry (reads)
            raise ServiceUnavailable(f"{where}: API server unreachable ({exc})") from exc


def _wrap(exc: ApiException, where: str) -> EdgecoreError:
    reason = f"{where}: API server answered {exc.status} {exc.reason}"
    if exc.status == 404:
        return NotFound(reason)
    if exc.status == 409:
        return ResourceVersionConflict(reason)
    if exc.status in (409, 429) or (exc.status or 0) >= 500:
        return ServiceUnavailable(reason)  # a conflict is retried from a fresh read
    return PermanentError(f"{reason}: {(exc.body or '')[:500]}")


def _deployed(obj: dict[str, Any]) -> Deployed | None:
    uri = _model(obj).get("storageUri")
    notes = _annotations(obj)
    version = notes.get(VERSION) if notes.get(VERSION) and uri else _version_of(uri)
    if not uri or not version:
        return None
    synced = notes.get(SYNCED_AT)
    return Deployed(version, uri, datetime.fromisoformat(synced) if synced else None)


def _previous(obj: dict[str, Any]) -> Deployed | None:
    notes = _annotations(obj)
    uri, version = notes.get(PREVIOUS_URI), notes.get(PREVIOUS_VERSION)
    return Deployed(version, uri) if uri and version else None


def _deployment_mode(obj: dict[str, Any]) -> str:
    """What KServe reports (``status.deploymentMode``), else what the object asks for, lowercased."""
    reported = (obj.get("status") or {}).get("deploymentMode")
    return str(reported or _annotations(obj).get("serving.kserve.io/deploymentMode") or "").lower()


RAW_MODES = frozenset({"rawdeployment", "standard"})
"""KServe's plain-Deployment mode (``Standard`` since 0.16), where ``canaryTrafficPercent`` splits nothing."""


def _model(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec", {}).get("predictor", {}).get("model") or {}


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}
