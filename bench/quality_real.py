"""Model quality on real photographs (the sample photos scikit-image and matplotlib ship,
printed on product boxes and photographed at a generated kiosk), through the steps the
pipeline runs: prepare, train, evaluate, export.

* top-1 on held-out photos: 8 products from scratch; then 2 new products warm-started from
  that model (new products' recall, old products against the first model on the same test
  photos); the same 10 products from scratch (baseline: the warm start);
* open set: the share of photos of products a model never saw that it flags unsure, and of
  held-out photos of products it knows, by the shipped rule (largest cosine) and by the one
  before it (calibrated top-1, baseline) on the same model, with each score's AUROC;
* prepare: images/s with the privacy blur and without (baseline: with).

    .venv/bin/python bench/quality_real.py [--images 60] [--epochs 40] [--size 64] [--members 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.evaluate import Evaluation, GateConfig, candidate_outputs, evaluate
from components.export import export_trained
from components.ingest import IMAGES_DIR
from components.prepare import PreparedData, prepare
from components.train import TrainConfig, train
from edgecore.synthetic import real
from foundation.layout import CATALOGUE_FILE, MANIFEST
from foundation.manifest import Manifest
from foundation.openset import OPENSET_FILE, OpenSet, decide
from foundation.preprocessing import preprocess

SKUS = [p.sku for p in real.SOURCES]
FIRST, NEW, UNSEEN = SKUS[:8], SKUS[8:10], SKUS[10:]
SEED = 11


@dataclass(frozen=True)
class Round:
    name: str
    model: Path
    prepared: Path
    evaluation: Evaluation
    epochs: int
    seconds: float


def snapshot(work: Path, name: str, skus: list[str], blur: bool = False) -> Path:
    """An ingest-shaped folder of the generated photos of ``skus`` (optionally asking for blurring)."""
    root = work / name
    for sku in skus:
        shutil.copytree(work / "photos" / real.EDGE / sku, root / IMAGES_DIR / sku)
    (root / CATALOGUE_FILE).write_bytes(real.catalogue(skus).to_bytes())
    images = sorted(p.relative_to(root).as_posix() for p in (root / IMAGES_DIR).rglob("*.jpg"))
    metadata = {"blur_faces": images if blur else [], "retired": []}
    manifest = Manifest(kind="dataset", name=name, version="v", files={}, metadata=metadata)
    (root / MANIFEST).write_bytes(manifest.to_bytes())
    return root


def run_round(
    work: Path, name: str, skus: list[str], args: argparse.Namespace, production: Path | None
) -> Round:
    prepared, model = work / f"{name}-prepared", work / f"{name}-model"
    prepare(snapshot(work, name, skus), prepared, args.size)
    config = TrainConfig(epochs=args.epochs, outlier_weight=args.outlier_weight, members=args.members)
    result = train(prepared, model, config, production)
    evaluation = evaluate(model, prepared, GateConfig(), production)
    return Round(name, model, prepared, evaluation, result.epochs_run, result.seconds)


def published(work: Path, round_: Round, size: int) -> Path:
    """The round's model exported as the pipeline exports it: what the next round compares with."""
    out = work / f"{round_.name}-export"
    manifest = export_trained(round_.model, round_.prepared, out, size, round_.evaluation.metrics(), {})
    (out / MANIFEST).write_bytes(manifest.model_copy(update={"version": "v000001"}).to_bytes())
    return out


RULES = ("largest cosine (shipped)", "calibrated top-1 (before)")


