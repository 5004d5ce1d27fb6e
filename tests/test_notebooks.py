"""The notebooks, executed top to bottom by nbclient against the real local stack.

The kernel is this interpreter (a kernelspec written for the test), so the notebooks
import the same packages the tests do; they get their buckets, fleet file and
parameters from ``EDGECORE_*`` and ``NOTEBOOK_*`` variables set here.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

from edge_sync.delivery.edges import EdgeSpec, LocalSpec, dump_fleet
from edgecore.stack import Stack
from foundation.layout import MANIFEST, Layout, edge_model_name
from foundation.manifest import Manifest
from foundation.pointer import ModelPointer
from foundation.registry import newest_version
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from pipelines.results import edge_timings, evaluations, published_versions
from testkit.serving import Server, kiosk_jpeg, running_server, upload_version, write_version
from testkit.training import env_for

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "edgecore-test"
KERNELSPEC = {"display_name": "edgecore", "language": "python", "name": "edgecore"}
SAVE = os.environ.get("EDGECORE_SAVE_NOTEBOOKS") == "1"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that runs this very interpreter, found through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return KERNEL


def execute(name: str, kernel: str, executed: Path) -> tuple[str, int]:
    """Run every cell from a clean state; return the text the cells printed and the number of
    figures shown.

    The repository keeps each notebook with the outputs of its last run, so a code host shows
    the plots; ``make notebooks`` runs these tests with ``EDGECORE_SAVE_NOTEBOOKS=1`` to write
    them back.  The executed copy is also written to ``executed`` for a failure's post-mortem.
    """
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    stored = all(c.get("execution_count") for c in code) and any(c.get("outputs") for c in code)
    assert SAVE or stored, f"{name} is stored without its outputs: run `make notebooks`"
    assert nb.metadata.kernelspec.name == "edgecore", "the README's kernel"
    assert nb.cells[1].metadata.get("tags") == ["parameters"]
    for cell in code:
        cell.outputs, cell.execution_count = [], None
    client = NotebookClient(
        nb, timeout=900, kernel_name=kernel, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, executed / name)
    if SAVE:
        nb.metadata.kernelspec = KERNELSPEC
        nbformat.write(nb, NOTEBOOKS / name)
    text, figures = [], 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                text.append(output.text)
            elif output.output_type in ("display_data", "execute_result"):
                figures += "image/png" in output.data
    return "".join(text), figures


@pytest.mark.slow
def test_the_pipeline_notebook_runs_the_dag_and_plots_the_metrics_of_the_published_model(
    tmp_path: Path,
    kernel: str,
    isolated: Settings,
    iso_store: ObjectStore,
    iso_layout: Layout,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "work"
    for var, value in {
        **env_for(isolated),
        "NOTEBOOK_KFP_HOST": "",
        "NOTEBOOK_EDGES": "boutique",
        "NOTEBOOK_EPOCHS": "2",
        "NOTEBOOK_MIN_ACCURACY": "0",
        "NOTEBOOK_DEMO_IMAGES": "8",
        "NOTEBOOK_WORKDIR": str(work),
    }.items():
        monkeypatch.setenv(var, value)

    text, figures = execute("submit_pipeline.ipynb", kernel, tmp_path)

    assert "dataset boutique v000001: 48 photos uploaded" in text
    assert "local run succeeded" in text
    printed = re.search(r"boutique: test accuracy (\d\.\d{3}) on (\d+) photos; published (\S+) (\S+)", text)
    assert printed, text[-3000:]
    model, version = printed.group(3), printed.group(4)
    assert (model, version) == (edge_model_name("boutique"), "v000001")
    registry = Manifest.from_bytes(iso_store.get_bytes(iso_layout.model_manifest(model, version)), model)
    assert f"{registry.metrics['accuracy']:.3f}" == printed.group(1)
    assert int(registry.metrics["test_images"]) == int(printed.group(2)) > 0
    root = next(work.glob("root"))
    assert evaluations(root)["boutique"].accuracy == registry.metrics["accuracy"]
    assert published_versions(root) == {"boutique": "v000001"}
    assert {"ingest", "prepare", "train", "evaluate", "export", "publish"} <= set(
        edge_timings(root)["boutique"]
    )
    assert figures >= 3  # timings, precision/recall, confusion matrix


@pytest.mark.slow
def test_the_sensor_notebook_trains_publishes_and_plots_errors_against_the_threshold(
    tmp_path: Path,
    kernel: str,
    isolated: Settings,
    iso_store: ObjectStore,
    iso_layout: Layout,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var, value in {
        **env_for(isolated),
        "NOTEBOOK_KFP_HOST": "",
        "NOTEBOOK_EDGE": "plant-5",
        "NOTEBOOK_DEMO_HOURS": "36",
        "NOTEBOOK_EPOCHS": "6",
        "NOTEBOOK_WORKDIR": str(tmp_path / "work"),
    }.items():
        monkeypatch.setenv(var, value)

    text, figures = execute("sensor_pipeline.ipynb", kernel, tmp_path)

    assert "dataset plant-5-telemetry v000001: 2 machines" in text
    assert "quality gate passed" in text and "published plant-5-sensors v000001" in text
    flagged = re.search(r"press-2: (\d+) of (\d+) fault windows flagged", text)
    assert flagged and int(flagged.group(1)) > 0, text[-3000:]
    assert newest_version(iso_store, iso_layout.models_prefix("plant-5-sensors")) is not None
    assert figures >= 2  # recall per fault kind, errors against the thresholds


EDGE = "notebook-shop"
MODEL = edge_model_name(EDGE)
KIOSK_REQUESTS = 7


@pytest.fixture
def shop(stack: Stack, unique: str, tmp_path: Path) -> Settings:
    return Settings().updated(
        state_dir=tmp_path / "state",
        buckets={"models": f"t-models-{unique}", "edge_prefix": f"t-{unique}-"},
        delivery={"fleet_file": tmp_path / "edges.json"},
    )


@pytest.fixture
def served(shop: Settings, tmp_path: Path) -> Iterator[Server]:
    """Two published versions (accuracy 0.910 then 0.960), the second served and queried by kiosks."""
    store, layout = ObjectStore(shop.s3), Layout(shop.buckets)
    for version, accuracy in (("v000001", 0.91), ("v000002", 0.96)):
        root = write_version(tmp_path / version, EDGE, version, seed=0)
        manifest = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
        metrics = {**manifest.metrics, "accuracy": accuracy}
        (root / MANIFEST).write_bytes(manifest.model_copy(update={"metrics": metrics}).to_bytes())
        upload_version(store, layout.model_prefix(MODEL, version), root)
        uri = upload_version(store, layout.edge_model_prefix(EDGE, MODEL, version), root)
    # the pointer as a confirmed sync leaves it
    pointer = ModelPointer(model=MODEL, version="v000002", uri=uri, synced_at=datetime.now(UTC))
    store.put_bytes(layout.edge_model_pointer(EDGE, MODEL), pointer.to_bytes())
    with running_server(
        shop, EDGE, tmp_path / "server", capture=False, edge_bucket_prefix=shop.buckets.edge_prefix
    ) as server:
        for i in range(KIOSK_REQUESTS):
            httpx.post(
                f"{server.url}/v1/models/{MODEL}:predict",
                content=kiosk_jpeg("LIME-GREEN", 4242 + i),
                headers={"content-type": "image/jpeg"},
                timeout=30,
            ).raise_for_status()
        yield server


def test_the_fleet_notebook_shows_versions_accuracy_and_the_servers_histograms(
    tmp_path: Path, kernel: str, shop: Settings, served: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probes").mkdir()
    assert shop.delivery.fleet_file is not None
    spec = EdgeSpec(edge=EDGE, target=LocalSpec(url=served.url, probes=tmp_path / "probes"))
    dump_fleet([spec], shop.delivery.fleet_file)
    env = {
        "EDGECORE_MODELS_BUCKET": shop.buckets.models,
        "EDGECORE_EDGE_BUCKET_PREFIX": shop.buckets.edge_prefix,
        "EDGECORE_STATE_DIR": str(shop.state_dir),
        "EDGECORE_EDGE_FLEET_FILE": str(shop.delivery.fleet_file),
        "NOTEBOOK_EDGES": EDGE,
        "NOTEBOOK_SERVER_URLS": "",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)

    text, figures = execute("inspect_fleet.ipynb", kernel, tmp_path)

    assert re.search(rf"^{EDGE}\s+0\s+v000002\s+-\s+v000002\s+0 s\s+local:{served.url}$", text, re.M), text
    assert re.search(rf"{EDGE}\s+v000001  accuracy 0.910\s+registry, delivered\n", text), text
    assert re.search(rf"{EDGE}\s+v000002  accuracy 0.960\s+registry, delivered  <- serving\n", text), text
    scraped = re.search(rf"{EDGE}: server {served.url} serves {MODEL} v000002; (\d+) predictions", text)
    assert scraped and int(scraped.group(1)) == KIOSK_REQUESTS, text
    assert re.search(r"latency p50 \d+\.\d\d ms p95 \d+\.\d\d ms, mean confidence 0\.\d{3}", text), text
    assert figures >= 2  # accuracy across versions, the histograms
