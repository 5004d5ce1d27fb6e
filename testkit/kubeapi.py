"""A small, real Kubernetes API server for InferenceServices, run in-process over HTTP.

No Kubernetes can run on these machines, so the KServe target is tested against this
server instead of patched client methods.  It speaks the wire protocol the official
``kubernetes`` client speaks and keeps the API server semantics the target relies on:

* GET / LIST / POST / PATCH on ``serving.kserve.io/v1beta1`` ``inferenceservices``;
* PATCH only as ``application/merge-patch+json`` (RFC 7386, ``null`` removes a key);
  strategic merge patch is refused with 415, as for every custom resource;
* ``metadata.resourceVersion`` in a patch is a precondition (409 on a stale one), every
  write bumps it, a change of ``spec`` bumps ``metadata.generation``, ``status`` is a
  subresource and is ignored in a patch of the main resource;
* every object written is validated against the real KServe CRD ``openAPIV3Schema``
  (422 Invalid if it does not conform), like structural-schema validation.

A simulated KServe controller then reconciles each new generation after ``ready_delay_s``:
it sets ``status.observedGeneration`` and a ``Ready`` condition, False for a storage URI
that the test marked as failing (``fail_uris``), and holds off while ``hold`` is set.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "crds"
    / "kserve"
    / "serving.kserve.io_inferenceservices.yaml"
)
PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([a-z0-9-]+)/inferenceservices(?:/([a-z0-9-]+))?$"
)
MERGE_PATCH = "application/merge-patch+json"


def load_schema() -> dict[str, Any]:
    """The v1beta1 ``openAPIV3Schema``, strict: a field the schema does not list is an error.

    A real API server would prune such a field silently; failing instead makes sure the
    target never relies on a field KServe does not know.
    """
    crd = yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema: dict[str, Any] = _strict(version["schema"]["openAPIV3Schema"])
    return schema


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def inference_service(namespace: str, name: str, storage_uri: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "tflite"},
                    "storageUri": storage_uri,
                    "runtime": "edgecore",
                },
            }
        },
    }


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class KubeApi:
    """The object store, the validation and the simulated KServe controller."""

    def __init__(self, schema: dict[str, Any], ready_delay_s: float = 0.05) -> None:
        self.validator = jsonschema.Draft7Validator(schema)
        self.ready_delay_s = ready_delay_s
        self.fail_uris: set[str] = set()
        self.hold = threading.Event()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, content type)
        self.patches: list[dict[str, Any]] = []
        self.spec_history: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._rv = itertools.count(1000)
        self._lock = threading.Lock()
        self._due: list[tuple[float, str, str, int]] = []
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._controller = threading.Thread(
            target=self._reconcile_loop, name="kserve-controller", daemon=True
        )
        self._controller.start()

    # -- API operations ----------------------------------------------------------------
    def create(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        key = (namespace, meta.get("name", ""))
        with self._lock:
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f"inferenceservices {key[1]!r} already exists")
            meta.update(
                uid=str(uuid.uuid4()),
                generation=1,
                resourceVersion=str(next(self._rv)),
                creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            obj.pop("status", None)
            self._validate(obj)
            self.objects[key] = obj
            self.spec_history[key] = [copy.deepcopy(obj["spec"])]
            self._schedule(key, 1)
            return copy.deepcopy(obj)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find(namespace, name))

    def list_objects(self, namespace: str) -> dict[str, Any]:
        with self._lock:
            items = [copy.deepcopy(o) for (ns, _), o in sorted(self.objects.items()) if ns == namespace]
            return {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceServiceList",
                "metadata": {"resourceVersion": str(next(self._rv))},
                "items": items,
            }

    def patch(self, namespace: str, name: str, body: Any, content_type: str) -> dict[str, Any]:
        if content_type.split(";")[0].strip() != MERGE_PATCH:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json-patch+json, {MERGE_PATCH}, application/apply-patch+yaml",
            )
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        with self._lock:
            current = self._find(namespace, name)
            wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
            if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on inferenceservices.serving.kserve.io "
                    f'"{name}": the object has been modified; please apply your changes to the latest '
                    f"version and try again",
                )
            body = {k: v for k, v in body.items() if k != "status"}
            updated = merge_patch(current, body)
            meta = updated["metadata"]
            for fixed in ("name", "namespace", "uid", "generation", "creationTimestamp"):
                meta[fixed] = current["metadata"][fixed]
            if updated.get("spec") != current.get("spec"):
                meta["generation"] = current["metadata"]["generation"] + 1
            meta["resourceVersion"] = str(next(self._rv))
            self._validate(updated)
            self.patches.append(copy.deepcopy(body))
            self.objects[(namespace, name)] = updated
            if meta["generation"] != current["metadata"]["generation"]:
                self.spec_history[(namespace, name)].append(copy.deepcopy(updated["spec"]))
                self._schedule((namespace, name), meta["generation"])
            return copy.deepcopy(updated)

    def _find(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.objects[(namespace, name)]
        except KeyError:
            raise ApiError(
                404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found'
            ) from None

    def _validate(self, obj: dict[str, Any]) -> None:
        errors = sorted(self.validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            where = ".".join(str(p) for p in errors[0].absolute_path)
            raise ApiError(422, "Invalid", f"InferenceService is invalid: {where}: {errors[0].message}")

    # -- the simulated KServe controller -----------------------------------------------
    def _schedule(self, key: tuple[str, str], generation: int) -> None:
        heapq.heappush(self._due, (time.monotonic() + self.ready_delay_s, key[0], key[1], generation))
        self._wake.notify()

    def release(self) -> None:
        """Lift ``hold``: the controller reconciles what piled up."""
        self.hold.clear()
        with self._lock:
            self._wake.notify()

    def _reconcile_loop(self) -> None:
        with self._lock:
            while not self._stopped:
                now = time.monotonic()
                if not self._due or self.hold.is_set() or self._due[0][0] > now:
                    timeout = 0.05 if self.hold.is_set() or not self._due else self._due[0][0] - now
                    self._wake.wait(timeout)
                    continue
                _, namespace, name, generation = heapq.heappop(self._due)
                obj = self.objects.get((namespace, name))
                if obj is None or obj["metadata"]["generation"] != generation:
                    continue
                uri = obj["spec"]["predictor"]["model"].get("storageUri", "")
                failed = uri in self.fail_uris
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                condition = {
                    "type": "Ready",
                    "status": "False" if failed else "True",
                    "lastTransitionTime": stamp,
                }
                if failed:
                    condition.update(reason="RevisionFailed", message=f"model at {uri} failed to load")
                reconciled = copy.deepcopy(obj)
                reconciled["status"] = {
                    "observedGeneration": generation,
                    "conditions": [
                        {
                            "type": "PredictorReady",
                            "status": condition["status"],
                            "lastTransitionTime": stamp,
                        },
                        condition,
                    ],
                    "url": f"http://{name}.{namespace}.example.com",
                    "modelStatus": {
                        "transitionStatus": "BlockedByFailedLoad" if failed else "UpToDate",
                        "states": {
                            "activeModelState": "Loaded",
                            "targetModelState": "FailedToLoad" if failed else "Loaded",
                        },
                    },
                }
                reconciled["metadata"]["resourceVersion"] = str(next(self._rv))
                self._validate(reconciled)
                self.objects[(namespace, name)] = reconciled

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify()
        self._controller.join(5)

    def storage_uri(self, namespace: str, name: str) -> str:
        return str(self.get(namespace, name)["spec"]["predictor"]["model"]["storageUri"])

    def uri_changes(self, namespace: str, name: str) -> list[str]:
        """Every storageUri the object's spec held, one per generation that changed it."""
        uris = [
            str(spec["predictor"]["model"].get("storageUri")) for spec in self.spec_history[(namespace, name)]
        ]
        return [u for i, u in enumerate(uris) if i == 0 or u != uris[i - 1]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    api: KubeApi

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        content_type = self.headers.get("Content-Type", "")
        self.api.requests.append((method, path, content_type))
        try:
            match = PATH.match(path)
            if not match:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
            namespace, name = match.groups()
            body = json.loads(raw) if raw else None
            if method == "GET":
                result = self.api.get(namespace, name) if name else self.api.list_objects(namespace)
                code = 200
            elif method == "POST" and not name:
                result, code = self.api.create(namespace, body if isinstance(body, dict) else {}), 201
            elif method == "PATCH" and name:
                result, code = self.api.patch(namespace, name, body, content_type), 200
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        except ApiError as exc:
            self._send(
                exc.code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": exc.message,
                    "reason": exc.reason,
                    "code": exc.code,
                },
            )
            return
        except ValueError as exc:
            self._send(
                400,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": str(exc),
                    "reason": "BadRequest",
                    "code": 400,
                },
            )
            return
        self._send(code, result)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")


