"""The images: built with podman from uv.lock, pushed to the stack's registry, pinned by digest,
and a DAG step run inside the training image as a cluster would run it.

The first build on a machine takes minutes (the training image holds TensorFlow); later
runs find each image by its key and build nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from packaging.requirements import Requirement

from edgecore.images.build import requirements, uv_binary
from edgecore.images.pins import pin_overlay, pin_pipeline
from edgecore.images.podman import Podman, podman
from edgecore.images.push import Destination
from edgecore.images.workshop import Made, make_images, step_engine
from edgecore.kustomize import build as build_overlay
from edgecore.stack import Stack
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import free_port
from edgecore.synthetic.generator import generate
from edgecore.synthetic.upload import upload_folder
from foundation.errors import InvalidInput
from foundation.images import SERVE_IMAGE, SERVICES_IMAGE, TRAIN_IMAGE
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from pipelines.step_containers import ContainerEngine
from pipelines.submit import compile_pipeline
from testkit.conditions import wait_for
from testkit.serving import LABELS, b64, kiosk_jpeg, write_version
from testkit.training import env_for

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def made(stack: Stack) -> dict[str, Made]:
    """Every image, built (or found by its key) and pushed to the stack's registry."""
    made = make_images(StackSettings(), Destination.stack(stack.registry), None, print)
    return {row.built.spec.name: row for row in made}


@pytest.fixture(scope="module")
def engine() -> Podman:
    return podman(StackSettings())


def _runs(engine: Podman, image: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [engine.binary, "run", "--rm", image, "python", "-c", code],
        env=engine.env,
        capture_output=True,
        text=True,
    )


def test_the_serving_and_services_images_carry_no_tensorflow(made: dict[str, Made], engine: Podman) -> None:
    for name in ("serve", "services"):
        result = _runs(engine, made[name].built.ref, "import tensorflow")
        assert result.returncode != 0 and "No module named 'tensorflow'" in result.stderr, name
    assert made["serve"].built.size_bytes < made["train"].built.size_bytes / 2


def test_each_image_holds_exactly_the_pins_of_uv_lock_for_its_extras(
    made: dict[str, Made], engine: Podman
) -> None:
    listing = "import importlib.metadata as m\nfor d in m.distributions(): print(d.name, d.version)"
    for name, row in made.items():
        result = _runs(engine, row.built.ref, listing)
        installed = {_normal(line.split()[0]): line.split()[1] for line in result.stdout.splitlines()}
        installed.pop("edgecore")
        wanted = requirements(uv_binary(), REPO, row.built.spec)
        assert installed == _pins_for_linux(wanted), name


