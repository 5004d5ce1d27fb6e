"""``edgecore fleet``: the fleet git repository of the GitOps delivery mode (docs/gitops.md).

``init-repo`` makes an empty repository's first commit: the edge overlay as ``base/edge/``
and one folder per edge, each serving the edge's first version, so Argo CD's
``manifests/fleet-git`` ApplicationSet has something to render before any rollout.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from edgecore.cli.common import cli_errors, console

app = typer.Typer(no_args_is_help=True)
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


@app.command("init-repo")
def init_repo(
    repo: str = typer.Argument(..., help="The empty fleet repository: a URL or path git pushes to."),
    edge: list[str] = typer.Option(..., "--edge", help="An edge id (repeat for each)."),
    branch: str = typer.Option("main", help="The branch Argo CD follows."),
    namespace: str = typer.Option("edgecore-edge", help="The edge clusters' namespace."),
    base: Path = typer.Option(MANIFESTS / "edge", help="The edge overlay copied to base/edge/."),
) -> None:
    """Commit base/edge/ and edges/<edge>/ (kustomization.yaml, release.yaml) and push them."""
    from edge_sync.delivery.edges import EdgeSpec, GitOpsSpec
    from edge_sync.delivery.targets.fleet_repo import FleetRepo, init_fleet_repo
    from edge_sync.delivery.targets.gitops import RELEASE, edge_folder, first_release
    from foundation.layout import Layout, edge_model_name, format_version
    from foundation.settings import Settings

    with cli_errors(), tempfile.TemporaryDirectory() as work:
        layout, files = Layout(Settings().buckets), {}
        for name in edge:
            model, folder = edge_model_name(name), f"edges/{name}"
            spec = GitOpsSpec(repo=repo, branch=branch, context="in-cluster", namespace=namespace, name=model)
            fleet = f"[{EdgeSpec(edge=name, target=spec).model_dump_json(exclude_none=True)}]"
            first = layout.edge_model_prefix(name, model, format_version(1)).uri
            files[f"{folder}/kustomization.yaml"] = edge_folder(name, namespace, model, folder, fleet)
            files[f"{folder}/{RELEASE}"] = first_release(model, namespace, first.rstrip("/") + "/")
        init_fleet_repo(FleetRepo(repo, branch, Path(work) / "fleet"), base, files)
    console.print(f"{repo} ({branch}): base/edge and {len(edge)} edge folder(s) pushed")
