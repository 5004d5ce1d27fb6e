"""``edgecore edges``: the model delivery controllers of the fleet's edges."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from edgecore.cli.common import cli_errors, console, out, service_logging
from foundation.settings import Settings

if TYPE_CHECKING:
    from edge_sync.delivery.controller import EdgeStatus
    from edge_sync.delivery.waves import WaveRow

app = typer.Typer(no_args_is_help=True, add_completion=False)

FleetOption = typer.Option(None, "--fleet", help="Fleet file (JSON list of edges and targets).")
EdgeOption = typer.Option(None, "--edge", "-e", help="Only this edge (repeatable).")


def _settings(fleet: Path | None) -> Settings:
    return Settings().updated(delivery={"fleet_file": fleet}) if fleet else Settings()


def _ago(when: datetime | None) -> str:
    if when is None:
        return "-"
    seconds = (datetime.now(UTC) - when).total_seconds()
    return f"{when:%Y-%m-%d %H:%M:%S} ({_duration(seconds)} ago)"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command()
def status(fleet: Path | None = FleetOption, edge: list[str] | None = EdgeOption) -> None:
    """A table of each edge's target, serving and previous version, last sync and lag."""
    from edge_sync.delivery.service import fleet_status, select

    settings = _settings(fleet)
    with cli_errors():
        rows, waves = fleet_status(settings, select(settings, edge or []))
    _print_status(rows)
    if waves:
        _print_waves(waves)


@app.command()
def rollback(
    edge: list[str] = typer.Option(..., "--edge", "-e", help="Edge to roll back (repeatable)."),
    fleet: Path | None = FleetOption,
) -> None:
    """Put edges back on their previous version and pin them there until `edges unpin`.

    The version they leave is never synced again; a pinned edge is shown as pinned, not as
    lagging, and no newer version reaches it until it is unpinned.
    """
    from edge_sync.delivery.service import rollback as roll_back
    from edge_sync.delivery.service import select

    settings = _settings(fleet)
    with cli_errors():
        rows = roll_back(settings, select(settings, edge))
    _print_status(rows)


@app.command()
def unpin(
    edge: list[str] = typer.Option(..., "--edge", "-e", help="Edge to sync again (repeatable)."),
    fleet: Path | None = FleetOption,
) -> None:
    """Let rolled-back edges be synced again: the next published version rolls out."""
    from edge_sync.delivery.service import select
    from edge_sync.delivery.service import unpin as un_pin

    settings = _settings(fleet)
    with cli_errors():
        rows = un_pin(settings, select(settings, edge))
    _print_status(rows)


def _print_status(rows: list[EdgeStatus]) -> None:
    table = Table("edge", "target", "serving", "previous", "newest", "last sync", "wave", "lag")
    for row in rows:
        lag = (
            "-"
            if row.lag_s is None
            else ("0" if row.lag_s == 0 else f"[yellow]{_duration(row.lag_s)}[/yellow]")
        )
        if row.held:
            lag = f"[cyan]{row.held}[/cyan]"
        if row.pinned:
            lag = "[cyan]pinned (operator rollback)[/cyan]"
        if row.error:
            lag = f"[red]{row.error}[/red]"
        table.add_row(
            row.edge,
            row.target,
            row.serving or "-",
            row.previous or "-",
            row.newest or "-",
            _ago(row.last_sync),
            str(row.wave),
            lag,
        )
    out.print(table)


def _print_waves(rows: list[WaveRow]) -> None:
    table = Table("release", "wave", "edges", "serving", "state")
    for row in rows:
        table.add_row(row.release, str(row.wave), str(row.edges), str(row.serving), row.state)
    out.print(table)


@app.command()
def run(
    fleet: Path | None = FleetOption,
    edge: list[str] | None = EdgeOption,
    once: bool = typer.Option(False, "--once", help="Reconcile every edge once and exit."),
    metrics_port: int | None = typer.Option(
        None, help="Prometheus /metrics port (default from settings; 0: none)."
    ),
    group: str = typer.Option("fleet", help="Names this fleet's Kafka consumer group."),
) -> None:
    """Run the controllers: model-published events, bucket polling, verify, repoint, roll back."""
    from edge_sync.delivery.service import run_fleet, select

    settings = _settings(fleet)
    service_logging()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with cli_errors():
        specs = select(settings, edge or [])
        console.print(f"[cyan]•[/cyan] syncing {len(specs)} edge(s){' once' if once else ''}")
        port = settings.delivery.metrics_port if metrics_port is None else metrics_port
        outcomes = run_fleet(settings, specs, stop, once, port, group)
    table = Table("edge", "action", "version", "serving", "detail")
    for o in outcomes:
        table.add_row(o.edge, o.action, o.version or "-", o.serving or "-", o.detail[:120])
    out.print(table)
    if any(o.action in ("refused", "rolled-back", "failed") for o in outcomes):
        raise typer.Exit(3)
