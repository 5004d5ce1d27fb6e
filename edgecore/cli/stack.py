"""``edgecore stack install | up | down | status | logs``."""

from __future__ import annotations

import typer
from rich.table import Table

from edgecore.cli.common import cli_errors, console, out, steps
from edgecore.stack import Stack
from edgecore.stack.smoke import smoke_check
from foundation.settings import Settings

app = typer.Typer(no_args_is_help=True)


@app.command()
def install() -> None:
    """Build MinIO (go install), resolve Kafka (Maven), fetch Mosquitto (Debian) into the user cache."""
    with cli_errors(), steps() as report:
        Stack(Settings()).install(report)


@app.command()
def up() -> None:
    """Start the core's Kafka and MinIO, make the local CA (installing first if needed); no-op when up."""
    with cli_errors(), steps() as report:
        started = Stack(Settings()).up(report)
    console.print("stack started" if started else "stack already up")


@app.command()
def init() -> None:
    """Create topics, core buckets and MinIO's Kafka notifications on already running services."""
    with cli_errors():
        created = Stack(Settings()).init()
    console.print(f"created topics: {', '.join(created)}" if created else "topics already exist")


@app.command()
def down() -> None:
    """Stop the processes `up` started; data stays in the state folder."""
    with cli_errors():
        stopped = Stack(Settings()).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status() -> None:
    """A table of service, address, pid, health and version; exit 1 if one is unhealthy."""
    with cli_errors():
        rows = Stack(Settings()).status()
    table = Table("service", "address", "pid", "healthy", "version")
    for row in rows:
        table.add_row(
            row.service,
            row.address,
            str(row.pid) if row.pid else "-",
            "[green]yes[/green]" if row.healthy else "[red]no[/red]",
            row.version,
        )
    out.print(table)
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


@app.command()
def logs(service: str = typer.Argument(..., help="kafka or minio"), lines: int = 40) -> None:
    """The last lines of a service's log."""
    stack = Stack(Settings())
    names = [svc.name for svc in stack.services()]
    if service not in names:
        console.print(f"[red]error:[/red] unknown service {service!r}: use one of {', '.join(names)}")
        raise typer.Exit(2)
    typer.echo(stack.logs(service, lines))


@app.command()
def smoke() -> None:
    """Check the running stack end to end: an S3 object and a Kafka event round trip."""
    with cli_errors():
        checked = smoke_check(Settings())
    for service, what in checked.items():
        out.print(f"[green]ok[/green] {service}: {what}")
