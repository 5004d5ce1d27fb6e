"""``edgecore settings``: what can be configured, and what is in force."""

from __future__ import annotations

import typer

from edgecore.cli.common import out
from edgecore.settings import Settings, settings_reference

app = typer.Typer(no_args_is_help=True)


@app.command()
def reference() -> None:
    """Print the Markdown reference of every EDGECORE_* setting (as in the README)."""
    typer.echo(settings_reference(), nl=False)


@app.command()
def show() -> None:
    """Print the settings in force (secrets masked), as built from the environment."""
    out.print_json(Settings().model_dump_json())
