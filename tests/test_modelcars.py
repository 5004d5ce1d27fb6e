"""Models as OCI images (KServe modelcars): pushed by publish, pulled by each edge through the front door.

Everything here is real: the stack's OCI registry (CNCF Distribution, TLS, client
certificates), the front door over TLS, podman as the container engine a kubelet would
be, a store site with its own MinIO, and the edge model server as a subprocess.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from components.publish import publish
from edge_sync.delivery.edges import EdgeSpec, LocalSpec
from edge_sync.delivery.modelcars import Modelcars
from edge_sync.delivery.service import build_fleet
from edgecore.images.podman import Podman, podman
from edgecore.stack import Stack
from edgecore.stack.settings import StackSettings
from edgecore.stack.site import EdgeSite
from foundation.credentials import new_token
from foundation.errors import Forbidden, IntegrityError, NotFound, Unauthorized
from foundation.events import ModelPublished
from foundation.layout import MANIFEST, edge_model_name
from foundation.manifest import Manifest
from foundation.modelcar import (
    core_registry,
    door_reference,
    door_registry,
    pull_version,
    push_base,
    push_version,
    pusher,
)
from foundation.oci import Reference, Registry
from foundation.registry import read_version
from foundation.settings import Settings
from foundation.tls import client_context
from testkit.conditions import wait_for
from testkit.serving import b64, kiosk_jpeg, probe_photos, running_server, write_version
from testkit.uplink import DoorCore, door_core

NORTH, SOUTH = "north", "south"
TOKENS = {NORTH: new_token(), SOUTH: new_token()}


@dataclass(frozen=True)
class Core(DoorCore):
    registry: Registry

    def publish(self, tmp: Path, edge: str, seed: int = 0) -> ModelPublished:
        """A gated export published by the pipeline's own publish step, modelcar included."""
        export = write_version(tmp / f"export-{time.monotonic_ns()}", edge, "v000000", seed)
        events: list[ModelPublished] = []
        return publish(
            self.store,
            self.layout,
            export,
            edge,
            events.append,
            modelcar=pusher(self.settings, self.registry),
        )

    def edge_settings(self, edge: str) -> Settings:
        """What an edge holds: the door's address and CA, and its own token."""
        return self.settings.updated(door={"token": TOKENS[edge], "url": self.url})

    def edge_registry(self, edge: str, token: str | None = None) -> Registry:
        settings = self.settings.updated(door={"token": token or TOKENS[edge], "url": self.url})
        registry = door_registry(settings, edge)
        assert registry is not None
        return registry

    def at_door(self, edge: str, version: str, model: str | None = None) -> Reference:
        return door_reference(self.edge_settings(edge), edge, model or edge_model_name(edge), version)


