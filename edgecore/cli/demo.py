"""``edgecore demo``: the whole loop on the local stack, two stores, two rounds."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from edgecore.cli.common import cli_errors, console, out
from edgecore.demo.rounds import Demo, Options, RoundResult
from edgecore.demo.sensor_story import SensorResult
from edgecore.demo.supervisor import Supervisor
from edgecore.demo.world import World
from edgecore.stack import Stack
from edgecore.synthetic.products import EDGES
from foundation.settings import Settings


def _executable() -> list[str]:
    """The ``edgecore`` of this interpreter's environment (the services run the same code)."""
    script = shutil.which("edgecore", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "edgecore.cli"]


def run(
    images: int = typer.Option(40, min=8, max=500, help="Training photos per product."),
    kiosk_photos: int = typer.Option(4, min=1, max=100, help="Kiosk photos per product and round."),
    epochs: int = typer.Option(
        40, min=1, max=500, help="Most training epochs (early stopping may end sooner)."
    ),
    seed: int = typer.Option(7, help="Same seed, same photos."),
    coalesce: float = typer.Option(30.0, help="Seconds the listener waits to train both stores in one run."),
    timeout: float = typer.Option(1800.0, help="Longest any one stage may take before the demo fails."),
    install: bool = typer.Option(True, help="Install and start the local stack first."),
    stay: bool = typer.Option(False, help="Keep the services and pages up after the table, until Ctrl-C."),
) -> None:
    """Two stores, each a site of its own (its MinIO, broker, gateway, model server, sync controller), and
    the core (its front door over TLS, listener); round 1 trains and delivers a model per store, round 2
    adds a new product; then a store's machines raise a real alarm and a false one, staff judge them, and
    the next sensor model does not raise the false one again."""
    started = time.monotonic()
    base = Settings()
    with cli_errors():
        stack = Stack(base)
        if install:
            stack.install(lambda m: console.print(f"[cyan]•[/cyan] {m}"))
            stack.up(lambda m: console.print(f"[cyan]•[/cyan] {m}"))
        world = World.create(base, list(EDGES), coalesce, poll_s=2.0)
        options = Options(images, kiosk_photos, epochs, seed, coalesce, timeout)
        # SIGTERM (a CI job cancelled, a terminal closed) cleans up like Ctrl-C does.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with Supervisor(world.state_dir / "run", os.environ, _executable()) as supervisor:
            try:
                results, machines = Demo(world, supervisor, options, console).run()
                if stay:
                    show(summary(results))
                    show(sensor_summary(machines))
                    _stay(world)
            except KeyboardInterrupt:
                console.print("[yellow]interrupted: stopping the demo's services[/yellow]")
                raise typer.Exit(130) from None
            finally:
                for site in world.sites.values():  # the stores' own MinIO processes
                    site.down()
    if not stay:
        show(summary(results))
        show(sensor_summary(machines))
    out.print(
        f"demo {world.run_id} finished in {(time.monotonic() - started) / 60:.1f} min;"
        f" logs and state in {world.state_dir}"
    )


def show(table: Table) -> None:
    """Print a table whole: in a log file as wide as it needs (off a terminal rich assumes 80)."""
    if out.is_terminal:
        out.print(table)
        return
    natural = Measurement.get(out, out.options.update_width(1000), table).maximum
    Console(width=max(out.width, natural)).print(table)


def summary(results: list[RoundResult]) -> Table:
    table = Table(title="edgecore demo: per store and round")
    for column in ("round", "store", "model version", "test accuracy", "data-ready → serving"):
        table.add_column(column)
    for column in ("kiosk requests", "kiosk right", "p50 latency"):
        table.add_column(column, justify="right")
    table.add_column("note")
    for r in results:
        table.add_row(
            str(r.round),
            r.edge,
            r.version,
            "-" if r.accuracy is None else f"{r.accuracy:.1%}",
            "-" if r.ready_to_serving_s is None else f"{r.ready_to_serving_s:.0f} s",
            str(r.kiosk.asked),
            f"{r.kiosk.accuracy:.0%}",
            f"{r.kiosk.p50_ms:.1f} ms",
            r.note,
        )
    return table


def sensor_summary(results: list[SensorResult]) -> Table:
    table = Table(title="edgecore demo: the stores' machines")
    for column in ("store", "first sensor model", "fault → alarm on Kafka", "after staff's verdicts", "note"):
        table.add_column(column)
    for r in results:
        latency = "-" if r.fault_to_alert_s is None else f"{r.fault_to_alert_s:.1f} s"
        table.add_row(r.edge, r.first_version, latency, r.next_version, r.note)
    return table


def _stay(world: World) -> None:
    """Keep everything up for people to look around (the pages), until Ctrl-C or SIGTERM."""
    for line in world.pages():
        out.print(line)
    out.print("the demo's services stay up: Ctrl-C stops them")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        out.print("stopping the demo's services")
