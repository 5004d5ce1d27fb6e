"""``edgecore images build | pin``: the images, built with podman and pinned by digest."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgecore.cli.common import cli_errors, out, steps
from edgecore.images.push import Destination
from foundation.settings import Settings

app = typer.Typer(no_args_is_help=True)

REGISTRY_HELP = (
    "Push to (pin from) this registry, host[:port][/path], after `podman login` where it asks; "
    "default: the stack's."
)


@app.command()
def build(
    names: list[str] | None = typer.Argument(None, help="train, serve, services (default: all three)."),
    push: bool = typer.Option(
        True, "--push/--no-push", help="Push the images (the stack's registry must be up)."
    ),
    registry: str | None = typer.Option(None, help=REGISTRY_HELP),
    cert_dir: Path | None = typer.Option(
        None, help="With --registry: podman's --cert-dir (ca.crt, client.*)."
    ),
) -> None:
    """Build the images from uv.lock (no network inside the build) and push them by digest."""
    from edgecore.images.workshop import make_images
    from edgecore.stack.settings import StackSettings

    stack_settings = StackSettings()
    with cli_errors(), steps() as report:
        destination = _destination(registry, cert_dir, healthy=True) if push else None
        made = make_images(stack_settings, destination, names, report)
    table = Table("image", "size (MB)", "build (s)", "push (s)", "pushed as", title="images")
    for row in made:
        built = row.built
        table.add_row(
            built.spec.name,
            f"{built.size_bytes / 1e6:,.0f}",
            "cached" if built.cached else f"{built.seconds:.0f}",
            f"{row.push_s:.0f}" if row.pinned else "-",
            row.pinned or built.ref,
        )
    out.print(table)


@app.command()
def pin(
    overlay: list[Path] = typer.Option([], "--overlay", help="A kustomize overlay to pin (repeatable)."),
    pipeline: list[Path] = typer.Option([], "--pipeline", help="A compiled pipeline to pin (repeatable)."),
    registry: str | None = typer.Option(None, help=REGISTRY_HELP),
    local: bool = typer.Option(
        False, "--local", help="Pin to the stack's loopback registry: for this machine only, never to commit."
    ),
) -> None:
    """Point overlays and compiled pipelines at the pushed images' digests."""
    from edgecore.images.pins import pin_overlay, pin_pipeline

    with cli_errors():
        pushed = _destination(registry, None, healthy=False).read()
        for folder in overlay:
            pinned = pin_overlay(folder, pushed, local)
            out.print(f"{folder}: {', '.join(pinned)} pinned by digest")
        for package in pipeline:
            out.print(f"{package}: {pin_pipeline(package, pushed, local)} executors pinned by digest")


def _destination(address: str | None, cert_dir: Path | None, healthy: bool) -> Destination:
    from edgecore.stack import Stack
    from edgecore.stack.tools import StackError

    settings = Settings()
    if address is not None:
        return Destination.elsewhere(address, settings.state_dir, cert_dir)
    registry = Stack(settings).registry
    if healthy and not registry.healthy():
        raise StackError("the stack's registry is not up: `edgecore stack up`, or build with --no-push")
    return Destination.stack(registry)
