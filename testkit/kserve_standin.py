"""KServe's controller and predictor pods, stood in for: the one piece nothing here can run.

KServe's controller needs a cluster with a container runtime; these machines have the
real API server and nothing that runs pods.  This stand-in watches InferenceServices
through that API server (as its admin) and acts out a RawDeployment rollout the way
KServe reports one, including its two reported quirks:

* ``status.observedGeneration`` is the child Deployment's own counter, which does not
  follow the InferenceService's ``metadata.generation`` (kserve#6081): here the
  Deployment's spec changes twice per new storage URI (template, then its annotations);
* as soon as the spec changes, a status with the new ``observedGeneration`` and ``Ready``
  as it stood: while new pods start, ``Ready`` stays True from before and the address
  keeps answering for the old version (kserve#4626);

and serves ``status.address.url``: the Open Inference Protocol's ready and versioned infer
routes of the version its "pods" have loaded, as the edge predictor (``serving/v2.py``)
answers them (an inference answers with the version, not a prediction), and its /metrics
with the counters a test sets through ``traffic`` (new pods start from zero).
A storage URI in ``fail_uris`` never loads: ``Ready`` turns False with the reason KServe
gives, and the old version keeps answering.  While ``hold`` is set no new pods come up.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from foundation.layout import VERSION_RE

GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
WRITERS = 8
READY_ROUTE = re.compile(r"^/([a-z0-9-]+)/([a-z0-9-]+)/v2/models/([^/]+)(?:/versions/([^/]+))?/ready$")
INFER_ROUTE = re.compile(r"^/([a-z0-9-]+)/([a-z0-9-]+)/v2/models/([^/]+)/versions/([^/]+)/infer$")
METRICS_ROUTE = re.compile(r"^/([a-z0-9-]+)/([a-z0-9-]+)/metrics$")
COUNTERS = ("edgecore_predictions", "edgecore_unrecognized", "edgecore_inference_errors")


def version_of(uri: str) -> str | None:
    return next((p for p in reversed(uri.rstrip("/").split("/")) if VERSION_RE.match(p)), None)


@dataclass
class _Pods:
    """One InferenceService's predictor Deployment, as far as its status shows it."""

    serving: str | None = None
    """The storage URI the ready pods have loaded."""
    deployment_generation: int = 0
    wanted: str | None = None
    history: list[tuple[str, int | None]] = field(default_factory=list)
    """Every (storageUri, canaryTrafficPercent) the InferenceService asked for, in order."""
    conditions: list[dict[str, str]] = field(default_factory=list)
    """What the last status written said (a new rollout's first status keeps it)."""
    writes: int = 0
    """Changes to metadata or spec seen (every write but KServe's own status writes)."""
    seen: tuple[str, str] = ("", "")
    annotations: dict[str, str] = field(default_factory=dict)
    resource_version: int = 0
    counters: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """Predictions, unsure predictions and failed requests of the pods serving now (new pods: zero)."""


