"""``edgecore images build | pin``: the images, built with podman and pinned by digest."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgecore.cli.common import cli_errors, out, steps
from foundation.settings import Settings

app = typer.Typer(no_args_is_help=True)


@app.command()
def build(
    names: list[str] | None = typer.Argument(None, help="train, serve, services (default: all three)."),
    push: bool = typer.Option(True, "--push/--no-push", help="Push to the stack's registry (it must be up)."),
) -> None:
    """Build the images from uv.lock (no network inside the build) and push them by digest."""
    from edgecore.images.workshop import make_images
    from edgecore.stack import Stack
    from edgecore.stack.settings import StackSettings
    from edgecore.stack.tools import StackError

    stack_settings = StackSettings()
    with cli_errors(), steps() as report:
        registry = None
        if push:
            registry = Stack(Settings(), stack_settings).registry
            if not registry.healthy():
                raise StackError(
                    "the stack's registry is not up: `edgecore stack up`, or build with --no-push"
                )
        made = make_images(stack_settings, registry, names, report)
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
    local: bool = typer.Option(
        False, "--local", help="Pin to the stack's loopback registry: for this machine only, never to commit."
    ),
) -> None:
    """Point overlays and compiled pipelines at the pushed images' digests."""
    from edgecore.images.pins import pin_overlay, pin_pipeline
    from edgecore.images.push import read_pushed
    from edgecore.stack import Stack

    with cli_errors():
        pushed = read_pushed(Stack(Settings()).registry)
        for folder in overlay:
            pinned = pin_overlay(folder, pushed, local)
            out.print(f"{folder}: {', '.join(pinned)} pinned by digest")
        for package in pipeline:
            out.print(f"{package}: {pin_pipeline(package, pushed, local)} executors pinned by digest")
