"""train, evaluate and export on a tiny real prepared dataset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from components.artefacts import keras_predict, load_keras_model
from components.ensemble import members
from components.evaluate import Evaluation, GateConfig, evaluate, litert_predict, markdown_report
from components.export import UNPUBLISHED, export_model, export_trained
from components.head import serving_model
from components.ingest import IMAGES_DIR
from components.prepare import PreparedData, prepare
from components.train import KERAS_FILE, TrainConfig, build_model, train, warm_start
from foundation.errors import InvalidInput
from foundation.layout import LABELS_FILE, MANIFEST, SAVED_MODEL_DIR, TFLITE_FILE
from foundation.manifest import Manifest, entries_for_dir
from foundation.openset import OPENSET_FILE, OpenSet
from testkit.training import tiny_store

SIZE = 64
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    photos = tiny_store(root / "photos", "boutique", images=20)
    snap = root / "snap"
    for folder in photos.iterdir():
        if folder.is_dir():
            shutil.copytree(folder, snap / IMAGES_DIR / folder.name)
    shutil.copy(photos / "catalogue.json", snap / "catalogue.json")
    prepare(snap, root / "prepared", SIZE)
    return root / "prepared"


@pytest.fixture(scope="module")
def trained(prepared: Path) -> Path:
    out = prepared.parent / "trained"
    train(prepared, out, TrainConfig(epochs=30, patience=30))
    return out


@pytest.fixture(scope="module")
def production(prepared: Path, trained: Path) -> Path:
    """The trained model exported and registered as version v000001."""

    data = PreparedData(prepared)
    out = prepared.parent / "production"
    manifest = export_model(load_keras_model(trained / KERAS_FILE), data.labels, data.catalogue, out, SIZE)
    (out / MANIFEST).write_bytes(manifest.model_copy(update={"version": "v000001"}).to_bytes())
    return out


def test_training_saves_a_softmax_model_over_the_catalogue_skus(prepared: Path, trained: Path) -> None:

    labels = PreparedData(prepared).labels
    assert json.loads((trained / LABELS_FILE).read_text()) == labels
    model = load_keras_model(trained / KERAS_FILE)
    probabilities = model.predict(PreparedData(prepared).split("test").x, verbose=0)
    assert probabilities.shape[1] == len(labels)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert json.loads((trained / "history.json").read_text())["epochs_run"] <= 30


def test_evaluation_reports_accuracy_per_class_figures_and_a_consistent_confusion_matrix(
    prepared: Path, trained: Path
) -> None:
    result = evaluate(trained, prepared, GateConfig(min_accuracy=0.0))
    matrix = np.asarray(result.confusion)
    assert matrix.sum() == result.test_images == len(PreparedData(prepared).split("test").y)
    assert result.accuracy == pytest.approx(np.trace(matrix) / matrix.sum())
    assert set(result.precision) == set(result.recall) == set(result.labels)
    assert result.passed and result.reasons == []
    assert "| CAVIAR-50 |" in markdown_report(result, "boutique")


def test_the_gate_stops_a_model_below_the_minimum_accuracy(prepared: Path, trained: Path) -> None:
    result = evaluate(trained, prepared, GateConfig(min_accuracy=1.01))
    assert not result.passed and "below the minimum 1.010" in result.reasons[0]


def test_the_gate_compares_with_production_on_the_same_test_photos(
    prepared: Path, trained: Path, production: Path
) -> None:
    same = evaluate(trained, prepared, GateConfig(min_accuracy=0.0, max_regression=0.0), production)
    assert same.production_version == "v000001"
    assert same.production_accuracy == pytest.approx(same.accuracy, abs=1e-9)
    assert same.passed


def test_the_gate_stops_a_regression_against_production(
    prepared: Path, trained: Path, production: Path
) -> None:
    shuffled = _saved_with(trained, prepared.parent / "worse", lambda kernel: np.roll(kernel, 1, axis=1))
    result = evaluate(shuffled, prepared, GateConfig(min_accuracy=0.0, max_regression=0.01), production)
    assert result.production_accuracy is not None and result.production_accuracy > 1 / len(result.labels)
    assert not result.passed and "fell from" in result.reasons[0]


def _saved_with(trained: Path, out: Path, change: Callable[[np.ndarray], np.ndarray]) -> Path:
    """The trained model, each network's output kernel (a column per product) changed, in ``out``."""
    model = load_keras_model(trained / KERAS_FILE)
    for network in members(model):
        (kernel,) = network.get_layer("probabilities").get_weights()
        network.get_layer("probabilities").set_weights([change(kernel.copy())])
    out.mkdir(exist_ok=True)
    model.save(out / KERAS_FILE)
    return out


