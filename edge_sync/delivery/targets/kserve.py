"""A KServe InferenceService in an edge cluster, repointed with a JSON merge patch.

Custom resources take no strategic merge patch, so every change is an RFC 7386 merge
patch (``null`` removes a key) carrying ``metadata.resourceVersion`` as a precondition:
a concurrent writer makes the API server answer 409 instead of being overwritten.  The
one exception is the stamp of a confirmed sync, whose precondition is the spec's
generation (an RFC 6902 ``test``), which KServe's status writes leave alone.  A
rollout is healthy once ``Ready`` is true and the predictor, asked through the address
KServe publishes, answers for the new version, ready and with an inference (``address``);
``observedGeneration`` proves nothing, being a child Deployment's counter (kserve#6081).
A ``Ready`` condition that turned false after the change fails it at once.

The target's memory is the object's annotations, written in the same patch as the URI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from edge_sync.delivery.targets import isvc
from edge_sync.delivery.targets.address import AddressProbe
from edge_sync.delivery.targets.apierrors import api_error
from edge_sync.delivery.targets.base import SEEN_FOR_S, Deployed, TargetState
from edge_sync.delivery.targets.counters import Counters
from edge_sync.delivery.targets.isvc import (
    PINNED,
    PREVIOUS_URI,
    PREVIOUS_VERSION,
    RAW_MODES,
    REJECTED_VERSION,
    SYNCED_AT,
)
from foundation.errors import (
    InvalidInput,
    ResourceVersionConflict,
    RolloutFailed,
    ServiceUnavailable,
)

log = logging.getLogger(__name__)

GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
IN_CLUSTER = "in-cluster"
CONFIRMATIONS = 3
"""Answers in a row the predictor must give for the new version."""
PROBE_TIMEOUT_S = 5.0
READ_EVERY_S = 2.0
"""While the predictor does not serve the new version yet, how often the InferenceService is read."""
PATCH_ATTEMPTS = 3
"""A patch lost in transit is sent again this many times in all."""
CONFLICT_ATTEMPTS = 5
"""Fresh reads and patches after a 409 before the conflict is reported."""


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


class KServeTarget:
    local_copy = False

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        canary_percent: int = 0,
        ready_timeout_s: float = 50.0,
        context: str = "",
        probe: AddressProbe | None = None,
    ) -> None:
        """Without ``probe`` a rollout is trusted to KServe's ``Ready`` alone (a controller outside
        the edge cluster cannot reach the cluster-local address): kserve#4626 then applies."""
        self._api = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name
        self.canary_percent = canary_percent
        self.ready_timeout_s = ready_timeout_s
        self.description = f"kserve:{context}/{namespace}/{name}" if context else f"kserve:{namespace}/{name}"
        self._probe = probe
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
        if self.canary_percent and isvc.deployment_mode(obj) in RAW_MODES:
            raise InvalidInput(
                f"{self.description}: a canary needs KServe's Serverless mode; on a RawDeployment "
                "InferenceService canaryTrafficPercent splits nothing (set canary_percent to 0)"
            )
        self._seen = (time.monotonic(), obj)
        notes = isvc.annotations(obj)
        return TargetState(
            isvc.deployed(obj), isvc.previous(obj), notes.get(REJECTED_VERSION), notes.get(PINNED) == "true"
        )

    def current(self) -> Deployed | None:
        return isvc.deployed(self.get())

    def previous(self) -> Deployed | None:
        return isvc.previous(self.get())

    def rejected(self) -> str | None:
        return isvc.annotations(self.get()).get(REJECTED_VERSION)

    # -- changing it -------------------------------------------------------------------
    def apply(self, uri: str, version: str) -> Deployed:
        obj, resumed = self._repoint(uri, version)
        canary = obj["spec"]["predictor"].get("canaryTrafficPercent") is not None
        ok, why, obj = self._await_ready(obj, version, through_address=not canary, resumed=resumed)
        if ok and canary:
            obj = self._patch(obj, {}, {"canaryTrafficPercent": None})  # promote
            ok, why, obj = self._await_ready(obj, version)
        if not ok:
            self._restore(self.get(), why)
            raise RolloutFailed(f"{self.description}: {version} ({uri}) rolled back: {why}")
        obj = self._confirm(obj)
        deployed = isvc.deployed(obj)
        assert deployed is not None
        return deployed

    def _repoint(self, uri: str, version: str) -> tuple[dict[str, Any], bool]:
        """Patch the storage URI to ``uri`` unless it is there already (a resumed rollout, True).

        The object ``state()`` has just read is patched without reading it again: the
        resourceVersion precondition turns any change since into a 409, and only then is
        it read afresh.  A resumed rollout always starts from a fresh read.
        """
        seen, self._seen = self._seen, None
        cached = seen[1] if seen is not None and time.monotonic() - seen[0] < SEEN_FOR_S else None
        obj = cached or self.get()
        if isvc.model(obj).get("storageUri") == uri:
            return (self.get() if cached else obj), True
        before = isvc.model(obj).get("storageUri")
        obj = self._revise(
            obj, lambda current: isvc.repoint_patch(current, uri, version, self.canary_percent)
        )
        log.info(
            "%s: storageUri %s -> %s (generation %s)",
            self.description,
            before,
            uri,
            obj["metadata"].get("generation"),
        )
        return obj, False

    def _confirm(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Record the confirmed sync.

        KServe has written status while the version came up, so ``obj``'s resourceVersion is
        stale and a merge patch would cost a 409 and a fresh read on every rollout.  The JSON
        patch's precondition is the spec's generation instead; only if the spec itself moved
        (422), or the answer was lost, is the object read afresh and stamped as before.
        """
        stamp = datetime.now(UTC).isoformat()
        try:
            return self._json_patch(isvc.confirm_ops(obj, stamp))
        except (InvalidInput, ServiceUnavailable) as exc:
            if isinstance(exc, ServiceUnavailable) and not isinstance(exc.__cause__, HTTPError):
                raise  # an overloaded API server (429, 5xx): the fleet backs off, as for any write
            log.info("%s: stamping from a fresh read: %s", self.description, exc)
            return self._revise(self.get(), lambda _: ({SYNCED_AT: stamp}, {}))

    def _json_patch(self, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """An RFC 6902 patch, which ``CustomObjectsApi`` cannot send (it always says merge patch)."""
        path = f"/apis/{GROUP}/{API_VERSION}/namespaces/{self.namespace}/{PLURAL}/{self.name}"
        result: dict[str, Any] = self._call(
            "patch",
            lambda: self._api.api_client.call_api(
                path,
                "PATCH",
                query_params=[("fieldValidation", "Strict")],
                header_params={"Accept": "application/json", "Content-Type": "application/json-patch+json"},
                body=ops,
                auth_settings=["BearerToken"],
                response_type="object",
                _return_http_data_only=True,
            ),
        )
        return result

    def rollback(self, why: str = "an operator rolled it back", pin: bool = True) -> Deployed | None:
        obj = self.get()
        if not isvc.annotations(obj).get(PREVIOUS_URI):
            return self.current()
        self._restore(obj, why, pin=pin)
        return self.current()

    def unpin(self) -> None:
        self._revise(
            self.get(),
            lambda current: ({PINNED: None}, {}) if isvc.annotations(current).get(PINNED) else None,
        )

    def counters(self) -> Counters | None:
        """Read through the predictor's address, where the controller can reach it (``probe``)."""
        if self._probe is None:
            return None
        address = isvc.address(self.get())
        return None if address is None else self._probe.counters(address, self.name, PROBE_TIMEOUT_S)

    def _restore(self, obj: dict[str, Any], why: str, pin: bool = False) -> None:
        notes = isvc.annotations(obj)
        failed_uri = isvc.model(obj).get("storageUri")
        failed_version = isvc.version_at(failed_uri, notes)
        back_uri, back_version = notes.get(PREVIOUS_URI), notes.get(PREVIOUS_VERSION)
        if not back_uri:
            log.error(
                "%s: %s failed (%s) and there is no previous URI to restore",
                self.description,
                failed_version,
                why,
            )
        else:
            log.warning(
                "%s: restoring %s (%s) after %s failed: %s",
                self.description,
                back_version,
                back_uri,
                failed_version,
                why,
            )
        obj = self._revise(obj, lambda current: isvc.restore_patch(current, failed_uri, pin))
        if not back_uri:
            return
        ok, restored_why, _ = self._await_ready(obj, str(back_version))
        if not ok:
            log.error("%s: restored %s is not Ready either: %s", self.description, back_version, restored_why)

    def _revise(
        self, obj: dict[str, Any], change: Callable[[dict[str, Any]], isvc.Patch | None]
    ) -> dict[str, Any]:
        """Patch what ``change`` makes of ``obj`` (None: nothing left to do).

        A 409 says the object changed since it was read: KServe wrote its status, an
        operator or Argo CD wrote the spec, or a patch of ours landed and its answer was
        lost.  The object is read afresh and ``change`` asked again, so a busy controller
        writing status never turns a repoint or a rollback into a failure.
        """
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            patch = change(obj)
            if patch is None:
                return obj
            try:
                return self._patch(obj, *patch)
            except ResourceVersionConflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
                obj = self.get()
        raise AssertionError("unreachable")

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
                        GROUP, API_VERSION, self.namespace, PLURAL, self.name, body, field_validation="Strict"
                    ),
                )  # a dict body goes as a merge patch; Strict: a field KServe lacks is a 422, not pruned
            except ServiceUnavailable as exc:
                if attempt == PATCH_ATTEMPTS or not isinstance(exc.__cause__, HTTPError):
                    raise  # only a patch lost in transit is resent
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    def _await_ready(
        self, obj: dict[str, Any], version: str, through_address: bool = True, resumed: bool = False
    ) -> tuple[bool, str, dict[str, Any]]:
        """Poll until ``version`` serves (or KServe says it cannot), with a growing interval.

        A new revision takes KServe at least a few hundred milliseconds, so the first look
        is after 0.25 s and the interval grows to 1 s.  The edge's API server is shared by a
        whole fleet rolling out at once, the predictor is not: while it does not serve the
        version yet, only it is asked, and the InferenceService is read again every
        ``READ_EVERY_S`` (to see a failure KServe reports).  A canary share is not asked
        through the address (the answer depends on which pod takes it).  A ``resumed``
        rollout (the URI was already there) takes whatever status stands.
        """
        deadline = time.monotonic() + self.ready_timeout_s
        before = None if resumed else (isvc.status_mark(obj), isvc.ready_mark(obj))
        probing = self._probe is not None and through_address
        pause, read_at = 0.25, time.monotonic()
        while True:
            served = self._asked(obj, version, deadline) if probing else False
            ok, why = _verdict(obj, before, probing, served, version)
            if ok is not None:
                return ok, why, obj
            now = time.monotonic()
            if now >= deadline:
                return False, f"{version} not serving within {self.ready_timeout_s:.0f} s ({why})", obj
            time.sleep(min(pause, max(0.0, deadline - now) + 0.01))
            pause = min(pause * 1.5, 1.0)
            if served or not probing or time.monotonic() - read_at >= READ_EVERY_S:
                obj, read_at = self.get(), time.monotonic()

    def _asked(self, obj: dict[str, Any], version: str, deadline: float) -> bool:
        """``CONFIRMATIONS`` answers in a row from the predictor at the address, within the deadline:
        behind a Service each may reach another pod, and one new pod is not a finished rollout."""
        address = isvc.address(obj)
        if address is None or self._probe is None:
            return False
        for _ in range(CONFIRMATIONS):
            left = deadline - time.monotonic()
            if left <= 0 or not self._probe.serves(address, self.name, version, min(PROBE_TIMEOUT_S, left)):
                return False
        return True

    def _call(self, action: str, fn: Any) -> dict[str, Any]:
        where = f"{action} InferenceService {self.description}"
        try:
            result: dict[str, Any] = fn()
            return result
        except ApiException as exc:
            raise api_error(exc, where) from exc
        except HTTPError as exc:  # urllib3 already retried what is safe to retry (reads)
            raise ServiceUnavailable(f"{where}: API server unreachable ({exc})") from exc


def _verdict(
    obj: dict[str, Any], before: tuple[str, str] | None, probing: bool, served: bool, version: str
) -> tuple[bool | None, str]:
    """True once ``version`` serves, False once KServe has reported a failure since the change, None
    while neither is known.  Only a ``Ready`` condition that itself changed since the change is a
    verdict: the rest of the status (``observedGeneration``) moves with every Deployment update."""
    ready = isvc.condition(obj, "Ready")
    if ready.get("status") == "False" and (before is None or isvc.ready_mark(obj) != before[1]):
        return False, f"{ready.get('reason') or 'NotReady'}: {ready.get('message', '')}".strip()
    if probing:
        if isvc.address(obj) is None:
            return None, "no status.address.url yet"
        if not served:
            return None, f"{isvc.address(obj)} does not serve {version} yet"
        return (
            (True, f"{isvc.address(obj)} serves {version}")
            if ready.get("status") == "True"
            else (None, "Ready is not True yet")
        )
    if ready.get("status") != "True":
        return None, "Ready is not reported yet"
    written = before is None or isvc.status_mark(obj) != before[0]
    return (True, "Ready") if written else (None, "no status written since the change")
