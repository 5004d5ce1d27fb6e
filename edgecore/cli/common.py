"""What every command shares: the console and turning edgecore errors into exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from edgecore.errors import EdgecoreError

console = Console(stderr=True)
"""Progress and errors go to stderr; ``out`` is for results (tables) on stdout."""
out = Console()


@contextmanager
def cli_errors() -> Iterator[None]:
    """An EdgecoreError becomes a one-line message and exit code 2 (1 if retryable)."""
    try:
        yield
    except EdgecoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1 if exc.retryable else 2) from exc


def reporter() -> Callable[[str], None]:
    return lambda message: console.print(f"[cyan]•[/cyan] {message}")
