"""An edge served through GitOps: every rollout and rollback is a commit to the fleet repository.

Argo CD's ApplicationSet renders ``edges/<edge>/`` onto the edge cluster; of that folder
the controller owns one file, ``release.yaml``, a kustomize patch of the edge's
InferenceService carrying its ``storageUri`` and the very annotations the KServe target
writes (``isvc``), so the repository at the remote's HEAD is the target's memory and a
restarted controller, or a second one, reads the same state.  Git being the only writer,
health is still read from the edge cluster: a commit is confirmed once the
InferenceService there carries its ``storageUri`` and KServe reports it Ready (and, where
the controller can reach it, the predictor answers for the version).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml

from edge_sync.delivery.targets import isvc
from edge_sync.delivery.targets.address import AddressProbe
from edge_sync.delivery.targets.base import Deployed, TargetState
from edge_sync.delivery.targets.counters import Counters
from edge_sync.delivery.targets.fleet_repo import FleetRepo
from edge_sync.delivery.targets.isvc import PINNED, PREVIOUS_URI, REJECTED_VERSION, SYNCED_AT
from edge_sync.delivery.targets.kserve import API_VERSION, CONFIRMATIONS, GROUP, PROBE_TIMEOUT_S, KServeTarget
from foundation.errors import InvalidInput, ResourceVersionConflict, RolloutFailed

log = logging.getLogger(__name__)

RELEASE = "release.yaml"
"""The one file of an edge folder the controller writes."""
BASE = "base/edge"
"""Where the fleet repository keeps the edge overlay every edge folder builds on."""
BASE_ISVC, SETTINGS, FLEET = "change-me-products", "edgecore-edge-settings", "edgecore-edge-fleet"
"""The names the base's InferenceService and ConfigMaps carry before an edge folder renames them."""

Edit = Callable[[dict[str, Any]], tuple[isvc.Patch, str] | None]
"""What a change makes of the release: a merge patch and its commit message (None: nothing to do)."""


def first_release(name: str, namespace: str, uri: str | None = None, version: str | None = None) -> str:
    """An edge's first ``release.yaml``: ``uri`` (None: the base's first version) and no history yet."""
    obj = _skeleton(name, namespace)
    if uri:
        obj["spec"]["predictor"]["model"]["storageUri"] = uri
        obj["metadata"]["annotations"][isvc.VERSION] = version or isvc.version_of(uri)
    return _dump(obj)


def edge_folder(edge: str, namespace: str, name: str, folder: str, fleet_json: str | None = None) -> str:
    """The ``kustomization.yaml`` of an edge folder: the base, named for ``edge``, plus ``release.yaml``.

    ``fleet_json`` replaces the edge's own sync controller's fleet file (it must drive the same
    target as the core's, through git, or it and Argo CD would undo each other's writes).
    """
    ops = [
        {"op": "replace", "path": "/metadata/name", "value": name},
        {"op": "replace", "path": "/metadata/labels/edgecore.io~1edge", "value": edge},
        {"op": "replace", "path": "/spec/predictor/model/args/1", "value": edge},
    ]
    settings = [
        {"op": "replace", "path": "/data/EDGECORE_EDGE_ID", "value": edge},
        {"op": "replace", "path": "/data/EDGECORE_KAFKA_USERNAME", "value": f"edge-{edge}"},
    ]
    patches: list[dict[str, Any]] = [
        {"target": {"kind": "InferenceService", "name": BASE_ISVC}, "patch": yaml.safe_dump(ops)},
        {"target": {"kind": "ConfigMap", "name": SETTINGS}, "patch": yaml.safe_dump(settings)},
    ]
    if fleet_json is not None:
        fleet = [{"op": "replace", "path": "/data/fleet.json", "value": fleet_json}]
        patches.append({"target": {"kind": "ConfigMap", "name": FLEET}, "patch": yaml.safe_dump(fleet)})
    patches.append({"path": RELEASE, "target": {"kind": "InferenceService", "name": name}})
    depth = len([p for p in folder.split("/") if p])
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": ["../" * depth + BASE],
        "patches": patches,
    }
    note = (
        f"# Edge {edge}, rendered by Argo CD. {RELEASE} is the sync controller's: its rollouts are commits.\n"
    )
    return note + str(yaml.safe_dump(kustomization, sort_keys=False))


