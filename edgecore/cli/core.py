"""``edgecore core door | enrol | revoke | page | operator``: the core's front door, the stores allowed
through it, and the status page its operators read."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_sync import frontdoor
from edgecore.cli.common import cli_errors, out, service_logging
from edgecore.enrolment import enrol as enrol_edge
from edgecore.enrolment import issue_operator
from edgecore.enrolment import revoke as revoke_edge
from foundation.settings import Settings
from pipelines.listener import GROUP_ID

app = typer.Typer(no_args_is_help=True)


@app.command()
def door() -> None:
    """The front door (HTTPS on EDGECORE_DOOR_HOST:EDGECORE_DOOR_PORT): edges' sets in, their models out."""
    service_logging()
    with cli_errors():
        frontdoor.run_front_door(Settings())


@app.command()
def enrol(
    edge: str = typer.Option(..., help="The store's edge id."),
    env_file: Path | None = typer.Option(
        None, help="Where to write the store's credentials (default <state>/sites/<edge>/edge.env)."
    ),
    rotate: bool = typer.Option(False, help="Issue a new token; the current one stays valid until revoked."),
    kafka: bool = typer.Option(
        True,
        help=(
            "Also issue its Kafka login and ACLs for its own topic (not with --rotate: a Kafka login"
            " has one password; revoke and enrol again to change it)."
        ),
    ),
) -> None:
    """Let a store in: a front-door token and a Kafka login, written to an env file for its site."""
    settings = Settings()
    target = env_file or settings.state_dir / "sites" / edge / "edge.env"
    with cli_errors():
        done = enrol_edge(settings, edge, target, rotate=rotate, kafka=kafka and not rotate)
    what = "a new token beside the current one" if done.rotated else "enrolled"
    out.print(f"edge {edge}: {what}; its settings are in {done.env_file} (owner-readable only)")


@app.command()
def revoke(
    edge: str = typer.Option(..., help="The store's edge id."),
    old_only: bool = typer.Option(False, help="Only the older token (the store uses the new one now)."),
) -> None:
    """Withdraw a store's credentials: its older token after a rotation, or all of them."""
    with cli_errors():
        removed = revoke_edge(Settings(), edge, old_only=old_only)
    out.print(f"edge {edge}: {removed} token(s) withdrawn")


@app.command()
def page(group: str = typer.Option(GROUP_ID, help="The listener group whose runs to show.")) -> None:
    """The status page (http://EDGECORE_CONSOLE_HOST:EDGECORE_CONSOLE_PORT/core/) for operators."""
    from edgecore.console.app import run_page  # the page's readers are imported only to run it

    service_logging()
    with cli_errors():
        run_page(Settings(), group)


@app.command()
def operator(
    name: str = typer.Argument(..., help="Who the token is for."),
    token_file: Path | None = typer.Option(
        None, help="Where to write the token (default <state>/console/tokens/<name>)."
    ),
) -> None:
    """Issue a token for the status page; the operator's previous one stays valid beside it."""
    settings = Settings()
    target = token_file or settings.operators_file.parent / "tokens" / name
    with cli_errors():
        issue_operator(settings, name, target)
    out.print(f"operator {name}: the token is in {target} (owner-readable only)")
