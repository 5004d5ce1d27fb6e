"""An InferenceService as read from the API server: what it serves, what KServe reports about it,
and the ``edgecore.io/*`` annotations that are the KServe target's memory."""

from datetime import UTC, datetime
from typing import Any

from edge_sync.delivery.targets.base import Deployed
from foundation.layout import VERSION_RE

ANNOTATION = "edgecore.io/"
VERSION = ANNOTATION + "model-version"
SYNCED_AT = ANNOTATION + "synced-at"
PREVIOUS_URI = ANNOTATION + "previous-storage-uri"
PREVIOUS_VERSION = ANNOTATION + "previous-model-version"
REJECTED_URI = ANNOTATION + "rejected-storage-uri"
REJECTED_VERSION = ANNOTATION + "rejected-model-version"
PINNED = ANNOTATION + "pinned"


def annotation_pointer(key: str) -> str:
    """The JSON pointer (RFC 6901) of one annotation."""
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")


OWNED_FIELDS = (
    "/spec/predictor/model/storageUri",
    "/spec/predictor/canaryTrafficPercent",
    *(
        annotation_pointer(key)
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


def version_of(uri: str | None) -> str | None:
    for part in reversed((uri or "").rstrip("/").split("/")):
        if VERSION_RE.match(part):
            return part
    return None


def version_at(uri: str | None, notes: dict[str, str]) -> str | None:
    """The version a URI names wins over the annotation, which a repoint by someone else leaves stale."""
    return version_of(uri) or notes.get(VERSION)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None
    )
    return found or {}


def status_mark(obj: dict[str, Any]) -> str:
    """What KServe last wrote, to tell a verdict written after a change from one left over before it."""
    return repr(sorted((obj.get("status") or {}).items()))


def ready_mark(obj: dict[str, Any]) -> str:
    """The ``Ready`` condition as written, to tell a new verdict from one standing since before a change."""
    return repr(sorted(condition(obj, "Ready").items()))


def address(obj: dict[str, Any]) -> str | None:
    address = ((obj.get("status") or {}).get("address") or {}).get("url")
    return str(address) if address else None


def deployed(obj: dict[str, Any]) -> Deployed | None:
    uri = model(obj).get("storageUri")
    notes = annotations(obj)
    version = version_at(uri, notes) if uri else None
    if not uri or not version:
        return None
    synced = notes.get(SYNCED_AT)
    return Deployed(version, uri, datetime.fromisoformat(synced) if synced else None)


def previous(obj: dict[str, Any]) -> Deployed | None:
    notes = annotations(obj)
    uri, version = notes.get(PREVIOUS_URI), notes.get(PREVIOUS_VERSION)
    return Deployed(version, uri) if uri and version else None


def deployment_mode(obj: dict[str, Any]) -> str:
    """What KServe reports (``status.deploymentMode``), else what the object asks for, lowercased."""
    reported = (obj.get("status") or {}).get("deploymentMode")
    return str(reported or annotations(obj).get("serving.kserve.io/deploymentMode") or "").lower()


RAW_MODES = frozenset({"rawdeployment", "standard"})
"""KServe's plain-Deployment mode (``Standard`` since 0.16), where ``canaryTrafficPercent`` splits nothing."""


def model(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec", {}).get("predictor", {}).get("model") or {}


def annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


Patch = tuple[dict[str, Any], dict[str, Any]]
"""A merge patch's annotations and predictor spec."""


def repoint_patch(obj: dict[str, Any], uri: str, version: str, canary_percent: int | None) -> Patch | None:
    """Point the predictor at ``uri``, remembering what it served before; None once it does."""
    before_uri = model(obj).get("storageUri")
    if before_uri == uri:
        return None
    notes = annotations(obj)
    spec: dict[str, Any] = {"model": {"storageUri": uri}}
    if canary_percent:
        spec["canaryTrafficPercent"] = canary_percent
    notes_patch = {
        VERSION: version,
        SYNCED_AT: None,
        PREVIOUS_URI: before_uri,
        PREVIOUS_VERSION: version_at(before_uri, notes),
    }
    return notes_patch, spec


def restore_patch(obj: dict[str, Any], failed_uri: str | None, pin: bool) -> Patch | None:
    """Mark ``failed_uri`` rejected and go back to the previous URI where there is one.

    None once done: the predictor no longer points at ``failed_uri``, or (with nothing
    to go back to) it is marked rejected already.
    """
    notes = annotations(obj)
    if model(obj).get("storageUri") != failed_uri:
        return None
    rejected = {REJECTED_URI: failed_uri, REJECTED_VERSION: version_at(failed_uri, notes)}
    back_uri = notes.get(PREVIOUS_URI)
    if not back_uri:
        return None if notes.get(REJECTED_URI) == failed_uri else (rejected, {})
    notes_patch = {
        **rejected,
        PINNED: "true" if pin else None,
        VERSION: notes.get(PREVIOUS_VERSION),
        PREVIOUS_URI: None,
        PREVIOUS_VERSION: None,
        SYNCED_AT: datetime.now(UTC).isoformat(),
    }
    return notes_patch, {"model": {"storageUri": back_uri}, "canaryTrafficPercent": None}


def confirm_ops(obj: dict[str, Any], stamp: str) -> list[dict[str, Any]]:
    """A JSON patch (RFC 6902) stamping the sync confirmed, on condition that the spec is still
    the one that was confirmed: ``metadata.generation`` moves with every spec change and never
    with KServe's status writes, which a resourceVersion precondition would trip over."""
    return [
        {"op": "test", "path": "/metadata/generation", "value": obj["metadata"]["generation"]},
        {"op": "add", "path": annotation_pointer(SYNCED_AT), "value": stamp},
    ]