class GitOpsTarget:
    local_copy = False

    def __init__(
        self,
        repo: FleetRepo,
        folder: str,
        reader: KServeTarget,
        ready_timeout_s: float = 50.0,
        probe: AddressProbe | None = None,
    ) -> None:
        """``reader`` only ever reads the InferenceService (its status); ``probe`` as for ``KServeTarget``."""
        self.repo = repo
        self.folder = folder.strip("/")
        self.path = f"{self.folder}/{RELEASE}"
        self.reader = reader
        self.ready_timeout_s = ready_timeout_s
        self.description = f"gitops:{repo.where()}#{repo.branch}:{self.folder}"
        self._probe = probe

    # -- reading back the state, from the remote's HEAD ---------------------------------
    def release(self) -> dict[str, Any]:
        return _load(self.repo.read(self.path), self.path)

    def state(self) -> TargetState:
        obj = self.release()
        notes = isvc.annotations(obj)
        return TargetState(
            isvc.deployed(obj), isvc.previous(obj), notes.get(REJECTED_VERSION), notes.get(PINNED) == "true"
        )

    def current(self) -> Deployed | None:
        return isvc.deployed(self.release())

    def previous(self) -> Deployed | None:
        return isvc.previous(self.release())

    def rejected(self) -> str | None:
        return isvc.annotations(self.release()).get(REJECTED_VERSION)

    # -- changing it: commits ----------------------------------------------------------
    def apply(self, uri: str, version: str) -> Deployed:
        """Commit ``uri`` unless the release names it already (a resumed rollout), then await health."""
        before = isvc.ready_mark(self.reader.get())
        _, committed = self._commit(lambda obj: self._repoint(obj, uri, version))
        ok, why = self._await_serving(uri, version, before if committed else None)
        if not ok:
            self._restore(uri, f"{version} unhealthy: {why}", pin=False)
            raise RolloutFailed(f"{self.description}: {version} ({uri}) rolled back by a commit: {why}")
        obj, _ = self._commit(lambda current: _confirm(current, uri, version, why, self._edge()))
        deployed = isvc.deployed(obj)
        if deployed is None or deployed.uri != uri:
            raise ResourceVersionConflict(f"{self.description}: {version} was replaced in git as it came up")
        return deployed

    def rollback(self, why: str = "an operator rolled it back", pin: bool = True) -> Deployed | None:
        obj = self.release()
        failed = isvc.model(obj).get("storageUri")
        if not isvc.annotations(obj).get(PREVIOUS_URI) or not failed:
            return isvc.deployed(obj)
        return self._restore(failed, why, pin)

    def unpin(self) -> None:
        def edit(obj: dict[str, Any]) -> tuple[isvc.Patch, str] | None:
            if not isvc.annotations(obj).get(PINNED):
                return None
            serving = isvc.version_at(isvc.model(obj).get("storageUri"), isvc.annotations(obj))
            message = f"{self._edge()}: unpin {serving}\n\nAn operator let it be synced again."
            return ({PINNED: None}, {}), message

        self._commit(edit)

    def counters(self) -> Counters | None:
        return self.reader.counters()

    # -- helpers -----------------------------------------------------------------------
    def _edge(self) -> str:
        return f"edge {self.folder.rsplit('/', 1)[-1]}"

    def _repoint(self, obj: dict[str, Any], uri: str, version: str) -> tuple[isvc.Patch, str] | None:
        patch = isvc.repoint_patch(obj, uri, version, None)
        if patch is None:
            return None
        was = patch[0][isvc.PREVIOUS_VERSION] or "nothing"
        body = f"storageUri {uri}\nprevious {patch[0][PREVIOUS_URI] or '-'}"
        return patch, f"{self._edge()}: serve {version} (was {was})\n\n{body}"

    def _restore(self, failed_uri: str, why: str, pin: bool) -> Deployed | None:
        def edit(obj: dict[str, Any]) -> tuple[isvc.Patch, str] | None:
            patch = isvc.restore_patch(obj, failed_uri, pin)
            if patch is None:
                return None
            failed = isvc.version_at(failed_uri, isvc.annotations(obj))
            back = isvc.annotations(obj).get(isvc.PREVIOUS_VERSION) or "nothing (marked rejected only)"
            pinned = "\n\nPinned: no version is synced to this edge until it is unpinned." if pin else ""
            return patch, f"{self._edge()}: roll back {failed} to {back}\n\nWhy: {why}{pinned}"

        before = isvc.ready_mark(self.reader.get())
        obj, _ = self._commit(edit)
        back = isvc.deployed(obj)
        if back is not None and back.uri != failed_uri:
            ok, restored_why = self._await_serving(back.uri, back.version, before)
            if not ok:
                log.error("%s: restored %s is not serving: %s", self.description, back.version, restored_why)
        return back

    def _commit(self, edit: Edit) -> tuple[dict[str, Any], bool]:
        """One commit of ``release.yaml``, recomputed on the remote's newest content after a lost race;
        the release as it now is, and whether a commit was pushed."""
        result: dict[str, Any] = {}

        def change(text: str | None) -> tuple[str, str] | None:
            obj = _load(text, self.path)
            result["obj"] = obj
            wanted = edit(obj)
            if wanted is None:
                return None
            (annotations, predictor), message = wanted
            result["obj"] = _merged(obj, annotations, predictor)
            return _dump(result["obj"]), message

        pushed = self.repo.change(self.path, change)
        obj: dict[str, Any] = result["obj"]
        return obj, pushed

    def _await_serving(self, uri: str, version: str, before: str | None) -> tuple[bool, str]:
        """Until the edge's InferenceService carries ``uri`` (Argo CD synced the commit) and serves it.

        Ready alone can be left over from the version before (kserve#4626), so where the
        controller can reach the predictor's address it must answer for ``version`` too.  A
        ``Ready`` condition that is False once the new URI is there, and was written since the
        commit (not the one ``before`` it; None: a resumed rollout, any), fails it at once.
        """
        deadline = time.monotonic() + self.ready_timeout_s
        why, pause = "Argo CD has not synced the commit yet", 0.25
        while time.monotonic() < deadline:
            obj = self.reader.get()
            if isvc.model(obj).get("storageUri") == uri:
                ready = isvc.condition(obj, "Ready")
                if ready.get("status") == "False" and isvc.ready_mark(obj) != before:
                    return False, f"{ready.get('reason') or 'NotReady'}: {ready.get('message', '')}".strip()
                ok, why = self._serves(obj, version, deadline)
                if ok:
                    return True, why
            time.sleep(min(pause, max(0.0, deadline - time.monotonic()) + 0.01))
            pause = min(pause * 1.5, 1.0)
        return False, f"{version} not serving within {self.ready_timeout_s:.0f} s ({why})"

    def _serves(self, obj: dict[str, Any], version: str, deadline: float) -> tuple[bool, str]:
        if isvc.condition(obj, "Ready").get("status") != "True":
            return False, "Ready is not True yet"
        if self._probe is None:
            return True, "Ready"
        address = isvc.address(obj)
        if address is None:
            return False, "no status.address.url yet"
        for _ in range(CONFIRMATIONS):
            left = deadline - time.monotonic()
            timeout = min(PROBE_TIMEOUT_S, left)
            if left <= 0 or not self._probe.serves(address, self.reader.name, version, timeout):
                return False, f"{address} does not serve {version} yet"
        return True, f"{address} serves {version}"


