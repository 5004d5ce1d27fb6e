"""Compile a training DAG (products, or sensors: ``pipelines.anomaly``), run it locally with
``kfp.local``, or submit it to a KFP cluster.

``run_local`` executes every component as a subprocess of this interpreter
(``SubprocessRunner(use_venv=False)``), or in its image (``step_containers``): the same
wrapper code a cluster runs in the training image, against whatever S3 and Kafka the
environment's ``EDGECORE_*`` settings name.  The Kubernetes platform config (secret and
config-map env) only means something on a cluster; locally the components take this
process's environment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import compiler, local

from foundation.errors import InvalidInput
from foundation.settings import KfpSettings
from pipelines.kfp_client import connect, kfp_errors
from pipelines.step_containers import ContainerEngine, steps_in_images
from pipelines.training import training_pipeline


@dataclass
class LocalRun:
    wall_s: float
    pipeline_root: Path
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def compute_s(self) -> float:
        return sum(float(step["compute_s"]) for step in self.steps)


def pipeline_for(use_case: str) -> Any:
    """The DAG that trains a use case's models (``foundation.layout.dataset_use_case``)."""
    from pipelines.anomaly import anomaly_pipeline

    pipelines = {"products": training_pipeline, "sensors": anomaly_pipeline}
    if use_case not in pipelines:
        raise InvalidInput(f"no pipeline trains use case {use_case!r}: one of {', '.join(pipelines)}")
    return pipelines[use_case]


def arguments_for(pipeline: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """Those of ``arguments`` that ``pipeline`` takes (a launcher's defaults name every pipeline's)."""
    inputs = set(pipeline.component_spec.inputs or {})
    return {name: value for name, value in arguments.items() if name in inputs}


def compile_pipeline(out: Path, pipeline: Any = training_pipeline) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(out))
    return out


def step_timings(pipeline_root: Path) -> list[dict[str, Any]]:
    """Each executed task's own wall and CPU time, read from its output artifacts' metadata."""
    steps: list[dict[str, Any]] = []
    for output in sorted(pipeline_root.rglob("executor_output.json")):
        data = json.loads(output.read_text())
        for name, artifacts in data.get("artifacts", {}).items():
            for artifact in artifacts.get("artifacts", []):
                meta = artifact.get("metadata", {})
                if "compute_s" in meta:
                    steps.append(
                        {
                            "task": output.parent.name,
                            "branch": output.parent.parent.name,
                            "output": name,
                            "compute_s": meta["compute_s"],
                            "cpu_s": meta.get("cpu_s", 0.0),
                            "process_cpu_s": meta.get("process_cpu_s", 0.0),
                        }
                    )
    return steps


@contextmanager
def _failing_fast(pipeline: Any, backoff_s: int = 1) -> Iterator[None]:
    """A run on this machine retries its I/O steps after ``backoff_s``, not the cluster's 30 s: its services
    are local, and a mistake no retry mends (a dataset name mistyped) should show in seconds, not minutes.
    The DAG is built once, at import, so its retry policies are shortened for the run and put back after."""
    changed = []
    for component in pipeline.pipeline_spec.components.values():
        for task in component.dag.tasks.values():
            if task.retry_policy.max_retry_count:
                changed.append((task.retry_policy, task.retry_policy.backoff_duration.seconds))
                task.retry_policy.backoff_duration.seconds = backoff_s
    try:
        yield
    finally:
        for policy, seconds in changed:
            policy.backoff_duration.seconds = seconds


def run_local(
    pipeline_root: Path,
    arguments: dict[str, Any],
    pipeline: Any = training_pipeline,
    engine: ContainerEngine | None = None,
) -> LocalRun:
    """Run the whole DAG (the product one unless ``pipeline`` names another) in subprocesses of this
    interpreter, or each step in its image when an ``engine`` is given; raise if a task fails."""
    pipeline_root = pipeline_root.absolute()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        runner: Any = local.SubprocessRunner(use_venv=False)
        if engine is not None:
            runner = stack.enter_context(steps_in_images(engine))
        local.init(runner=runner, pipeline_root=str(pipeline_root), raise_on_error=True)
        started = time.perf_counter()
        with _failing_fast(pipeline):
            pipeline(**arguments)
        wall = time.perf_counter() - started
    return LocalRun(wall, pipeline_root, step_timings(pipeline_root))


def submit(
    host: str,
    kfp: KfpSettings,
    arguments: dict[str, Any],
    experiment: str,
    run_name: str,
    package: Path,
    wait: bool = False,
    timeout_s: int = 3600,
    pipeline: Any = training_pipeline,
) -> tuple[str, str | None]:
    """Submit the compiled package with ``kfp.Client``; return the run id and, if waited for, its state."""
    compile_pipeline(package, pipeline)
    with kfp_errors(host):
        client = connect(host, kfp)
        run = client.create_run_from_pipeline_package(
            str(package),
            arguments=arguments,
            run_name=run_name,
            experiment_name=experiment,
            namespace=kfp.namespace,
        )
        if not wait:
            return run.run_id, None
        finished = client.wait_for_run_completion(run.run_id, timeout=timeout_s)
    return run.run_id, str(finished.state)


def upload(host: str, kfp: KfpSettings, package: Path, name: str, version: str) -> str:
    """Compile and register the DAG in KFP as ``name`` (a new version if it exists); return its id."""
    compile_pipeline(package)
    with kfp_errors(host):
        client = connect(host, kfp)
        existing = client.get_pipeline_id(name)
        if existing is None:
            return str(client.upload_pipeline(str(package), pipeline_name=name).pipeline_id)
        uploaded = client.upload_pipeline_version(
            str(package), pipeline_version_name=version, pipeline_id=existing
        )
    return str(uploaded.pipeline_version_id)
