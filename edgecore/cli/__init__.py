"""The ``edgecore`` command: the composition root.

Each command parses its arguments, builds the one ``Settings`` object and calls one
function; groups live in their own modules and are registered here.
"""

from __future__ import annotations

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from edgecore.cli import (
    catalogue,
    core,
    demo,
    edge,
    edges,
    fleet,
    images,
    manifests,
    pipeline,
    sensors,
    serve,
    settings,
    site,
    stack,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="The edge-to-core ML loop.")
app.command("demo")(demo.run)
app.add_typer(stack.app, name="stack", help="The real local stack: MinIO and Kafka on 127.0.0.1.")
app.add_typer(catalogue.app, name="catalogue", help="Photos to train on: demo catalogue, real photos.")
app.add_typer(core.app, name="core", help="The core's front door, and the stores enrolled to pass it.")
app.add_typer(site.app, name="site", help="A store's own MinIO and MQTT broker, and its gateway's tokens.")
app.add_typer(
    sensors.app, name="sensors", help="Machine telemetry for the anomaly use case: made or read in."
)
app.add_typer(edge.app, name="edge", help="The edge-to-core data path: gateway, shipper, listener.")
app.add_typer(edges.app, name="edges", help="Model delivery to the edges: status, and the sync controllers.")
app.add_typer(fleet.app, name="fleet", help="The fleet git repository of the GitOps delivery mode.")
app.add_typer(settings.app, name="settings", help="Every EDGECORE_* setting: reference and values in force.")
app.add_typer(images.app, name="images", help="The images: built with podman from uv.lock, pinned by digest.")
app.add_typer(manifests.app, name="manifests", help="Kubernetes manifests: render the kustomize overlays.")
app.add_typer(pipeline.app, name="pipeline", help="The KFP training DAG: compile, run locally, submit.")
app.add_typer(serve.app, name="serve", help="The edge predictor (KServe): run it, render its objects.")


def main() -> None:
    """The console script: a setting to fix is one line naming its variable, never a traceback."""
    from edgecore.cli.common import console
    from foundation.settings import invalid_setting

    try:
        app()
    except ValidationError as exc:
        console.print(f"[red]error:[/red] invalid setting: {invalid_setting(exc)}", soft_wrap=True)
        raise SystemExit(2) from None
    except SettingsError as exc:  # a value that is not even the JSON a list or a map setting needs
        console.print(f"[red]error:[/red] invalid setting: {exc}", soft_wrap=True)
        raise SystemExit(2) from None