def test_the_gate_stops_a_model_that_unlearnt_one_product_even_when_the_average_holds(
    prepared: Path, trained: Path, production: Path
) -> None:
    def never_first(kernel: np.ndarray) -> np.ndarray:
        kernel[:, 0] = -kernel[:, 0]  # the first product's direction turned away from its photos
        return kernel

    unlearnt = _saved_with(trained, prepared.parent / "unlearnt", never_first)
    lenient = GateConfig(min_accuracy=0.0, max_regression=1.0, max_class_drop=0.1)
    result = evaluate(unlearnt, prepared, lenient, production)
    first = result.labels[0]
    assert result.recall[first] == 0.0 and result.production_recall[first] > 0.1
    assert not result.passed and any(r.startswith(f"recall of {first} fell") for r in result.reasons)
    assert "| production recall |" in markdown_report(result, "boutique")


def _prepared_without(prepared: Path, sku: str, retired: list[str]) -> Path:
    """The same photos less one product, as ingest would snapshot them after ``sku`` left the catalogue."""
    root = prepared.parent / f"without-{sku}-{len(retired)}"
    snap = root / "snap"
    catalogue = PreparedData(prepared).catalogue
    source = prepared.parent / "snap"
    for folder in (source / IMAGES_DIR).iterdir():
        if folder.name != sku:
            shutil.copytree(folder, snap / IMAGES_DIR / folder.name)
    (snap / "catalogue.json").write_bytes(catalogue.without([sku]).to_bytes())
    snapshot = Manifest(
        kind="dataset", name="s", version="v", files=entries_for_dir(snap), metadata={"retired": retired}
    )
    (snap / MANIFEST).write_bytes(snapshot.to_bytes())
    prepare(snap, root / "prepared", SIZE)
    train(root / "prepared", root / "trained", TrainConfig(epochs=2, patience=2))
    return root


def test_the_gate_stops_a_model_that_forgot_a_product_the_edge_still_sells(
    prepared: Path, production: Path
) -> None:
    sku = PreparedData(prepared).labels[0]
    root = _prepared_without(prepared, sku, retired=[])
    lenient = GateConfig(min_accuracy=0.0, max_regression=1.0, max_class_drop=1.0)
    result = evaluate(root / "trained", root / "prepared", lenient, production)
    assert not result.passed and any(f"does not know ['{sku}']" in r for r in result.reasons)


def test_a_model_may_forget_a_product_retired_on_purpose(prepared: Path, production: Path) -> None:
    sku = PreparedData(prepared).labels[0]
    root = _prepared_without(prepared, sku, retired=[sku])
    lenient = GateConfig(min_accuracy=0.0, max_regression=1.0, max_class_drop=1.0)
    assert evaluate(root / "trained", root / "prepared", lenient, production).passed


def test_no_photos_give_empty_outputs_of_each_outputs_shape(trained: Path) -> None:
    outputs = litert_predict(trained / TFLITE_FILE, np.zeros((0, SIZE, SIZE, 3), np.float32))

    labels = json.loads((trained / LABELS_FILE).read_text())
    assert outputs.probabilities.shape == (0, len(labels))
    assert outputs.cosine is not None and outputs.cosine.shape == (0,)


