"""What every command shares: the console and turning edgecore errors into exit codes."""

from __future__ import annotations

import faulthandler
import io
import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from foundation.errors import EdgecoreError

console = Console(stderr=True)
"""Progress and errors go to stderr; ``out`` is for results (tables) on stdout."""
out = Console()


@contextmanager
def cli_errors() -> Iterator[None]:
    """An EdgecoreError becomes a one-line message and exit code 2 (1 if retryable)."""
    try:
        yield
    except EdgecoreError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)  # one line, whatever the width
        raise typer.Exit(1 if exc.retryable else 2) from exc


def reporter() -> Callable[[str], None]:
    return lambda message: console.print(f"[cyan]•[/cyan] {message}")


@contextmanager
def steps() -> Iterator[Callable[[str], None]]:
    """Each report a step with a spinner and its time so far, in a terminal: a first ``stack install``
    builds MinIO and kube-apiserver for minutes and should look alive.  Elsewhere (CI logs), lines."""
    if not console.is_terminal:
        yield reporter()
        return
    columns = (SpinnerColumn(finished_text="[green]✓[/green]"), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        tasks: list[TaskID] = []

        def report(message: str) -> None:
            if tasks:
                bar.update(tasks[-1], total=1, completed=1)
            tasks.append(bar.add_task(message, total=None))

        try:
            yield report
        except BaseException:
            if tasks:  # the error itself is printed after: no tick beside the step that failed
                bar.remove_task(tasks[-1])
            raise
        if tasks:
            bar.update(tasks[-1], total=1, completed=1)


def service_logging() -> None:
    """Long-running services log what they do (joins, retries, dead letters) to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("kafka", "httpx"):  # httpx logs every request: a fleet's readiness polls by the thousand
        logging.getLogger(chatty).setLevel(logging.WARNING)
    dump_stacks_on_sigusr1()


def dump_stacks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` writes every thread's stack to stderr and the service goes on.

    A service that stops making progress without failing (a client library waiting
    forever) says where it waits; the demo asks each service this way when a stage
    never completes.
    """
    # Inside a test's CliRunner stderr is not a file: there is nowhere to dump to.
    with suppress(AttributeError, ValueError, io.UnsupportedOperation):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
