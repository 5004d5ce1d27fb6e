"""evaluate: how good the candidate is, and the quality gate that decides if it ships.

The gate holds the candidate to three rules, all on the same test split: an absolute
floor on its accuracy; against the model the edge serves now (production), no drop of
more than a margin on production's products as a whole; and for each product production
knows, no drop of its recall beyond a per-product tolerance, nor forgetting it, unless it
was retired on purpose from the edge's catalogue.  A model that trained on a shrunken
catalogue, or learnt a new product by unlearning an old one, does not ship.  Both models
are scored through their LiteRT file, the artefact the edge serves (a Keras-only model
folder is scored with Keras), so this step needs no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from components.artefacts import (
    KERAS_FILE,
    configure_tensorflow,
    has_serving_files,
    keras_predict,
    litert_predict,
    load_keras_model,
)
from components.head import serving_model
from components.prepare import PreparedData
from foundation.layout import LABELS_FILE, MANIFEST, TFLITE_FILE
from foundation.manifest import Manifest
from foundation.openset import OPENSET_FILE, OpenSet, Outputs, decide

EVALUATION_FILE = "evaluation.json"


@dataclass(frozen=True)
class GateConfig:
    min_accuracy: float = 0.9
    """The floor: test accuracy of the candidate over all its products."""
    max_regression: float = 0.01
    """Largest drop of accuracy on production's products, taken together."""
    max_class_drop: float = 0.1
    """Largest drop of any one product's recall against production (a few test photos each)."""


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
    production_recall: dict[str, float] = field(default_factory=dict)
    """Production's recall per product it knows, on the same test photos."""
    flagged_known: float | None = None
    """Share of the test photos (all of known products) the version's open-set rule flags unsure."""
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
        for sku, recall in self.production_recall.items():
            flat[f"production_recall.{sku}"] = recall
        if self.flagged_known is not None:
            flat["flagged_known"] = self.flagged_known
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


def candidate_outputs(model_dir: Path, x: npt.NDArray[np.float32], threads: int = 1) -> Outputs:
    """What the candidate answers: from its LiteRT file when train wrote one, else from Keras."""
    if has_serving_files(model_dir):
        return litert_predict(model_dir / TFLITE_FILE, x)
    configure_tensorflow(threads)
    return keras_predict(serving_model(load_keras_model(model_dir / KERAS_FILE)), x)


@dataclass(frozen=True)
class _Production:
    version: str
    labels: list[str]
    predicted: npt.NDArray[np.str_]
    """Production's answer (a SKU) for each test photo of a product it knows."""
    known: npt.NDArray[np.bool_]
    """Which test photos show a product production knows."""


def _production(
    production: Path, labels: list[str], x: npt.NDArray[np.float32], y: npt.NDArray[np.int32]
) -> _Production | None:
    manifest_file = production / MANIFEST
    if not manifest_file.is_file():
        return None
    manifest = Manifest.from_bytes(manifest_file.read_bytes(), str(manifest_file))
    old_labels = list(json.loads((production / LABELS_FILE).read_text()))
    known = np.isin(np.asarray(labels)[y], old_labels)
    if not known.any():
        return None
    probabilities = litert_predict(production / TFLITE_FILE, x[known]).probabilities
    return _Production(
        manifest.version, old_labels, np.asarray(old_labels)[probabilities.argmax(axis=1)], known
    )


def _compare(
    evaluation: Evaluation, prod: _Production, truth: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]
) -> None:
    """Production's figures beside the candidate's, and the reasons the candidate falls short of it."""
    labels = np.asarray(evaluation.labels)
    true_skus, candidate = labels[truth[prod.known]], labels[predicted[prod.known]]
    evaluation.production_version = prod.version
    evaluation.production_accuracy = float(np.mean(prod.predicted == true_skus))
    evaluation.candidate_accuracy_on_production_labels = float(np.mean(candidate == true_skus))
    for sku in prod.labels:
        shown = true_skus == sku
        if shown.any():
            evaluation.production_recall[sku] = float(np.mean(prod.predicted[shown] == sku))