def open_set_scores(round_: Round, x: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    """For each of :data:`RULES`, on the same outputs of the round's model: the share of ``x`` it
    flags unsure, and each photo's score (higher: more like a product the model knows)."""
    outputs = candidate_outputs(round_.model, x)
    openset = OpenSet.from_bytes((round_.model / OPENSET_FILE).read_bytes(), "openset")
    by_confidence = openset.model_copy(update={"min_cosine": None})
    if outputs.cosine is None:
        raise SystemExit(f"{round_.model}: the model outputs no cosine")
    flagged = [float((~decide(outputs, rule, 0.0).recognized).mean()) for rule in (openset, by_confidence)]
    return flagged, [outputs.cosine, decide(outputs, by_confidence, 0.0).confidence]


def flagged_at(known: np.ndarray, unseen: np.ndarray, known_rate: float) -> float:
    """The share of unseen photos flagged at the threshold that flags at most ``known_rate`` of the
    known ones: two scores compared at the same cost, whatever thresholds training chose."""
    threshold = np.sort(known)[int(known_rate * len(known))]
    return float((unseen < threshold).mean())


def auroc(known: np.ndarray, unseen: np.ndarray) -> float:
    """The chance that a known photo scores above an unseen one (ties count half): how well a
    score separates the two whatever the threshold."""
    diff = known[:, None] - unseen[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def unseen_photos(photos: Path, skus: list[str], size: int) -> np.ndarray:
    """The photos of ``skus``, preprocessed as serving does."""
    files = [f for sku in skus for f in sorted((photos / sku).glob("*.jpg"))]
    return np.stack([preprocess(f.read_bytes(), size) for f in files])


def prepare_rates(work: Path, size: int) -> tuple[float, float, int]:
    """images/s of prepare with the blur on every photo, then with none; faces found on the way."""
    rates = []
    faces = 0
    for blur in (True, False):
        snap = snapshot(work, f"prepare-blur-{blur}", SKUS, blur=blur)
        started = time.perf_counter()
        report = prepare(snap, work / f"prepare-blur-{blur}-out", size)
        rates.append(report.seen / (time.perf_counter() - started))
        faces += report.faces_blurred
    return rates[0], rates[1], faces


def report_rounds(first: Round, warm: Round, scratch: Round) -> None:
    e1, ew, es = first.evaluation, warm.evaluation, scratch.evaluation
    print(
        f"8 products from scratch:  top-1 {e1.accuracy:.1%} on {e1.test_images} held-out photos "
        f"({first.epochs} epochs, trained in {first.seconds:.0f} s)"
    )
    new_recall = np.mean([ew.recall[s] for s in NEW])
    old, now = ew.production_accuracy, ew.candidate_accuracy_on_production_labels
    print(
        f"+2 products, warm start:  top-1 {ew.accuracy:.1%}; new products {new_recall:.1%} "
        f"({warm.epochs} epochs)"
    )
    if old is not None and now is not None:
        print(f"  old products, same test photos: {old:.1%} -> {now:.1%} ({(now - old) * 100:+.1f} points)")
    print(f"  gate: {'passed' if ew.passed else '; '.join(ew.reasons)}")
    print(f"10 products from scratch: top-1 {es.accuracy:.1%} ({scratch.epochs} epochs)")
    print(f"  ratio scratch / warm start top-1 = {es.accuracy / ew.accuracy:.3f} (goal: within one point)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=60, help="photos per product")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--outlier-weight", type=float, default=TrainConfig.outlier_weight, help="0: no outlier exposure"
    )
    parser.add_argument(
        "--members", type=int, default=TrainConfig.members, help="networks averaged (1: a single one)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        real.generate(work / "photos", SKUS, SEED, args.images)
        with_blur, without_blur, faces = prepare_rates(work, args.size)
        print(
            f"prepare: {with_blur:.0f} images/s with the blur, {without_blur:.0f} without "
            f"(ratio without / with = {without_blur / with_blur:.2f}); faces found: {faces} "
            f"(photos showing a face: {sum(p.sku in real.WITH_FACES for p in real.SOURCES) * args.images})"
        )
        first = run_round(work, "first", FIRST, args, None)
        warm = run_round(work, "warm", FIRST + NEW, args, published(work, first, args.size))
        scratch = run_round(work, "scratch", FIRST + NEW, args, None)
        report_rounds(first, warm, scratch)
        photos = work / "photos" / real.EDGE
        for round_, skus in ((first, NEW + UNSEEN), (warm, UNSEEN)):
            unseen, unseen_scores = open_set_scores(round_, unseen_photos(photos, skus, args.size))
            known, known_scores = open_set_scores(round_, PreparedData(round_.prepared).split("test").x)
            print(
                f"open set ({len(round_.evaluation.labels)}-product model; photos of {len(skus)} unseen "
                "products; goal >= 90 % of them flagged, <= 2 % of held-out known photos):"
            )
            for i, rule in enumerate(RULES):
                print(
                    f"  {rule}: unseen {unseen[i]:.1%}, known {known[i]:.1%}; AUROC "
                    f"{auroc(known_scores[i], unseen_scores[i]):.3f}, unseen flagged where at most 2 % "
                    f"of known are: {flagged_at(known_scores[i], unseen_scores[i], 0.02):.1%}"
                )
            print(f"  ratio unseen flagged, shipped / before = {unseen[0] / max(unseen[1], 1e-9):.2f}")


if __name__ == "__main__":
    main()