class KServeStandIn:
    def __init__(self, api: client.ApiClient, namespace: str, ready_delay_s: float = 0.05) -> None:
        self._crd = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.ready_delay_s = ready_delay_s
        self.fail_uris: set[str] = set()
        self.hold = threading.Event()
        self._pods: dict[str, _Pods] = {}
        self._due: list[tuple[float, int, str, str, bool]] = []
        """(when, order, name, storage URI, pods up?) of each status to write."""
        self._order = itertools.count()
        self._writing: dict[str, threading.Lock] = {}
        self._lock = threading.Condition()
        self._stopped = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._threads = [
            threading.Thread(target=self._http.serve_forever, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
            threading.Thread(target=self._roll_out, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def address_base(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    # -- what the tests read ------------------------------------------------------------------
    def history(self, name: str) -> list[tuple[str, int | None]]:
        self.caught_up(name)
        with self._lock:
            return list(self._pods.get(name, _Pods()).history)

    def writes(self, name: str) -> int:
        self.caught_up(name)
        with self._lock:
            return self._pods.get(name, _Pods()).writes

    def annotations(self) -> dict[str, dict[str, str]]:
        """Every InferenceService's annotations as the watch last saw them (no request to the API)."""
        with self._lock:
            return {name: dict(pods.annotations) for name, pods in self._pods.items()}

    def serving(self, name: str) -> str | None:
        with self._lock:
            return self._pods.get(name, _Pods()).serving

    def caught_up(self, name: str, timeout_s: float = 30.0) -> None:
        """Wait until the watch has seen the object as the API server has it now."""
        current = int(
            self._crd.get_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, name)[
                "metadata"
            ]["resourceVersion"]
        )
        with self._lock:
            if not self._lock.wait_for(
                lambda: self._pods.get(name, _Pods()).resource_version >= current, timeout_s
            ):
                raise AssertionError(f"the watch did not see {name} at resourceVersion {current}")

    # -- watching ------------------------------------------------------------------------------
    def _watch(self) -> None:
        resource_version = ""
        while not self._stopped.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self._crd.list_namespaced_custom_object,
                    GROUP,
                    API_VERSION,
                    self.namespace,
                    PLURAL,
                    resource_version=resource_version,
                    timeout_seconds=5,
                ):
                    obj = event["object"]
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._seen(obj)
            except ApiException as exc:
                if exc.status == 410:  # expired: list afresh
                    resource_version = ""
                    continue
                time.sleep(0.2)
            except Exception:  # the connection broke: watch again from where it was
                time.sleep(0.2)

    def _seen(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        predictor = obj["spec"]["predictor"]
        uri = predictor.get("model", {}).get("storageUri", "")
        shown = (json.dumps(obj["metadata"].get("annotations") or {}, sort_keys=True), json.dumps(predictor))
        with self._lock:
            pods = self._pods.setdefault(name, _Pods())
            pods.resource_version = int(obj["metadata"]["resourceVersion"])
            if shown != pods.seen:
                pods.writes += 1 if pods.seen != ("", "") else 0
                pods.seen = shown
                pods.annotations = dict(obj["metadata"].get("annotations") or {})
            asked = (uri, predictor.get("canaryTrafficPercent"))
            if not pods.history or pods.history[-1] != asked:
                pods.history.append(asked)
            if uri != pods.wanted:
                first = pods.wanted is None
                pods.wanted = uri
                pods.deployment_generation += 2  # the template, then its annotations (kserve#6081)
                now = time.monotonic()
                if not first:  # the Deployment is progressing: Ready as it stood (kserve#4626)
                    heapq.heappush(self._due, (now, next(self._order), name, uri, False))
                heapq.heappush(self._due, (now + self.ready_delay_s, next(self._order), name, uri, True))
            self._lock.notify_all()

    # -- rolling out ---------------------------------------------------------------------------
    def _roll_out(self) -> None:
        """Bring up each due URI's pods; status writes go through a pool, as KServe's workers do."""
        with ThreadPoolExecutor(WRITERS) as pool:
            while not self._stopped.is_set():
                with self._lock:
                    self._lock.wait_for(lambda: self._stopped.is_set() or self._ready_now(), 0.5)
                    if not self._ready_now():
                        continue
                    _, _, name, uri, up = heapq.heappop(self._due)
                pool.submit(self._write_status, name, uri, up)

    def _write_status(self, name: str, uri: str, up: bool) -> None:
        with self._writing.setdefault(name, threading.Lock()):  # one object's writes stay in order
            with self._lock:
                pods = self._pods[name]
                if uri != pods.wanted:
                    return  # superseded before its pods came up
                if up:
                    failed = uri in self.fail_uris
                    if not failed:
                        if pods.serving != uri:
                            pods.counters = [0.0, 0.0, 0.0]
                        pods.serving = uri
                    pods.conditions = self._conditions(pods, failed)
                status = self._status(name, pods, up)
            with contextlib.suppress(ApiException):  # deleted meanwhile
                self._crd.patch_namespaced_custom_object_status(
                    GROUP, API_VERSION, self.namespace, PLURAL, name, {"status": status}
                )

    def _ready_now(self) -> bool:
        """The next status is due (while ``hold`` is set, only a rollout's first, progressing one)."""
        if not self._due or self._due[0][0] > time.monotonic():
            return False
        return not (self.hold.is_set() and self._due[0][4])

    def _conditions(self, pods: _Pods, failed: bool) -> list[dict[str, str]]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": now}
        if failed:
            why = f"failed to load {pods.wanted}"
            ready = {**ready, "status": "False", "reason": "ModelLoadFailed", "message": why}
        return [{**ready, "type": "PredictorReady"}, ready]

    def _status(self, name: str, pods: _Pods, up: bool) -> dict[str, Any]:
        failed = any(c["status"] == "False" for c in pods.conditions)
        model_status: dict[str, Any] = {"transitionStatus": "UpToDate" if up else "InProgress"}
        if up and failed:
            ready = pods.conditions[-1]
            failure = {
                "reason": ready["reason"],
                "message": ready["message"],
                "time": ready["lastTransitionTime"],
            }
            model_status = {"transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": failure}
        return {
            "observedGeneration": pods.deployment_generation,
            "deploymentMode": "RawDeployment",
            "address": {"url": f"{self.address_base}/{self.namespace}/{name}"},
            "conditions": pods.conditions,
            "modelStatus": model_status,
        }

    # -- the pods' ready routes ----------------------------------------------------------------
    def answers_ready(self, namespace: str, name: str, model: str, version: str | None) -> bool:
        with self._lock:
            serving = self._pods.get(name, _Pods()).serving if namespace == self.namespace else None
        if serving is None or model != name:
            return False
        return version is None or version_of(serving) == version

    def traffic(self, name: str, predictions: int, unsure: int = 0, errors: int = 0) -> None:
        """The pods serving ``name`` answer this many more requests (what its /metrics counts)."""
        with self._lock:
            counters = self._pods[name].counters
            for i, n in enumerate((predictions, unsure, errors)):
                counters[i] += n

    def metrics(self, namespace: str, name: str) -> bytes | None:
        """The Prometheus page of the predictor's pods, as the edge predictor exports it."""
        with self._lock:
            pods = self._pods.get(name) if namespace == self.namespace else None
            if pods is None or pods.serving is None:
                return None
            counters = list(pods.counters)
        lines = []
        for series, value in zip(COUNTERS, counters, strict=True):
            lines += [f"# TYPE {series}_total counter", f'{series}_total{{model="{name}"}} {value}']
        return ("\n".join(lines) + "\n").encode()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            self._lock.notify_all()
        self._http.shutdown()
        self._http.server_close()


def _handler(standin: KServeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as KServe's server (uvicorn) answers

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            scrape = METRICS_ROUTE.match(self.path)
            if scrape is not None:
                page = standin.metrics(*scrape.groups())
                self._answer(404, b"") if page is None else self._answer(200, page)
                return
            match = READY_ROUTE.match(self.path)
            ok = bool(match) and standin.answers_ready(*match.groups())  # type: ignore[union-attr]
            self._answer(200 if ok else 404, b"")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            match = INFER_ROUTE.match(self.path)
            if match is None or not standin.answers_ready(*match.groups()):
                self._answer(404, b"")
                return
            _, _, model, version = match.groups()
            outputs = [{"name": "label", "datatype": "BYTES", "shape": [1], "data": ["?"]}]
            body = {"model_name": model, "model_version": version, "outputs": outputs}
            self._answer(200, json.dumps(body).encode())

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
