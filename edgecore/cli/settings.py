"""``edgecore settings``: what can be configured, and what is in force."""

from __future__ import annotations

import typer

from edgecore.cli.common import out
from edgecore.stack.settings import StackSettings
from foundation.settings import Settings, settings_reference

app = typer.Typer(no_args_is_help=True)


def reference_text() -> str:
    """Every setting: the services' groups and the local stack's own (``docs/settings.md``)."""
    return settings_reference({"stack": StackSettings})


@app.command()
def reference() -> None:
    """Print the Markdown reference of every EDGECORE_* setting (as in docs/settings.md)."""
    typer.echo(reference_text(), nl=False)


@app.command()
def show() -> None:
    """Print the settings in force (secrets masked), as built from the environment."""
    out.print_json(Settings().model_dump_json())
    out.print_json(StackSettings().model_dump_json())
