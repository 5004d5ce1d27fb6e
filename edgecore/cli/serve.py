"""``edgecore serve start | objects``: the edge predictor and its KServe objects."""

from __future__ import annotations

import json

import typer

from edgecore.cli.common import cli_errors, dump_stacks_on_sigusr1, out
from foundation.settings import Settings

app = typer.Typer(no_args_is_help=True)


@app.command()
def start(
    edge: str = typer.Option(..., help="Edge (store) id; it serves model <edge>-products."),
    model_uri: str | None = typer.Option(
        None,
        help="s3:// prefix, oci:// modelcar (through the front door with this edge's token) or folder of "
        "the version to serve when the edge has no serving pointer (default: the newest version delivered "
        "to the edge's bucket).",
    ),
    port: int = typer.Option(8080, help="HTTP port (V1, V2 and the model repository API)."),
    host: str | None = typer.Option(
        None, help="Address to listen on (default: EDGECORE_SERVER_HOST, loopback)."
    ),
    capture: bool = typer.Option(True, help="Save photos flagged unsure to the edge bucket."),
    access_log: bool = typer.Option(False, help="Log every request (costs latency)."),
) -> None:
    """Run the KServe predictor for one edge until interrupted."""
    from serving.server import ServerOptions, serve

    dump_stacks_on_sigusr1()  # KServe's ModelServer configures its own logging
    settings = Settings()
    with cli_errors():
        serve(
            settings,
            ServerOptions(
                edge=edge,
                model_uri=model_uri,
                http_port=port,
                host=host or settings.serving.server_host,
                capture=capture,
                access_log=access_log,
            ),
        )


@app.command()
def objects(
    edge: str = typer.Option(..., help="Edge (store) id."),
    storage_uri: str = typer.Option(..., help="s3:// prefix of the model version to serve."),
    image: str = typer.Option(..., help="Container image of the predictor."),
    namespace: str = typer.Option("edgecore", help="Kubernetes namespace."),
) -> None:
    """Print the Secret, ServiceAccount, ServingRuntime and InferenceService of one edge (JSON list)."""
    from serving.isvc import Deployment, edge_objects

    with cli_errors():
        objs = edge_objects(Deployment(edge=edge, namespace=namespace), storage_uri, image, Settings())
    out.print_json(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
