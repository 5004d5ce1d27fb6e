"""``edgecore pipeline compile | upload | run``: the KFP training DAG."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgecore.cli.common import cli_errors, console, out, reporter
from foundation.errors import InvalidInput
from foundation.settings import Settings

app = typer.Typer(no_args_is_help=True)


@app.command("compile")
def compile_(
    output: Path = typer.Option(Path("training-pipeline.yaml"), "--out", help="Where to write the IR YAML."),
) -> None:
    """Compile the training pipeline to KFP IR YAML."""
    from pipelines.submit import compile_pipeline

    with cli_errors():
        path = compile_pipeline(output)
    out.print(str(path))


@app.command()
def upload(
    host: str = typer.Option(..., help="KFP API URL."),
    name: str = typer.Option("edgecore-training", help="Pipeline name in KFP."),
    version: str | None = typer.Option(None, help="Version name; default: a UTC timestamp."),
    package: Path = typer.Option(Path("training-pipeline.yaml"), help="Where to write the compiled IR."),
) -> None:
    """Compile the DAG and register it in KFP (a new pipeline version when the name exists)."""
    from pipelines.submit import upload as upload_pipeline

    stamp = version or datetime.now(UTC).strftime("v%Y%m%d-%H%M%S")
    with cli_errors():
        uploaded = upload_pipeline(host, Settings().kfp, package, name, stamp)
    out.print(f"{name} {stamp}: {uploaded}")


@app.command()
def run(
    local: bool = typer.Option(
        False, "--local", help="Run with kfp.local in subprocesses of this interpreter."
    ),
    host: str | None = typer.Option(None, help="KFP API URL to submit to with kfp.Client."),
    edge: list[str] | None = typer.Option(None, help="Edges to train a model for (repeatable)."),
    dataset: list[str] | None = typer.Option(
        None,
        help="Datasets: name (newest version), name@v000003 (that version), name@..v000003 "
        "(every version up to it; how an edge's shipped sets are trained on) or name@.. (every "
        "version). Repeatable. Default with --edge: each edge's whole dataset, <edge>@..",
    ),
    epochs: int | None = typer.Option(None, min=1, help="Most epochs (default: the pipeline's)."),
    seed: int | None = typer.Option(None, help="Seed (default: the pipeline's)."),
    min_accuracy: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Gate's floor (default: the pipeline's)."
    ),
    max_regression: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Largest allowed drop against production (default: the pipeline's)."
    ),
    max_class_drop: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Largest drop of one product's recall (default: the pipeline's)."
    ),
    pipeline_root: Path = typer.Option(Path("kfp-local"), help="Local artifact folder (--local)."),
    in_images: bool = typer.Option(
        False,
        "--in-images",
        help="--local: run each step inside its image with podman (`make images` first).",
    ),
    experiment: str = typer.Option("edgecore", help="KFP experiment (--host)."),
    run_name: str | None = typer.Option(None, help="KFP run name (--host); default: timestamped."),
    wait: bool = typer.Option(False, help="Wait for the submitted run to finish (--host)."),
    timeout: int = typer.Option(3600, help="Seconds to wait (--host --wait)."),
) -> None:
    """Run the pipeline locally (--local) or submit it to a KFP cluster (--host URL)."""
    if local == (host is not None):
        raise typer.BadParameter("give exactly one of --local or --host URL")
    if dataset is None and edge:
        dataset = [f"{name}@.." for name in edge]  # each edge's dataset, every version of it
    given = {
        "edges": edge,
        "datasets": dataset,
        "epochs": epochs,
        "seed": seed,
        "min_accuracy": min_accuracy,
        "max_regression": max_regression,
        "max_class_drop": max_class_drop,
    }
    arguments = {name: value for name, value in given.items() if value is not None}  # else: the pipeline's
    with cli_errors():
        if local:
            _run_local(pipeline_root, arguments, in_images)
            return
        assert host is not None
        submit_run(host, arguments, experiment, run_name, pipeline_root, wait, timeout)


def _run_local(pipeline_root: Path, arguments: dict[str, Any], in_images: bool = False) -> None:
    """Run the DAG with its (long) step output in a log file, then say what it decided per edge."""
    from edgecore.images.workshop import step_engine
    from edgecore.stack.settings import StackSettings
    from pipelines.results import evaluations, published_versions
    from pipelines.submit import run_local

    engine = step_engine(StackSettings(), reporter()) if in_images else None
    log = pipeline_root / "run.log"
    where = "each step in its image" if in_images else "in subprocesses"
    console.print(f"[cyan]•[/cyan] running the training pipeline locally, {where}; step output in {log}")
    try:
        with output_to(log):  # a spinner would go to the log too: the console writes to fd 2
            result = run_local(pipeline_root, arguments, engine=engine)
    except RuntimeError as exc:
        raise pipeline_failed(exc, log) from exc
    table = Table("edge", "test accuracy", "quality gate", "published", title="training run")
    published = published_versions(result.pipeline_root)
    for edge, evaluation in sorted(evaluations(result.pipeline_root).items()):
        verdict = "passed" if evaluation.passed else "failed: " + "; ".join(evaluation.reasons)
        table.add_row(edge, f"{evaluation.accuracy:.1%}", verdict, published.get(edge, "-"))
    out.print(table)
    console.print(
        f"wall {result.wall_s:.1f} s, steps' own compute {result.compute_s:.1f} s, root {pipeline_root}"
    )


def pipeline_failed(exc: RuntimeError, log: Path) -> InvalidInput:
    """kfp.local's report of a failed task, in one plain line (it colours its words for a terminal)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    return InvalidInput(f"pipeline failed: {plain} (step output in {log})")


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """This process's and its children's stdout and stderr into ``path`` (the steps print a lot).

    Both the file descriptors (the steps' subprocesses) and ``sys.stdout``/``sys.stderr`` (kfp's
    own log lines, and a notebook kernel, whose streams are not the descriptors) are redirected.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with redirect_stdout(log), redirect_stderr(log):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def submit_run(
    host: str,
    arguments: dict[str, Any],
    experiment: str,
    run_name: str | None,
    pipeline_root: Path,
    wait: bool,
    timeout: int,
    pipeline: Any = None,
) -> None:
    """Submit a DAG (the product one unless ``pipeline`` names another); print the run, exit 1 on failure."""
    from pipelines.submit import submit
    from pipelines.training import training_pipeline

    pipeline = pipeline or training_pipeline
    name = run_name or f"{pipeline.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    run_id, state = submit(
        host,
        Settings().kfp,
        arguments,
        experiment,
        name,
        pipeline_root / f"{pipeline.name}.yaml",
        wait,
        timeout,
        pipeline,
    )
    out.print(json.dumps({"run_id": run_id, "run_name": name, "state": state}))
    if state is not None and state.upper() not in {"SUCCEEDED", "RUNTIMESTATE.SUCCEEDED"}:
        raise typer.Exit(1)
