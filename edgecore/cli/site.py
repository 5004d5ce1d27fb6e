"""``edgecore site up | down | token``: a store's own services on this machine, and who may call its gateway.

A site is what one store runs beside its gateway (``edgecore.stack.site``): its own MinIO
process and MQTT broker, on ports and folders of its own.  Tokens are written to a file
readable by its owner only, never printed: they are how a device or a member of staff
proves who it is to the gateway (and, for a device, to the broker).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from edgecore.cli.common import cli_errors, out
from edgecore.stack.site import EdgeSite, site_folder
from foundation.credentials import write_private
from foundation.errors import InvalidInput
from foundation.settings import Settings

app = typer.Typer(no_args_is_help=True)

EdgeOption = typer.Option(..., "--edge", help="The store's edge id.")


@app.command()
def up(edge: str = EdgeOption, mqtt: bool = typer.Option(True, help="Also start its MQTT broker.")) -> None:
    """Start the store's MinIO (and MQTT broker); its bucket exists afterwards. A no-op when running."""
    with cli_errors():
        site = EdgeSite(Settings(), edge)
        site.up(mqtt=mqtt)
    out.print(f"site {edge} is up: S3 {site.settings.s3.endpoint_url}; its folder is {site.folder}")


@app.command()
def down(edge: str = EdgeOption) -> None:
    """Stop the store's MinIO and broker; their data stays in the site's folder."""
    with cli_errors():
        stopped = EdgeSite(Settings(), edge).down()
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def token(
    edge: str = EdgeOption,
    device: str | None = typer.Option(None, help="A device (kiosk, camera): it may post images."),
    staff: str | None = typer.Option(None, help="A member of staff: may also label, complete sets, read."),
    token_file: Path | None = typer.Option(
        None, help="Where to write the token (default <site folder>/tokens/<device|staff>-<name>)."
    ),
) -> None:
    """Issue a gateway token to one device or member of staff; the previous one stays valid beside it."""
    with cli_errors():
        if (device is None) == (staff is None):
            raise InvalidInput("name exactly one of --device and --staff")
        kind: Literal["device", "staff"] = "device" if device else "staff"
        principal = device or staff or ""
        settings = Settings()
        target = token_file or site_folder(settings, edge) / "tokens" / f"{kind}-{principal}"
        issued = EdgeSite(settings, edge).issue_gateway_token(kind, principal)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_private(target, issued + "\n")
    out.print(f"{kind} {principal} of site {edge}: its token is in {target} (owner-readable only)")
