"""Launchers the listener starts training runs with, each idempotent per run key.

* :class:`DryRunLauncher` writes the run request as a JSON file (an external scheduler,
  or an operator, picks it up); the tests assert on these files.
* :class:`LocalLauncher` runs the pipeline with ``kfp.local`` (``pipelines.submit.run_local``)
  in a background thread of the listener, one pipeline root per run key.
* :class:`KfpLauncher` submits to a Kubeflow Pipelines cluster with ``kfp.Client``; the run
  is named after the run key and an existing run of that name is returned instead.

A crash between starting a run and recording it in the ledger makes the listener
relaunch the same key: each launcher finds the run it already started by that key.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from foundation.settings import KfpSettings
from pipelines.kfp_client import connect, kfp_errors
from pipelines.runs import RunRequest

log = logging.getLogger(__name__)


def _write_atomically(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        json.dump(body, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class DryRunLauncher:
    """Writes ``<run_key>.json`` (run id, pipeline arguments, datasets) and starts nothing."""

    def __init__(self, directory: Path, extra_datasets: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.extra_datasets = extra_datasets
        directory.mkdir(parents=True, exist_ok=True)

    def launch(self, request: RunRequest) -> str:
        from pipelines.submit import pipeline_for

        path = self.directory / f"{request.run_key}.json"
        if path.exists():
            return str(json.loads(path.read_text())["run_id"])
        run_id = f"dry-run-{request.run_key}"
        _write_atomically(
            path,
            {
                "run_id": run_id,
                "run_key": request.run_key,
                "pipeline": pipeline_for(request.use_case).name,
                "arguments": request.parameters(self.extra_datasets),
                "datasets": [asdict(d) for d in request.datasets],
                "requested": time.time(),
            },
        )
        return run_id

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.directory.glob("*.json"))]


class LocalLauncher:
    """``kfp.local`` runs, one at a time, in a background thread; the marker makes it idempotent.

    The marker is written before the run starts, so a crash in between leaves at most
    one run per key (never two); the run's outcome is written next to it.
    """

    def __init__(self, root: Path, extra_datasets: tuple[str, ...] = (), **arguments: Any) -> None:
        self.root = root
        self.extra_datasets = extra_datasets
        self.arguments = arguments
        self._lock = threading.Lock()  # kfp.local keeps global state: one run at a time

    def launch(self, request: RunRequest) -> str:
        run_root = self.root / request.run_key
        marker = run_root / "launched.json"
        if marker.exists():
            return str(json.loads(marker.read_text())["run_id"])
        run_root.mkdir(parents=True, exist_ok=True)
        from pipelines.submit import arguments_for, pipeline_for

        pipeline = pipeline_for(request.use_case)
        arguments = arguments_for(pipeline, {**self.arguments, **request.parameters(self.extra_datasets)})
        run_id = f"local-{request.run_key}"
        record = {"run_id": run_id, "pipeline": pipeline.name, "arguments": arguments, "started": time.time()}
        _write_atomically(marker, record)
        thread = threading.Thread(
            target=self._run, args=(run_root, pipeline, arguments), name=run_id, daemon=True
        )
        thread.start()
        return run_id

    def _run(self, run_root: Path, pipeline: Any, arguments: dict[str, Any]) -> None:
        from pipelines.submit import run_local

        with self._lock:
            try:
                run = run_local(run_root / "pipeline-root", arguments, pipeline)
                outcome: dict[str, Any] = {"state": "SUCCEEDED", "wall_s": run.wall_s, "steps": run.steps}
            except Exception as exc:  # recorded for the operator, the listener goes on
                log.exception("local run in %s failed", run_root)
                outcome = {"state": "FAILED", "error": f"{type(exc).__name__}: {exc}"}
        _write_atomically(run_root / "outcome.json", outcome)


class KfpLauncher:
    """Submits to a KFP cluster; a run named after the key is found again instead of resubmitted."""

    def __init__(
        self,
        host: str,
        kfp: KfpSettings,
        experiment: str,
        package: Path,
        extra_datasets: tuple[str, ...] = (),
        **arguments: Any,
    ) -> None:
        self.host = host
        self.kfp = kfp
        self.experiment = experiment
        self.package = package
        self.extra_datasets = extra_datasets
        self.arguments = arguments

    def launch(self, request: RunRequest) -> str:
        from pipelines.submit import arguments_for, pipeline_for, submit

        name_filter = {
            "predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": request.run_key}]
        }
        with kfp_errors(self.host):
            client = connect(self.host, self.kfp)
            found = client.list_runs(
                filter=json.dumps(name_filter), page_size=1, namespace=self.kfp.namespace
            )
        existing = found.runs or []
        if existing:
            return str(existing[0].run_id)
        pipeline = pipeline_for(request.use_case)
        arguments = arguments_for(pipeline, {**self.arguments, **request.parameters(self.extra_datasets)})
        package = self.package.with_name(f"{pipeline.name}.yaml")
        run_id, _ = submit(
            self.host, self.kfp, arguments, self.experiment, request.run_key, package, pipeline=pipeline
        )
        return run_id
