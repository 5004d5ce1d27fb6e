"""evaluate: how good the candidate is, and the quality gate that decides if it ships.

The gate has two rules: a minimum test accuracy, and no regression beyond a margin
against the edge's current production model, both measured on the same test split
(the production model is scored only on the SKUs it knows, and the candidate on the
same photos).  Both models are scored through their LiteRT file, the artefact the edge
actually serves (the train step writes the candidate's; a Keras-only model folder is scored
with Keras), so this step needs no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from components.artefacts import KERAS_FILE, configure_tensorflow, has_serving_files, litert_predict
from components.prepare import PreparedData
from foundation.layout import LABELS_FILE, MANIFEST, TFLITE_FILE
from foundation.manifest import Manifest

EVALUATION_FILE = "evaluation.json"


@dataclass(frozen=True)
class GateConfig:
    min_accuracy: float = 0.9
    max_regression: float = 0.01


@dataclass
class Evaluation:
    labels: list[str]
    accuracy: float
    test_images: int
    precision: dict[str, float]
    recall: dict[str, float]
    support: dict[str, int]
    confusion: list[list[int]]
    production_version: str | None = None
    production_accuracy: float | None = None
    candidate_accuracy_on_production_labels: float | None = None
    passed: bool = False
    reasons: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for the model manifest, the event and KFP ``Metrics``."""
        flat = {"accuracy": self.accuracy, "test_images": float(self.test_images)}
        for sku in self.labels:
            flat[f"precision.{sku}"] = self.precision[sku]
            flat[f"recall.{sku}"] = self.recall[sku]
        if self.production_accuracy is not None and self.candidate_accuracy_on_production_labels is not None:
            flat["production_accuracy"] = self.production_accuracy
            flat["accuracy_on_production_labels"] = self.candidate_accuracy_on_production_labels
        return flat

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Evaluation:
        return cls(**json.loads(path.read_text()))


def confusion_matrix(
    y_true: npt.NDArray[np.int64], y_pred: npt.NDArray[np.int64], n: int
) -> npt.NDArray[np.int64]:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def candidate_probabilities(model_dir: Path, x: npt.NDArray[np.float32], threads: int = 1) -> Any:
    """The candidate's probabilities: from its LiteRT file when train wrote one, else from Keras."""
    if has_serving_files(model_dir):
        return litert_predict(model_dir / TFLITE_FILE, x)
    configure_tensorflow(threads)
    import keras

    model: Any = keras.models.load_model(model_dir / KERAS_FILE, compile=False)
    return model.predict(x, verbose=0, batch_size=64)


def _production_comparison(
    production: Path,
    labels: list[str],
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int32],
    predicted: npt.NDArray[np.int64],
) -> tuple[str, float, float] | None:
    """(version, production accuracy, candidate accuracy) on the test photos of SKUs both know."""
    manifest_file = production / MANIFEST
    if not manifest_file.is_file():
        return None
    manifest = Manifest.from_bytes(manifest_file.read_bytes(), str(manifest_file))
    old_labels = list(json.loads((production / LABELS_FILE).read_text()))
    known = np.isin(np.asarray(labels)[y], old_labels)
    if not known.any():
        return None
    probabilities = litert_predict(production / TFLITE_FILE, x[known])
    old_predicted = np.asarray(old_labels)[probabilities.argmax(axis=1)]
    truth = np.asarray(labels)[y[known]]
    production_accuracy = float(np.mean(old_predicted == truth))
    candidate_accuracy = float(np.mean(predicted[known] == y[known]))
    return manifest.version, production_accuracy, candidate_accuracy


def evaluate(
    model_dir: Path, prepared: Path, gate: GateConfig, production: Path | None = None, threads: int = 1
) -> Evaluation:
    data = PreparedData(prepared)
    labels = data.labels
    test = data.split("test")
    predicted = np.asarray(candidate_probabilities(model_dir, test.x, threads).argmax(axis=1), dtype=np.int64)
    truth = test.y.astype(np.int64)
    matrix = confusion_matrix(truth, predicted, len(labels))
    predicted_counts, true_counts, hits = matrix.sum(axis=0), matrix.sum(axis=1), np.diag(matrix)
    evaluation = Evaluation(
        labels=labels,
        accuracy=float(hits.sum() / max(1, len(truth))),
        test_images=len(truth),
        precision={
            s: float(hits[i] / predicted_counts[i]) if predicted_counts[i] else 0.0
            for i, s in enumerate(labels)
        },
        recall={s: float(hits[i] / true_counts[i]) if true_counts[i] else 0.0 for i, s in enumerate(labels)},
        support={s: int(true_counts[i]) for i, s in enumerate(labels)},
        confusion=matrix.tolist(),
    )
    if evaluation.accuracy < gate.min_accuracy:
        evaluation.reasons.append(
            f"test accuracy {evaluation.accuracy:.3f} is below the minimum {gate.min_accuracy:.3f}"
        )
    if production is not None and (
        found := _production_comparison(production, labels, test.x, test.y, predicted)
    ):
        version, old_accuracy, new_accuracy = found
        evaluation.production_version = version
        evaluation.production_accuracy = old_accuracy
        evaluation.candidate_accuracy_on_production_labels = new_accuracy
        if new_accuracy < old_accuracy - gate.max_regression:
            evaluation.reasons.append(
                f"accuracy on the SKUs of production {version} fell from {old_accuracy:.3f} to "
                f"{new_accuracy:.3f}, more than the allowed {gate.max_regression:.3f}"
            )
    evaluation.passed = not evaluation.reasons
    return evaluation


def markdown_report(evaluation: Evaluation, edge: str, prepare_report: dict[str, Any] | None = None) -> str:
    """The human summary shown in the KFP dashboard."""
    verdict = "✅ passed" if evaluation.passed else "❌ failed: " + "; ".join(evaluation.reasons)
    lines = [
        f"# Model for edge `{edge}`",
        "",
        f"**Quality gate:** {verdict}",
        "",
        f"Test accuracy **{evaluation.accuracy:.1%}** on {evaluation.test_images} photos.",
    ]
    if evaluation.production_version:
        lines.append(
            f"Production {evaluation.production_version}: {evaluation.production_accuracy:.1%}; "
            f"candidate on the same SKUs: {evaluation.candidate_accuracy_on_production_labels:.1%}."
        )
    lines += ["", "| SKU | precision | recall | test photos |", "|---|---:|---:|---:|"]
    for sku in evaluation.labels:
        precision, recall = evaluation.precision[sku], evaluation.recall[sku]
        lines.append(f"| {sku} | {precision:.1%} | {recall:.1%} | {evaluation.support[sku]} |")
    if prepare_report:
        dropped = prepare_report.get("dropped", {})
        lines += [
            "",
            f"Data: {prepare_report.get('kept')} photos kept of {prepare_report.get('seen')}; dropped "
            + ", ".join(f"{n} {reason}" for reason, n in dropped.items())
            + f"; {prepare_report.get('faces_blurred')} faces blurred.",
        ]
    return "\n".join(lines) + "\n"