def test_export_writes_the_version_folder_the_edge_loads_with_a_manifest_of_every_file(
    prepared: Path, trained: Path, tmp_path: Path
) -> None:
    evaluation = evaluate(trained, prepared, GateConfig(min_accuracy=0.0))
    manifest = export_trained(
        trained, prepared, tmp_path / "v", SIZE, evaluation.metrics(), {"datasets": ["b@v000001"]}
    )
    root = tmp_path / "v"
    assert manifest == Manifest.from_bytes((root / MANIFEST).read_bytes(), "export")
    manifest.verify_dir(root)
    assert {TFLITE_FILE, LABELS_FILE, "catalogue.json", "model_card.md", KERAS_FILE} <= set(manifest.files)
    assert any(name.startswith(f"{SAVED_MODEL_DIR}/") for name in manifest.files)
    assert (manifest.name, manifest.version, manifest.labels) == (
        "boutique-products",
        UNPUBLISHED,
        evaluation.labels,
    )
    assert manifest.metadata["image_size"] == SIZE and manifest.metrics["accuracy"] == evaluation.accuracy
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(root / TFLITE_FILE))
    (inp,) = interpreter.get_input_details()
    outputs = interpreter.get_signature_runner().get_output_details()
    assert list(inp["shape"]) == [1, SIZE, SIZE, 3] and inp["dtype"] == np.float32
    assert list(outputs["probabilities"]["shape"]) == [1, len(manifest.labels)]
    assert list(outputs["cosine"]["shape"]) == [1]
    assert OpenSet.from_bytes((root / OPENSET_FILE).read_bytes(), "export").min_cosine is not None
    test = PreparedData(prepared).split("test")
    litert = litert_predict(root / TFLITE_FILE, test.x)
    assert (litert.probabilities.argmax(axis=1) == test.y).mean() == pytest.approx(evaluation.accuracy)
    assert litert.cosine is not None and bool((abs(litert.cosine) <= 1.0).all())


def test_warm_start_keeps_what_production_learnt_for_the_skus_it_knew(production: Path) -> None:
    old_labels = json.loads((production / LABELS_FILE).read_text())
    new_labels = sorted([*old_labels, "KOMBU-GNG"])
    model = build_model(len(new_labels), SIZE)
    assert warm_start(model, production, new_labels)

    old = members(load_keras_model(production / KERAS_FILE))[0]
    old_kernel = old.get_layer("probabilities").get_weights()[0]
    new_kernel = model.get_layer("probabilities").get_weights()[0]
    for i, sku in enumerate(old_labels):
        np.testing.assert_array_equal(new_kernel[:, new_labels.index(sku)], old_kernel[:, i])
    assert not warm_start(build_model(2, SIZE), production, ["CAVIAR-50", "KOMBU-GNG"])


def test_each_network_of_the_ensemble_warm_starts_from_its_own_in_production(production: Path) -> None:
    labels = json.loads((production / LABELS_FILE).read_text())
    old = members(load_keras_model(production / KERAS_FILE))
    assert len(old) == TrainConfig().members
    for k, network in enumerate(old):
        model = build_model(len(labels), SIZE)
        assert warm_start(model, production, labels, member=k)
        for a, b in zip(model.get_weights(), network.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_ensemble_answers_the_mean_of_its_networks(prepared: Path, trained: Path) -> None:
    model = load_keras_model(trained / KERAS_FILE)
    networks = members(model)
    x = PreparedData(prepared).split("test").x
    answers = [keras_predict(serving_model(network), x) for network in networks]
    together = keras_predict(serving_model(model), x)
    assert not np.allclose(answers[0].probabilities, answers[1].probabilities, atol=1e-3)
    mean = np.mean([a.probabilities for a in answers], axis=0)
    np.testing.assert_allclose(together.probabilities, mean, atol=1e-5)
    assert together.cosine is not None
    np.testing.assert_allclose(together.cosine, np.mean([a.cosine for a in answers], axis=0), atol=1e-5)


def test_an_ensemble_of_no_networks_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least one network"):
        TrainConfig(members=0)


def test_an_evaluation_survives_the_trip_through_its_file(
    prepared: Path, trained: Path, tmp_path: Path
) -> None:
    result = evaluate(trained, prepared, GateConfig())
    result.save(tmp_path / "e.json")
    assert Evaluation.load(tmp_path / "e.json") == result


def test_training_twice_with_the_same_seed_gives_the_same_model(prepared: Path) -> None:
    """Two step processes side by side, as two pipeline runs would be: the parallel input
    pipeline's scheduling differs between them, the weights must not."""

    code = (
        "import sys; from pathlib import Path; from components.train import TrainConfig, train;"
        "train(Path(sys.argv[1]), Path(sys.argv[2]), TrainConfig(epochs=25, patience=25))"
    )
    outs = [prepared.parent / f"again-{run}" for run in ("a", "b")]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(prepared), str(out)]) for out in outs]
    assert [proc.wait(timeout=600) for proc in procs] == [0, 0]
    first, second = (load_keras_model(out / KERAS_FILE).get_weights() for out in outs)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