class KubeApiServer:
    """The HTTP server around :class:`KubeApi`, with a kubeconfig pointing at it."""

    def __init__(self, schema: dict[str, Any], ready_delay_s: float = 0.05) -> None:
        self.api = KubeApi(schema, ready_delay_s)
        handler = type("Handler", (_Handler,), {"api": self.api})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 256
        self._thread = threading.Thread(target=self._server.serve_forever, name="kube-api", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def write_kubeconfig(self, path: Path, contexts: Iterable[str]) -> Path:
        """One cluster (this server) reached through each named context."""
        names = list(contexts)
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "edge", "cluster": {"server": self.url}}],
            "users": [{"name": "edge-sync", "user": {"token": "test-token"}}],
            "contexts": [{"name": n, "context": {"cluster": "edge", "user": "edge-sync"}} for n in names],
            "current-context": names[0],
        }
        path.write_text(yaml.safe_dump(kubeconfig))
        return path

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.api.stop()


def main() -> None:
    """Run the server on its own (own process, own GIL) for the fleet benchmark."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="Written once the server listens.")
    parser.add_argument("--context", default="edge-cluster")
    parser.add_argument(
        "--ready-delay", type=float, default=0.05, help="Seconds until a generation is Ready."
    )
    args = parser.parse_args()
    server = KubeApiServer(load_schema(), ready_delay_s=args.ready_delay)
    server.write_kubeconfig(args.kubeconfig, [args.context])
    print(server.url, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
