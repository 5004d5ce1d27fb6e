"""``edgecore manifests``: render a kustomize overlay with the pinned kustomize; print the
per-edge objects of the core cluster (``edge-access``)."""

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


@app.command("edge-access")
def edge_access(
    edge: list[str] = typer.Option(..., "--edge", help="An enrolled edge id (repeat for each)."),
) -> None:
    """Print each edge's KafkaTopic, KafkaUser with its ACLs, and S3 policies, as YAML."""
    from edgecore.edge_access import edge_access_objects
    from foundation.settings import Settings

    with cli_errors():
        objects = edge_access_objects(Settings(), edge)
    typer.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
