"""``edgecore manifests build``: render a kustomize overlay with the pinned kustomize."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from edgecore.cli.common import cli_errors
from edgecore.kustomize import build as build_overlay
from edgecore.stack.settings import StackSettings

app = typer.Typer(no_args_is_help=True)


@app.command()
def build(overlay: Path = typer.Argument(..., help="e.g. manifests/edge")) -> None:
    """Print the objects an overlay renders to, as YAML (pipe to `kubectl apply -f -`)."""
    with cli_errors():
        objects = build_overlay(StackSettings(), overlay)
    typer.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
