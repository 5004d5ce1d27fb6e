"""``edgecore sensors generate | check | upload | train | rollback | unpin``: machine telemetry for the
anomaly use case, made or read in, stored as an edge's telemetry dataset and trained on by the sensor
pipeline; at a store, the sensor model its gateway scores with rolled back and pinned, or let go."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer
from rich.table import Table

from edgecore.cli.common import cli_errors, console, out
from edgecore.cli.pipeline import output_to, pipeline_failed, submit_run
from foundation.settings import Settings
from foundation.telemetry import Telemetry

if TYPE_CHECKING:
    from foundation.layout import Layout
    from foundation.storage.store import ObjectStore

app = typer.Typer(no_args_is_help=True)


@app.command()
def generate(
    out_file: Path = typer.Option(
        ..., "--out", help="CSV to write (time, machine, a column per sensor, label)."
    ),
    machines: int = typer.Option(3, min=1, max=100, help="Machines, named machine-1, machine-2, …"),
    hours: float = typer.Option(48.0, min=1.0, max=24 * 365.0, help="Hours of readings per machine."),
    faults: int = typer.Option(5, min=0, max=100, help="Faults injected per machine, in its second half."),
    seed: int = typer.Option(0, help="The same seed gives the same readings."),
) -> None:
    """Telemetry with duty cycles, a daily pattern, drift, missing readings and labelled faults."""
    from edgecore.synthetic.telemetry import generate as make
    from foundation.telemetry import write_csv

    series = [make(f"machine-{i + 1}", hours, seed=seed * 1000 + i, faults=faults) for i in range(machines)]
    write_csv(series, out_file)
    _summary(series)


@app.command()
def check(path: Path = typer.Argument(..., help="A telemetry export: CSV, or Parquet (.parquet).")) -> None:
    """Read an export as the sensor pipeline would, and say per machine what it holds."""
    from foundation.telemetry import read_telemetry

    with cli_errors():
        series = read_telemetry(path)
    _summary(series)


@app.command()
def upload(
    edge: str = typer.Option(..., help="The edge (store, plant) whose machines these are."),
    path: Path = typer.Argument(..., help="A telemetry export, CSV or Parquet."),
) -> None:
    """Store an export as the next version of the edge's telemetry dataset, <edge>-telemetry."""
    from edgecore.telemetry_upload import upload_telemetry
    from foundation.layout import Layout
    from foundation.storage.store import ObjectStore

    with cli_errors():
        settings = Settings()
        manifest = upload_telemetry(ObjectStore(settings.s3), Layout(settings.buckets), path, edge)
    meta = manifest.metadata
    out.print(
        f"{manifest.name} {manifest.version}: {len(meta['machines'])} machine(s), "
        f"{meta['readings']} readings, {meta['fault_readings']} labelled as faults"
    )


@app.command()
def rollback(edge: str = typer.Option(..., help="The edge whose gateway goes back.")) -> None:
    """At the store: score with the sensor model version before, pinned there until `sensors unpin`.

    The version left is never taken up again. Run it with the site's settings (its own storage)."""
    from serving.sensor_sync import roll_back

    with cli_errors():
        pointer = roll_back(*_site_storage(), edge)
    out.print(
        f"{edge}: the gateway scores with {pointer.model} {pointer.version}, pinned"
        f" ({pointer.rejected_version} is not taken up again)"
    )


@app.command()
def unpin(edge: str = typer.Option(..., help="The edge whose gateway follows new versions again.")) -> None:
    """At the store: follow new versions of the edge's sensor model again (the next one published)."""
    from serving.sensor_sync import unpin as un_pin

    with cli_errors():
        pointer = un_pin(*_site_storage(), edge)
    out.print(f"{edge}: the gateway follows new versions of {pointer.model} again")


@app.command()
def train(
    edge: list[str] = typer.Option(..., help="Edges to train a sensor model for (repeatable)."),
    dataset: list[str] | None = typer.Option(
        None,
        help="Telemetry datasets (as `pipeline run` takes them). Default: each edge's <edge>-telemetry@..",
    ),
    local: bool = typer.Option(
        False, "--local", help="Run with kfp.local in subprocesses of this interpreter."
    ),
    host: str | None = typer.Option(None, help="KFP API URL to submit to with kfp.Client."),
    epochs: int | None = typer.Option(None, min=1, help="Epochs (default: the pipeline's)."),
    seed: int | None = typer.Option(None, help="Seed (default: the pipeline's)."),
    pipeline_root: Path = typer.Option(Path("kfp-local-sensors"), help="Local artifact folder (--local)."),
    experiment: str = typer.Option("edgecore", help="KFP experiment (--host)."),
    wait: bool = typer.Option(False, help="Wait for the submitted run to finish (--host)."),
) -> None:
    """The sensor pipeline: ingest → prepare → train → evaluate (gate) → export → publish <edge>-sensors."""
    from foundation.layout import telemetry_dataset
    from pipelines.anomaly import anomaly_pipeline

    if local == (host is not None):
        raise typer.BadParameter("give exactly one of --local or --host URL")
    given = {
        "edges": edge,
        "datasets": dataset or [f"{telemetry_dataset(name)}@.." for name in edge],
        "epochs": epochs,
        "seed": seed,
    }
    arguments = {name: value for name, value in given.items() if value is not None}
    with cli_errors():
        if host is not None:
            submit_run(host, arguments, experiment, None, pipeline_root, wait, 3600, anomaly_pipeline)
            return
        _train_locally(pipeline_root, arguments)


def _site_storage() -> tuple[ObjectStore, Layout]:
    from foundation.layout import Layout
    from foundation.storage.store import ObjectStore

    settings = Settings()
    return ObjectStore(settings.s3), Layout(settings.buckets)


def _train_locally(pipeline_root: Path, arguments: dict[str, Any]) -> None:
    from pipelines.anomaly import anomaly_pipeline
    from pipelines.results import published_versions, sensor_evaluations
    from pipelines.submit import run_local

    log = pipeline_root / "run.log"
    console.print(f"[cyan]•[/cyan] running the sensor pipeline locally; step output in {log}")
    try:
        with output_to(log):
            result = run_local(pipeline_root, arguments, anomaly_pipeline)
    except RuntimeError as exc:
        raise pipeline_failed(exc, log) from exc
    table = Table(
        "edge", "precision", "recall", "false alarms", "quality gate", "published", title="sensor run"
    )
    published = published_versions(result.pipeline_root)
    for edge, evaluation in sorted(sensor_evaluations(result.pipeline_root).items()):
        verdict = "passed" if evaluation.passed else "failed: " + "; ".join(evaluation.reasons)
        precision, recall = evaluation.precision, evaluation.recall
        table.add_row(
            edge,
            "-" if precision is None else f"{precision:.3f}",
            "-" if recall is None else f"{recall:.3f}",
            f"{evaluation.false_alarm_rate:.3%}",
            verdict,
            published.get(edge, "-"),
        )
    out.print(table)
    console.print(f"wall {result.wall_s:.1f} s, root {pipeline_root}")


def _summary(series: list[Telemetry]) -> None:
    table = Table("machine", "readings", "every s", "missing", "fault readings")
    for one in series:
        missing = float(np.isnan(one.values).mean())
        table.add_row(
            one.machine,
            str(len(one.values)),
            f"{one.period_s:g}",
            f"{missing:.2%}",
            str(int((one.labels > 0).sum())),
        )
    out.print(table)