@pytest.fixture(scope="module")
def core(stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    certs = stack.registry.client_certs()
    root = f"{stack.registry.address}/t{new_token()[:10].lower().replace('-', 'x').replace('_', 'y')}"
    modelcar = {
        "registry": root,
        "ca_file": certs / "ca.crt",
        "cert_file": certs / "client.cert",
        "key_file": certs / "client.key",
    }
    with door_core(settings, tmp_path_factory.mktemp("core"), TOKENS, modelcar=modelcar) as door:
        registry = core_registry(door.settings)
        push_base(
            registry, Reference.parse(door.settings.modelcar_base), Path("/bin/busybox")
        )  # as `images build`
        yield Core(**vars(door), registry=registry)


@pytest.fixture(scope="module")
def engine() -> Podman:
    return podman(StackSettings())


def test_publish_pushes_the_version_as_an_image_a_container_engine_runs_with_it_under_models(
    core: Core, engine: Podman, stack: Stack, tmp_path: Path
) -> None:
    event = core.publish(tmp_path, NORTH)

    image = f"{core.settings.modelcar.registry}/models/{event.model}@{event.modelcar}"
    engine.run(["pull", f"--cert-dir={stack.registry.client_certs()}", image], "pull the modelcar")
    shown = engine.run(["run", "--rm", image, "cat", f"/models/{MANIFEST}"], "read its manifest")
    found = engine.run(["run", "--rm", image, "find", "/models", "-type", "f"], "list its files")

    manifest = Manifest.from_bytes(shown.encode(), "the image's manifest")
    assert (manifest.name, manifest.version) == (event.model, event.version)
    assert {path.removeprefix("/models/") for path in found.split()} == {*manifest.files, MANIFEST}


def test_an_edge_pulls_its_modelcar_through_the_front_door_as_a_kubelet_would(
    core: Core, engine: Podman, tmp_path: Path
) -> None:
    """podman stands in for the kubelet: Basic login (an image pull secret) and the door's CA."""
    event = core.publish(tmp_path, NORTH)
    certs = tmp_path / "door-certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(core.settings.ca_file.read_bytes())
    image = f"{core.at_door(NORTH, event.version)}"

    engine.run(
        ["pull", f"--cert-dir={certs}", f"--creds={NORTH}:{TOKENS[NORTH]}", image], "pull via the door"
    )
    digest = engine.run(["image", "inspect", "--format", "{{.Digest}}", image], "inspect").strip()

    assert digest == event.modelcar


def test_an_edge_s_modelcar_matches_the_version_s_manifest_file_for_file(core: Core, tmp_path: Path) -> None:
    event = core.publish(tmp_path, NORTH)
    published = read_version(core.store, core.layout.model_prefix(event.model, event.version))

    found = pull_version(
        core.edge_registry(NORTH), core.at_door(NORTH, event.version), tmp_path / "v", published.manifest
    )

    assert found == published.manifest
    published.manifest.verify_dir(tmp_path / "v")


def test_the_door_asks_a_client_without_a_login_to_log_in(core: Core) -> None:
    with httpx.Client(verify=client_context(core.settings.ca_file)) as http:
        first = http.get(f"{core.url}/v2/")
        refused = http.get(f"{core.url}/v2/edges/{NORTH}/models/{edge_model_name(NORTH)}/manifests/v000001")

    assert first.status_code == refused.status_code == 401
    assert first.headers["www-authenticate"].startswith("Basic ")


def test_an_edge_cannot_pull_another_edge_s_modelcar(core: Core, tmp_path: Path) -> None:
    event = core.publish(tmp_path, SOUTH)

    with pytest.raises(Forbidden):
        core.edge_registry(NORTH).manifest(core.at_door(SOUTH, event.version))


def test_an_edge_cannot_pull_another_model_under_its_own_path(core: Core, tmp_path: Path) -> None:
    event = core.publish(tmp_path, SOUTH)

    with pytest.raises(Forbidden):
        core.edge_registry(NORTH).manifest(core.at_door(NORTH, event.version, model=edge_model_name(SOUTH)))


def test_a_blob_of_another_model_is_not_served_under_an_edge_s_own_model(core: Core, tmp_path: Path) -> None:
    """The door reads from the edge's model repository, whose blobs the registry keeps apart."""
    theirs = core.publish(tmp_path, SOUTH)
    manifest, _ = core.registry.manifest(
        Reference.parse(f"{core.settings.modelcar.registry}/models/{theirs.model}@{theirs.modelcar}")
    )
    model_blob = manifest["layers"][-1]

    with pytest.raises(NotFound):
        core.edge_registry(NORTH).blob(
            core.at_door(NORTH, "v000001"), model_blob["digest"], model_blob["size"], print
        )


def test_a_wrong_token_cannot_pull(core: Core, tmp_path: Path) -> None:
    event = core.publish(tmp_path, NORTH)

    with pytest.raises(Unauthorized):
        core.edge_registry(NORTH, token=new_token()).manifest(core.at_door(NORTH, event.version))


def test_a_modelcar_whose_files_differ_from_the_version_s_manifest_is_refused(
    core: Core, tmp_path: Path
) -> None:
    """Someone pushed other weights under the version's tag: the controller checks before any target loads."""
    event = core.publish(tmp_path, NORTH, seed=0)
    published = read_version(core.store, core.layout.model_prefix(event.model, event.version))
    other = write_version(tmp_path / "other", NORTH, event.version, seed=1)
    push_version(
        core.registry,
        core.settings.modelcar.registry,
        None,
        other,
        Manifest.from_bytes((other / MANIFEST).read_bytes(), "other"),
    )
    spec = EdgeSpec(edge=NORTH, target=LocalSpec(url="http://127.0.0.1:9", probes=tmp_path))
    modelcars = Modelcars(core.edge_registry(NORTH), core.at_door(NORTH, "latest"), tmp_path / "scratch")

    with pytest.raises(IntegrityError, match="holds .* not "):
        modelcars.locate(spec, published)


@pytest.fixture
def probes(tmp_path: Path) -> Path:
    return probe_photos(tmp_path / "probes", 700_000)


def test_a_store_in_modelcar_mode_serves_each_published_version_from_its_modelcar(
    core: Core, tmp_path: Path, probes: Path
) -> None:
    """The whole edge path: each version pulled into the store's storage, its modelcar checked, the
    store's model server pointed at ``oci://<door>/…@sha256:…`` and pulling it through the door itself."""
    site = EdgeSite(core.settings, NORTH)
    site.up(mqtt=False)
    edge = site.settings.updated(
        door={"token": TOKENS[NORTH], "url": core.url}, delivery={"model_source": "oci"}
    )
    first = core.publish(tmp_path, NORTH, seed=0)
    env = {
        k.removeprefix("EDGECORE_").lower(): v
        for k, v in edge.environment().items()
        if k != "EDGECORE_STATE_DIR"
    }
    start = f"oci://{core.at_door(NORTH, first.version)}"  # serve start --model-uri oci://…
    try:
        with running_server(
            edge, NORTH, tmp_path / "server", model_uri=start, capture=False, **env
        ) as server:
            assert _answering_version(server.url) == first.version
            fleet = build_fleet(edge, [EdgeSpec(edge=NORTH, target=LocalSpec(url=server.url, probes=probes))])
            try:
                rolled = fleet.reconcile_all()
                second = core.publish(tmp_path, NORTH, seed=1)
                fleet.on_event(second)  # as the edge's Kafka topic delivers it
                again = wait_for(
                    lambda: o if (o := fleet.outcomes[NORTH]).version == second.version else None,
                    120,
                    what=f"{second.version} rolled out",
                )
            finally:
                fleet.close()
            pointer = fleet.target(NORTH).current()
            answering = _answering_version(server.url)
    finally:
        site.down()

    assert again is not None
    assert [(o.action, o.serving) for o in [*rolled, again]] == [
        ("rolled-out", first.version),
        ("rolled-out", second.version),
    ]
    assert (
        pointer is not None
        and pointer.uri == f"oci://{core.at_door(NORTH, second.version).pinned(second.modelcar or '')}"
    )
    assert answering == second.version


def _answering_version(url: str) -> str:
    body = {"instances": [{"image_bytes": {"b64": b64(kiosk_jpeg("LIME-GREEN", 7))}}]}
    response = httpx.post(f"{url}/v1/models/{edge_model_name(NORTH)}:predict", json=body, timeout=30)
    response.raise_for_status()
    return str(response.json()["model_version"])


def test_a_version_published_before_modelcars_is_loaded_from_the_bucket(core: Core, tmp_path: Path) -> None:
    """The core switched modelcars on after this version: the controller does not wait for an image."""
    export = write_version(tmp_path / "export", NORTH, "v000000", seed=0)
    event = publish(core.store, core.layout, export, NORTH, lambda _: None)  # no modelcar pushed
    published = read_version(core.store, core.layout.model_prefix(event.model, event.version))
    spec = EdgeSpec(edge=NORTH, target=LocalSpec(url="http://127.0.0.1:9", probes=tmp_path))
    modelcars = Modelcars(core.edge_registry(NORTH), core.at_door(NORTH, "v000001"), tmp_path / "scratch")

    assert event.modelcar is None
    assert modelcars.locate(spec, published) is None