def _production_reasons(
    evaluation: Evaluation, gate: GateConfig, prod_labels: list[str], retired: list[str]
) -> None:
    old = evaluation.production_accuracy
    new = evaluation.candidate_accuracy_on_production_labels
    version = evaluation.production_version
    if old is not None and new is not None and new < old - gate.max_regression:
        evaluation.reasons.append(
            f"accuracy on the products of production {version} fell from {old:.3f} to {new:.3f}, "
            f"more than the allowed {gate.max_regression:.3f}"
        )
    forgotten = sorted(set(prod_labels) - set(evaluation.labels) - set(retired))
    if forgotten:
        evaluation.reasons.append(
            f"it does not know {forgotten}, which production {version} knows and were not retired "
            "from the edge's catalogue (edgecore catalogue retire)"
        )
    for sku, before in sorted(evaluation.production_recall.items()):
        after = evaluation.recall.get(sku)
        if after is not None and after < before - gate.max_class_drop:
            evaluation.reasons.append(
                f"recall of {sku} fell from {before:.3f} (production {version}) to {after:.3f}, "
                f"more than the allowed {gate.max_class_drop:.3f}"
            )


def evaluate(
    model_dir: Path, prepared: Path, gate: GateConfig, production: Path | None = None, threads: int = 1
) -> Evaluation:
    data = PreparedData(prepared)
    labels = data.labels
    test = data.split("test")
    outputs = candidate_outputs(model_dir, test.x, threads)
    predicted = np.asarray(outputs.probabilities.argmax(axis=1), dtype=np.int64)
    truth = test.y.astype(np.int64)
    evaluation = _scores(labels, truth, predicted)
    openset = _openset(model_dir)
    if openset is not None:  # how often the shipped thresholds flag photos of products it knows
        flagged = ~decide(outputs, openset, 0.0).recognized
        evaluation.flagged_known = float(flagged.mean()) if len(flagged) else 0.0
    if evaluation.accuracy < gate.min_accuracy:
        evaluation.reasons.append(
            f"test accuracy {evaluation.accuracy:.3f} is below the minimum {gate.min_accuracy:.3f}"
        )
    prod = _production(production, labels, test.x, test.y) if production is not None else None
    if prod is not None:
        _compare(evaluation, prod, truth, predicted)
        _production_reasons(evaluation, gate, prod.labels, data.retired)
    evaluation.passed = not evaluation.reasons
    return evaluation


def _openset(model_dir: Path) -> OpenSet | None:
    path = model_dir / OPENSET_FILE
    return OpenSet.from_bytes(path.read_bytes(), str(path)) if path.is_file() else None


def _scores(labels: list[str], truth: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]) -> Evaluation:
    matrix = confusion_matrix(truth, predicted, len(labels))
    predicted_counts, true_counts, hits = matrix.sum(axis=0), matrix.sum(axis=1), np.diag(matrix)
    return Evaluation(
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
    lines += [
        "",
        "| SKU | precision | recall | production recall | test photos |",
        "|---|---:|---:|---:|---:|",
    ]
    for sku in evaluation.labels:
        precision, recall = evaluation.precision[sku], evaluation.recall[sku]
        before = evaluation.production_recall.get(sku)
        shown = "new" if before is None else f"{before:.1%}"
        lines.append(f"| {sku} | {precision:.1%} | {recall:.1%} | {shown} | {evaluation.support[sku]} |")
    if prepare_report:
        dropped = prepare_report.get("dropped", {})
        lines += [
            "",
            f"Data: {prepare_report.get('kept')} photos kept of {prepare_report.get('seen')}; dropped "
            + ", ".join(f"{n} {reason}" for reason, n in dropped.items())
            + f"; {prepare_report.get('faces_blurred')} faces blurred.",
        ]
    return "\n".join(lines) + "\n"