def _pins_for_linux(exported: str) -> dict[str, str]:
    """name → version of each exported requirement whose marker holds here (not Windows-only ones)."""
    pins = {}
    for line in exported.splitlines():
        if "==" not in line or line.startswith((" ", "#")):
            continue
        requirement = Requirement(line.removesuffix("\\").strip())
        if requirement.marker is None or requirement.marker.evaluate():
            pins[_normal(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_a_second_build_of_unchanged_sources_builds_nothing(made: dict[str, Made], stack: Stack) -> None:
    again = make_images(StackSettings(), None, ["services"], print)
    assert again[0].built.cached and again[0].built.image_id == made["services"].built.image_id


def test_the_serving_image_serves_an_exported_model_over_http(
    made: dict[str, Made], engine: Podman, tmp_path: Path
) -> None:
    port = free_port()
    name = "edgecore-test-serve-" + str(port)
    version = write_version(tmp_path / "v000001", "image-test", "v000001", seed=3)
    argv = ["run", "--rm", "--detach", f"--name={name}", f"--volume={version}:/mnt/models:ro"]
    argv += ["--env=EDGECORE_SERVER_HOST=127.0.0.1", "--env=EDGECORE_STATE_DIR=/tmp/state"]
    argv += [made["serve"].built.ref, "python", "-m", "serving.server", "--edge", "image-test"]
    argv += ["--model-uri", "/mnt/models", "--http-port", str(port), "--no-capture"]
    engine.run(argv, "podman run of the serving image")
    try:
        url = f"http://127.0.0.1:{port}/v1/models/image-test-products"
        wait_for(lambda: _ready(url), 120, what="the predictor in its image ready")
        photo = kiosk_jpeg(LABELS[1], 4242)
        answer = httpx.post(f"{url}:predict", json={"instances": [{"image_bytes": {"b64": b64(photo)}}]})
        assert answer.status_code == 200
        assert answer.json()["predictions"][0]["sku"] == LABELS[1]
    finally:
        subprocess.run([engine.binary, "stop", "--time=5", name], env=engine.env, capture_output=True)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_registry_refuses_a_client_without_a_certificate(stack: Stack) -> None:
    assert stack.registry.healthy(), "it answers a client holding our certificate"
    context = ssl.create_default_context(cafile=str(stack.pki.ca))
    connection = http.client.HTTPSConnection(
        stack.stack.registry_host, stack.stack.registry_port, timeout=5, context=context
    )
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        connection.request("GET", "/v2/")
        connection.getresponse()
    connection.close()


def test_a_pinned_overlay_renders_every_edgecore_container_by_a_digest_the_registry_holds(
    made: dict[str, Made], stack: Stack, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", manifests)
    pushed = Destination.stack(stack.registry).read()
    images = []
    for overlay in ("core", "edge"):
        pin_overlay(manifests / overlay, pushed, local=True)
        images += [
            image for doc in build_overlay(StackSettings(), manifests / overlay) for image in _images(doc)
        ]
    ours = [image for image in images if "edgecore" in image]
    assert ours and all(image in pushed.values() for image in ours), ours
    assert {pushed[SERVE_IMAGE], pushed[SERVICES_IMAGE], pushed[TRAIN_IMAGE]} <= set(ours)
    for image in set(ours):
        assert _manifest_status(stack, image) == 200, image
    assert "# Replace s3.env" in (manifests / "core" / "kustomization.yaml").read_text(), "comments kept"


def _images(doc: dict[str, Any]) -> Iterator[str]:
    """Every ``image`` of a rendered object, wherever its containers sit."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from _images(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _images(item)


def _manifest_status(stack: Stack, pinned: str) -> int:
    repository, _, digest = pinned.partition("@")
    path = repository.split("/", 1)[1]
    certs = stack.registry.client_certs()
    context = ssl.create_default_context(cafile=str(stack.pki.ca))
    context.load_cert_chain(certs / "client.cert", certs / "client.key")
    connection = http.client.HTTPSConnection(
        stack.stack.registry_host, stack.stack.registry_port, timeout=5, context=context
    )
    accept = (
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    )
    connection.request("HEAD", f"/v2/{path}/manifests/{digest}", headers={"Accept": accept})
    status = connection.getresponse().status
    connection.close()
    return status


def test_a_pinned_pipeline_runs_every_step_on_the_pushed_training_image(
    made: dict[str, Made], stack: Stack, tmp_path: Path
) -> None:
    package = compile_pipeline(tmp_path / "training.yaml")
    pushed = Destination.stack(stack.registry).read()
    assert pin_pipeline(package, pushed, local=True) >= 6
    spec = next(doc for doc in yaml.safe_load_all(package.read_text()) if "deploymentSpec" in doc)
    executors = spec["deploymentSpec"]["executors"].values()
    assert {executor["container"]["image"] for executor in executors} == {pushed[TRAIN_IMAGE]}


def test_a_push_to_another_registry_is_recorded_and_pinned_apart(
    made: dict[str, Made], stack: Stack, tmp_path: Path
) -> None:
    """The same registry by another name stands in for a cluster's: its digests are its own record."""
    elsewhere = Destination.elsewhere(
        f"localhost:{stack.stack.registry_port}/platform", tmp_path, stack.registry.client_certs()
    )
    (row,) = make_images(StackSettings(), elsewhere, ["services"], print)
    assert row.pinned is not None and row.pinned.startswith(
        f"localhost:{stack.stack.registry_port}/platform/"
    )
    assert elsewhere.read() == {SERVICES_IMAGE: row.pinned}
    assert Destination.stack(stack.registry).read()[SERVICES_IMAGE] != row.pinned
    assert _manifest_status(stack, row.pinned) == 200


def test_pinning_refuses_an_image_that_was_never_pushed(tmp_path: Path) -> None:
    package = compile_pipeline(tmp_path / "training.yaml")
    with pytest.raises(InvalidInput, match="never pushed"):
        pin_pipeline(package, {SERVE_IMAGE: "registry.example/edgecore/serve@sha256:" + "0" * 64})
    with pytest.raises(InvalidInput, match="no image was pushed"):
        pin_overlay(REPO / "manifests" / "edge", {})


def test_pinning_to_this_machine_s_registry_must_be_asked_for(tmp_path: Path) -> None:
    package = compile_pipeline(tmp_path / "training.yaml")
    loopback = {TRAIN_IMAGE: "127.0.0.1:5443/edgecore/train@sha256:" + "1" * 64}
    with pytest.raises(InvalidInput, match="loopback"):
        pin_pipeline(package, loopback)
    assert pin_pipeline(package, loopback, local=True) >= 6


def test_a_pipeline_pinned_before_is_pinned_again_to_the_newer_digest(tmp_path: Path) -> None:
    package = compile_pipeline(tmp_path / "training.yaml")
    older = {TRAIN_IMAGE: "registry.example/edgecore/train@sha256:" + "1" * 64}
    newer = {TRAIN_IMAGE: "registry.example/edgecore/train@sha256:" + "2" * 64}
    pin_pipeline(package, older)
    assert pin_pipeline(package, newer) >= 6
    assert ("1" * 64) not in package.read_text() and ("2" * 64) in package.read_text()


def _ingest_in(engine: ContainerEngine | None, root: Path, dataset: str) -> dict[str, Any]:
    """One ingest step run by kfp.local, in subprocesses or in its image: its snapshot's files, and
    its manifest but for the time it was made."""
    from kfp import local

    from components.wrappers import ingest_op
    from pipelines.step_containers import steps_in_images

    root.mkdir(parents=True)
    if engine is None:
        local.init(
            runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True
        )
        task = ingest_op(edge="boutique", datasets=[dataset])
    else:
        with steps_in_images(engine) as runner:
            local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
            task = ingest_op(edge="boutique", datasets=[dataset])
    snapshot = Path(task.outputs["snapshot"].path)
    manifest = json.loads((snapshot / "manifest.json").read_text())
    files = {
        path.relative_to(snapshot).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(snapshot.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }
    return {"files": files, "manifest": {k: v for k, v in manifest.items() if k != "created"}}


@pytest.fixture
def boutique_dataset(
    isolated: Settings,
    iso_store: ObjectStore,
    iso_layout: Layout,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    generate(tmp_path / "photos", seed=5, images_per_product=4, edges=["boutique"])
    upload_folder(iso_store, iso_layout, tmp_path / "photos" / "boutique", "boutique")
    for var, value in env_for(isolated).items():
        monkeypatch.setenv(var, value)
    return "boutique"


def test_a_step_in_its_image_gives_what_the_subprocess_runner_gives(
    made: dict[str, Made], boutique_dataset: str, tmp_path: Path
) -> None:
    in_image = _ingest_in(step_engine(StackSettings()), tmp_path / "image", boutique_dataset)
    in_process = _ingest_in(None, tmp_path / "process", boutique_dataset)
    assert len(in_image["files"]) > 4 and in_image == in_process


def test_a_failing_step_fails_in_its_image(
    made: dict[str, Made], boutique_dataset: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RuntimeError, match="ingest-op"):
        _ingest_in(step_engine(StackSettings()), tmp_path / "image", "no-such-dataset")
    assert "/opt/edgecore/lib/python3.11/site-packages/components/" in capsys.readouterr().out, (
        "the step itself failed, in the image, not podman before it"
    )
