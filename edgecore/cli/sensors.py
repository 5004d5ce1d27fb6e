"""``edgecore sensors generate | check``: machine telemetry for the anomaly use case, made or read in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from edgecore.cli.common import cli_errors, out
from edgecore.synthetic.telemetry import Telemetry

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
    from edgecore.synthetic.telemetry_csv import write_csv

    series = [make(f"machine-{i + 1}", hours, seed=seed * 1000 + i, faults=faults) for i in range(machines)]
    write_csv(series, out_file)
    _summary(series)


@app.command()
def check(path: Path = typer.Argument(..., help="A telemetry CSV export.")) -> None:
    """Read an export as the sensor pipeline would, and say per machine what it holds."""
    from edgecore.synthetic.telemetry_csv import read_csv

    with cli_errors():
        series = read_csv(path)
    _summary(series)


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
