"""The GitOps target: rollouts and rollbacks as commits to a real git repository.

The fleet repository is a bare repository in the test's folder, driven by the real ``git``;
each edge folder is rendered by the real kustomize and applied to the stack's real
Kubernetes API server, where ``KServeStandIn`` reports the InferenceService as KServe
would.  Argo CD itself does not run here: ``argo_sync`` plays its part (render the edge
folder at the branch's HEAD, server-side apply every object), and ``argo_cd`` runs it
whenever the branch moves, as Argo CD's automated sync does.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge_sync.delivery.edges import EdgeSpec, GitOpsSpec
from edge_sync.delivery.service import build_targets
from edge_sync.delivery.targets.address import VersionedInferenceProbe
from edge_sync.delivery.targets.fleet_repo import Author, FleetRepo, init_fleet_repo, scrub_credentials
from edge_sync.delivery.targets.gitops import GitOpsTarget, edge_folder, first_release
from edge_sync.delivery.targets.isvc import PINNED, PREVIOUS_VERSION, REJECTED_VERSION, VERSION
from edgecore.cli import app
from edgecore.kustomize import build
from edgecore.stack.apiclient import server_side_apply
from edgecore.stack.controlplane import ControlPlane
from edgecore.stack.settings import StackSettings
from foundation.errors import RolloutFailed
from foundation.layout import edge_model_name
from foundation.settings import Settings
from testkit.conditions import wait_for
from testkit.delivery import EdgeCluster
from testkit.k8s_schemas import require_crds, validation_errors

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
EDGE = "store-7"
FOLDER = f"edges/{EDGE}"


def uri(version: str) -> str:
    return f"s3://edgecore-edge-{EDGE}/models/{edge_model_name(EDGE)}/{version}/"


V1, V2, V3 = uri("v000001"), uri("v000002"), uri("v000003")


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def log(remote: Path) -> list[str]:
    """Every commit subject on the fleet branch, newest first."""
    return git("--git-dir", str(remote), "log", "--format=%s", "main").splitlines()


def argo_sync(remote: Path, edge: str, kube: ControlPlane, checkout: Path) -> list[dict[str, Any]]:
    """Argo CD's part: render ``edges/<edge>`` at the branch's HEAD and server-side apply it.

    The Namespace is left out (the test's namespace stands in for the edge cluster's, as
    Argo CD's CreateNamespace would make it); every other object is applied as Argo CD
    does with server-side apply, so a field dropped from git is dropped from the object.
    """
    if not (checkout / ".git").is_dir():
        git("clone", "--quiet", str(remote), str(checkout))
    git("fetch", "--quiet", "origin", cwd=checkout)
    git("reset", "--quiet", "--hard", "origin/main", cwd=checkout)
    rendered = build(StackSettings(), checkout / "edges" / edge)
    with kube.http() as http:
        return [server_side_apply(http, o, manager="argocd") for o in rendered if o["kind"] != "Namespace"]


@contextmanager
def argo_cd(remote: Path, edge: str, kube: ControlPlane, folder: Path) -> Iterator[None]:
    """``argo_sync`` on every move of the branch, as Argo CD's automated sync, until the block ends."""
    stop, failures = threading.Event(), []

    def loop() -> None:
        synced = ""
        while not stop.wait(0.05):
            head = git("--git-dir", str(remote), "rev-parse", "main").strip()
            if head != synced:
                try:
                    argo_sync(remote, edge, kube, folder / "argo-checkout")
                    synced = head
                except Exception as exc:  # reported when the block ends: a test thread cannot fail alone
                    failures.append(exc)
                    return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not failures, failures


@pytest.fixture
def remote(tmp_path: Path, cluster: EdgeCluster) -> Path:
    """A bare fleet repository: the edge base, and this edge's folder serving v000001."""
    bare = tmp_path / "fleet.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    name = edge_model_name(EDGE)
    files = {
        f"{FOLDER}/kustomization.yaml": edge_folder(EDGE, cluster.namespace, name, FOLDER),
        f"{FOLDER}/release.yaml": first_release(name, cluster.namespace, V1, "v000001"),
    }
    init_fleet_repo(FleetRepo(str(bare), "main", tmp_path / "init"), MANIFESTS / "edge", files)
    return bare


def gitops_target(
    remote: Path, cluster: EdgeCluster, workdir: Path, ready_timeout_s: float = 20.0
) -> GitOpsTarget:
    """A controller's target, with a clone of its own (a fresh ``workdir`` is a restarted controller)."""
    repo = FleetRepo(str(remote), "main", workdir, Author("test controller", "controller@example.com"))
    reader = cluster.target(EDGE, ready_timeout_s=ready_timeout_s)
    return GitOpsTarget(repo, FOLDER, reader, ready_timeout_s, VersionedInferenceProbe())


@pytest.fixture
def served(remote: Path, cluster: EdgeCluster, kube: ControlPlane, tmp_path: Path) -> Iterator[None]:
    """Argo CD has rendered the edge (v000001) and keeps following the branch."""
    argo_sync(remote, EDGE, kube, tmp_path / "argo-checkout")
    with argo_cd(remote, EDGE, kube, tmp_path):
        yield


def test_argo_cd_rendering_the_edge_folder_gives_the_inference_service_the_committed_uri(
    remote: Path, cluster: EdgeCluster, kube: ControlPlane, tmp_path: Path
) -> None:
    stored = argo_sync(remote, EDGE, kube, tmp_path / "argo-checkout")

    obj = cluster.get(EDGE)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == V1
    assert obj["metadata"]["annotations"][VERSION] == "v000001"
    assert obj["spec"]["predictor"]["model"]["args"][1] == EDGE
    assert {o["metadata"].get("namespace") for o in stored} == {cluster.namespace}


def test_a_rollout_is_one_commit_naming_the_version_and_the_one_before(
    remote: Path, cluster: EdgeCluster, served: None, tmp_path: Path
) -> None:
    deployed = gitops_target(remote, cluster, tmp_path / "controller").apply(V2, "v000002")

    assert (deployed.version, deployed.uri) == ("v000002", V2) and deployed.synced_at is not None
    subjects = log(remote)
    assert [s for s in subjects if "serve" in s] == [f"edge {EDGE}: serve v000002 (was v000001)"]
    assert subjects[0] == f"edge {EDGE}: v000002 confirmed serving"
    assert cluster.storage_uri(EDGE) == V2
    assert cluster.annotations(EDGE)[PREVIOUS_VERSION] == "v000001"
    author = git("--git-dir", str(remote), "log", "-1", "--format=%an <%ae>", "main").strip()
    assert author == "test controller <controller@example.com>"


def test_a_restarted_controller_reads_the_state_back_from_the_repository(
    remote: Path, cluster: EdgeCluster, served: None, tmp_path: Path
) -> None:
    gitops_target(remote, cluster, tmp_path / "killed").apply(V2, "v000002")

    state = gitops_target(remote, cluster, tmp_path / "restarted").state()

    assert state.current is not None and (state.current.version, state.current.uri) == ("v000002", V2)
    assert state.current.synced_at is not None
    assert state.previous is not None and state.previous.version == "v000001"
    assert (state.rejected, state.pinned) == (None, False)


def test_applying_the_version_git_already_names_commits_nothing_and_awaits_health(
    remote: Path, cluster: EdgeCluster, served: None, tmp_path: Path
) -> None:
    target = gitops_target(remote, cluster, tmp_path / "controller")
    target.apply(V2, "v000002")
    commits = len(log(remote))

    again = target.apply(V2, "v000002")

    assert again.version == "v000002" and len(log(remote)) == commits


def test_an_unhealthy_version_is_rolled_back_by_a_second_commit_and_marked_rejected(
    remote: Path, cluster: EdgeCluster, served: None, tmp_path: Path
) -> None:
    cluster.kserve.fail_uris.add(V2)
    target = gitops_target(remote, cluster, tmp_path / "controller")

    with pytest.raises(RolloutFailed, match="rolled back by a commit"):
        target.apply(V2, "v000002")

    assert log(remote)[:2] == [
        f"edge {EDGE}: roll back v000002 to v000001",
        f"edge {EDGE}: serve v000002 (was v000001)",
    ]
    state = target.state()
    assert state.current is not None and state.current.version == "v000001"
    assert (state.rejected, state.pinned) == ("v000002", False)
    wait_for(lambda: cluster.storage_uri(EDGE) == V1, 20, what="Argo CD to put v000001 back")
    assert cluster.annotations(EDGE)[REJECTED_VERSION] == "v000002"


def test_a_version_kserve_reports_failed_is_rolled_back_on_that_report_not_after_the_ready_timeout(
    remote: Path, cluster: EdgeCluster, served: None, tmp_path: Path
) -> None:
    cluster.kserve.fail_uris.add(V2)
    target = gitops_target(remote, cluster, tmp_path / "controller", ready_timeout_s=120.0)

    with pytest.raises(RolloutFailed, match="rolled back by a commit: ModelLoadFailed") as failed:
        target.apply(V2, "v000002")

    assert "not serving within" not in str(failed.value)


def test_an_operators_rollback_pins_the_edge_until_it_is_unpinned(
    remote: Path, cluster: EdgeCluster, served: None, tmp_path: Path
) -> None:
    target = gitops_target(remote, cluster, tmp_path / "controller")
    target.apply(V2, "v000002")

    back = target.rollback("v000002 mislabels oat milk")

    assert back is not None and back.version == "v000001"
    state = target.state()
    assert (state.pinned, state.rejected) == (True, "v000002")
    message = git("--git-dir", str(remote), "log", "-1", "--format=%B", "main")
    assert "v000002 mislabels oat milk" in message and "Pinned" in message
    wait_for(lambda: cluster.annotations(EDGE).get(PINNED) == "true", 20, what="the pin on the edge")

    target.unpin()

    assert not target.state().pinned and log(remote)[0] == f"edge {EDGE}: unpin v000001"


class RacingRepo(FleetRepo):
    """A fleet clone whose first push loses a race: another writer pushes just before it."""

    def __init__(self, *args: Any, other: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.other, self.pushes = other, 0

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if args[0] == "push":
            self.pushes += 1
            if self.pushes == 1:
                git("clone", "--quiet", self.url, str(self.other))
                (self.other / "edges" / "store-8").mkdir(parents=True)
                (self.other / "edges" / "store-8" / "README").write_text("an edge being added\n")
                git("add", "--all", cwd=self.other)
                git(
                    "-c",
                    "user.name=operator",
                    "-c",
                    "user.email=op@example.com",
                    "commit",
                    "-qm",
                    "add store-8",
                    cwd=self.other,
                )
                git("push", "--quiet", "origin", "main", cwd=self.other)
        return super().git(*args, check=check)


def test_a_push_that_loses_a_race_is_made_again_on_the_new_head_not_lost(
    remote: Path, cluster: EdgeCluster, served: None, tmp_path: Path
) -> None:
    repo = RacingRepo(str(remote), "main", tmp_path / "controller", other=tmp_path / "operator")
    target = GitOpsTarget(repo, FOLDER, cluster.target(EDGE), 20.0, VersionedInferenceProbe())

    target.apply(V2, "v000002")

    subjects = log(remote)
    assert "add store-8" in subjects and f"edge {EDGE}: serve v000002 (was v000001)" in subjects
    assert subjects.index(f"edge {EDGE}: serve v000002 (was v000001)") < subjects.index("add store-8")
    assert repo.pushes >= 3  # the lost push, its repeat, the confirmation


def test_the_controller_builds_a_gitops_target_from_the_fleet_file(
    remote: Path, cluster: EdgeCluster, tmp_path: Path
) -> None:
    spec = GitOpsSpec(
        repo=str(remote),
        context=cluster.context,
        kubeconfig=cluster.kubeconfig,
        namespace=cluster.namespace,
        name=edge_model_name(EDGE),
    )
    settings = Settings().updated(state_dir=tmp_path / "state")

    target = build_targets(settings, [EdgeSpec(edge=EDGE, target=spec)])[EDGE]

    state = target.state()
    assert isinstance(target, GitOpsTarget) and state.current is not None
    assert state.current.version == "v000001"
    assert (tmp_path / "state" / "edge-sync" / "gitops" / EDGE / ".git").is_dir()


def test_the_applicationset_renders_one_self_healing_application_per_edge_folder_leaving_git_sole_writer(
    kube: ControlPlane,
) -> None:
    require_crds()
    appset = next(o for o in build(StackSettings(), MANIFESTS / "fleet-git") if o["kind"] == "ApplicationSet")
    assert validation_errors(appset) == []
    with kube.http() as http:
        server_side_apply(http, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})
        stored = server_side_apply(http, appset)

    git_generator = stored["spec"]["generators"][0]["matrix"]["generators"][0]["git"]
    default = GitOpsSpec(repo="r", context="c", namespace="n", name="n")
    assert git_generator["directories"] == [{"path": default.folder("*")}]
    assert git_generator["revision"] == default.branch
    spec = stored["spec"]["template"]["spec"]
    assert spec["source"]["path"] == "{{ .path.path }}" and "ignoreDifferences" not in spec
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    typo = {**appset, "spec": {**appset["spec"], "ignoreDifference": []}}
    assert validation_errors(typo) != []  # the schema check above can fail


def test_init_repo_makes_a_fleet_repository_whose_edge_folders_render_for_the_gitops_controller(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "fleet.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))

    result = CliRunner().invoke(
        app, ["fleet", "init-repo", str(bare), "--edge", "store-1", "--edge", "store-2"]
    )

    assert result.exit_code == 0, result.output
    git("clone", "--quiet", str(bare), str(tmp_path / "checkout"))
    rendered = build(StackSettings(), tmp_path / "checkout" / "edges" / "store-2")
    isvc = next(o for o in rendered if o["kind"] == "InferenceService")
    assert isvc["metadata"]["name"] == "store-2-products"
    assert isvc["spec"]["predictor"]["model"]["storageUri"].endswith("/store-2-products/v000001/")
    fleet = next(o for o in rendered if o["metadata"]["name"] == "edgecore-edge-fleet")
    (spec,) = [EdgeSpec.model_validate(e) for e in json.loads(fleet["data"]["fleet.json"])]
    assert isinstance(spec.target, GitOpsSpec) and spec.target.folder(spec.edge) == "edges/store-2"


def test_a_git_message_quoting_a_url_loses_the_credential_in_it() -> None:
    """Older git versions quote the remote's URL whole in their errors, which reach the logs."""
    said = "fatal: unable to access 'https://store-1:s3cret-token@git.example.com/fleet.git/': 403"

    assert scrub_credentials(said) == "fatal: unable to access 'https://…@git.example.com/fleet.git/': 403"
