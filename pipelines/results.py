"""What a local run left in its pipeline root, per edge: evaluations, step timings, versions.

``kfp.local`` writes every task's outputs under ``<root>/<run>/<for-loop iteration>/<task>/``
and names the iteration by its index, not by the edge it ran for.  The edge is read back
from the ingest step's own output metadata in the same iteration, so a notebook or a
benchmark can say "boutique: 94 %" without knowing in which order the loop ran.
Use one pipeline root per run: every run below ``root`` is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.evaluate import Evaluation
from components.sensor_steps import EVALUATION_FILE, SensorEvaluation

EXECUTOR_OUTPUT = "executor_output.json"


def _metadata(task_dir: Path, output: str) -> dict[str, Any]:
    """The metadata of one output artifact of a task, {} when the task did not run."""
    path = task_dir / EXECUTOR_OUTPUT
    if not path.is_file():
        return {}
    artifacts = json.loads(path.read_text()).get("artifacts", {}).get(output, {}).get("artifacts", [])
    return dict(artifacts[0].get("metadata", {})) if artifacts else {}


def iteration_edges(pipeline_root: Path) -> dict[Path, str]:
    """Each loop iteration's folder and the edge it trained for."""
    found: dict[Path, str] = {}
    for ingest in sorted(pipeline_root.rglob("*ingest-op")):  # ingest-op, sensor-ingest-op
        edge = _metadata(ingest, "snapshot").get("edge")
        if isinstance(edge, str):
            found[ingest.parent] = edge
    return found


def evaluations(pipeline_root: Path) -> dict[str, Evaluation]:
    """Each edge's evaluation (accuracy, per-class precision/recall, confusion matrix)."""
    found: dict[str, Evaluation] = {}
    for iteration, edge in iteration_edges(pipeline_root).items():
        path = iteration / "evaluate-op" / "evaluation"
        if path.is_file():
            found[edge] = Evaluation.load(path)
    return found


def sensor_evaluations(pipeline_root: Path) -> dict[str, SensorEvaluation]:
    """Each edge's sensor model evaluation (thresholds, precision and recall, the gate's verdict)."""
    found: dict[str, SensorEvaluation] = {}
    for iteration, edge in iteration_edges(pipeline_root).items():
        path = iteration / "sensor-evaluate-op" / "evaluation" / EVALUATION_FILE
        if path.is_file():
            found[edge] = SensorEvaluation.load(path)
    return found


def edge_timings(pipeline_root: Path) -> dict[str, dict[str, float]]:
    """Each edge's steps and their own compute seconds, in the DAG's order of execution."""
    found: dict[str, dict[str, float]] = {}
    for iteration, edge in iteration_edges(pipeline_root).items():
        steps: list[tuple[float, str, float]] = []
        for output in iteration.glob(f"*/{EXECUTOR_OUTPUT}"):
            data = json.loads(output.read_text())
            for artifacts in data.get("artifacts", {}).values():
                for artifact in artifacts.get("artifacts", []):
                    if "compute_s" in artifact.get("metadata", {}):
                        task = output.parent.name.removesuffix("-op")
                        steps.append((output.stat().st_mtime, task, float(artifact["metadata"]["compute_s"])))
        found[edge] = {task: seconds for _, task, seconds in sorted(steps)}
    return found


def published_versions(pipeline_root: Path) -> dict[str, str]:
    """The registry version each edge's publish step claimed; an edge stopped by the gate is absent."""
    found: dict[str, str] = {}
    for iteration, edge in iteration_edges(pipeline_root).items():
        version = _metadata(iteration / "publish-op", "registration").get("version")
        if isinstance(version, str) and version:
            found[edge] = version
    return found
