"""Model quality on the generated catalogue: test accuracy per edge (goal ≥ 95 %), then the
new-product round at the hypermarket: accuracy on the new product (goal ≥ 95 %) and the change
on the old products against the previous model on the same test photos (goal: drop ≤ 1 point).

    .venv/bin/python bench/quality.py [--images 60] [--epochs 40]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pipeline_runs import evaluations, isolated_settings, upload_demo

from edgecore.synthetic.products import HYPERMARKET, NEW_PRODUCT_EDGE, new_product
from pipelines.submit import run_local


def main() -> None:
    """Round 1 trains every edge; round 2 adds a product at the hypermarket and compares with round 1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=60, help="photos per product")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    settings = isolated_settings()
    edges = ["hypermarket", "boutique"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        upload_demo(settings, root / "round1", args.seed, args.images, edges)
        first = run_local(root / "run1", {"edges": edges, "datasets": edges, "epochs": args.epochs})
        for edge, result in sorted(evaluations(root / "run1").items()):
            gate = "published" if result.passed else f"stopped: {'; '.join(result.reasons)}"
            accuracy = f"test accuracy {result.accuracy:.1%} on {result.test_images} photos"
            print(f"round 1 {edge:>12}: {accuracy} ({gate})")
        print(f"round 1 wall {first.wall_s:.0f} s, steps' compute {first.compute_s:.0f} s")

        upload_demo(settings, root / "round2", args.seed, args.images, [NEW_PRODUCT_EDGE], new_product=True)
        second = run_local(
            root / "run2", {"edges": [HYPERMARKET], "datasets": [HYPERMARKET], "epochs": args.epochs}
        )
        result = evaluations(root / "run2")[HYPERMARKET]
        sku = new_product().sku
        print(
            f"round 2 {HYPERMARKET}: test accuracy {result.accuracy:.1%}; new product {sku} recall "
            f"{result.recall[sku]:.1%}, precision {result.precision[sku]:.1%}"
        )
        old, new = result.production_accuracy, result.candidate_accuracy_on_production_labels
        if old is not None and new is not None:
            print(
                f"old products, same test photos: {result.production_version} {old:.1%} "
                f"-> new {new:.1%} ({(new - old) * 100:+.1f} points)"
            )
        print(f"round 2 gate: {'published' if result.passed else result.reasons}; wall {second.wall_s:.0f} s")


if __name__ == "__main__":
    main()