def _confirm(
    obj: dict[str, Any], uri: str, version: str, why: str, edge: str
) -> tuple[isvc.Patch, str] | None:
    """Stamp the rollout confirmed, unless git has moved on from ``uri`` or it is stamped already."""
    if isvc.model(obj).get("storageUri") != uri or isvc.annotations(obj).get(SYNCED_AT):
        return None
    stamp = datetime.now(UTC).isoformat()
    return ({SYNCED_AT: stamp}, {}), f"{edge}: {version} confirmed serving\n\n{why}"


def _skeleton(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{API_VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace, "annotations": {}},
        "spec": {"predictor": {"model": {}}},
    }


def _load(text: str | None, path: str) -> dict[str, Any]:
    if text is None:
        raise InvalidInput(f"{path} is not in the fleet repository: add the edge folder first")
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not YAML ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("kind") != "InferenceService":
        raise InvalidInput(f"{path}: not a patch of an InferenceService")
    obj.setdefault("metadata", {}).setdefault("annotations", {})
    obj.setdefault("spec", {}).setdefault("predictor", {}).setdefault("model", {})
    return obj


def _merged(obj: dict[str, Any], annotations: dict[str, Any], predictor: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with a merge patch (RFC 7386: None removes a key) of its annotations and predictor."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    _merge_into(out["metadata"]["annotations"], annotations)
    _merge_into(out["spec"]["predictor"], predictor)
    return out


def _merge_into(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_into(into[key], value)
        else:
            into[key] = value


def _dump(obj: dict[str, Any]) -> str:
    head = "# Owned by the edgecore sync controller: every change is a rollout or rollback commit.\n"
    return head + str(yaml.safe_dump(obj, sort_keys=False))
