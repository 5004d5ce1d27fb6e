"""The sensor model's quality on held-out injected faults: F1, recall per fault kind, false alarms.

    .venv/bin/python bench/sensor_quality.py [--machines 3] [--days 4] [--faults 10] [--epochs 20]

Each machine's generated telemetry (``edgecore.synthetic.telemetry``, faults of every kind
injected in its second half) is cut in two: the autoencoder learns the normal windows of
the first half (70 %; the other 30 % choose the threshold, as training does), and is
judged on every window of the second half, scored through the exported LiteRT file the
edge runs.  A window is faulty when any of its readings is.  Printed per threshold
quantile, with the 99.5 % the pipeline uses as the baseline.
Targets (issue 19): F1 ≥ 0.9, each kind reported; ≤ 1 false alarm per 10,000 normal windows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from components.anomaly import export_sensor_model, reconstruction_errors, train_autoencoder, windows
from edgecore.synthetic.telemetry import FAULT_KINDS, SENSORS, generate
from foundation.sensor_model import Normalisation, SensorModel
from serving.anomaly import WindowScorer

QUANTILES = (0.995, 0.999, 0.9999)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--machines", type=int, default=3)
    parser.add_argument("--days", type=float, default=4.0)
    parser.add_argument("--faults", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    normal, test_x, test_y = [], [], []
    for m in range(args.machines):
        series = generate(f"machine-{m}", args.days * 24, seed=100 + m, faults=args.faults)
        x, y = windows(series.values, series.labels)
        half = len(x) // 2
        normal.append(x[:half][y[:half] == 0])
        test_x.append(x[half:])
        test_y.append(y[half:])
    learn = np.concatenate(normal)
    cut = int(len(learn) * 0.7)
    x, y = np.concatenate(test_x), np.concatenate(test_y)
    scale = Normalisation.fit(learn[:cut], SENSORS)
    model = train_autoencoder(scale.apply(learn[:cut]), epochs=args.epochs, seed=0)
    held_out = reconstruction_errors(model, scale.apply(learn[cut:]))
    with tempfile.TemporaryDirectory() as tmp:
        spec = SensorModel(normalisation=scale, window=x.shape[1], threshold=1.0)
        export_sensor_model(model, spec, Path(tmp) / "v", scale.apply(x[:64]), "quality-sensors", {})
        errors = WindowScorer(Path(tmp) / "v").errors(x)
    faulty = y > 0
    table = Table(title=f"{len(x)} held-out windows ({int(faulty.sum())} faulty), {args.machines} machines")
    for column in ("quantile", "precision", "recall", "F1", "false alarms / 10k", *FAULT_KINDS):
        table.add_column(column, justify="right")
    for q in QUANTILES:
        flagged = errors > np.quantile(held_out, q)
        hits = int((flagged & faulty).sum())
        precision = hits / max(int(flagged.sum()), 1)
        recall = hits / max(int(faulty.sum()), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        false_alarms = (flagged & ~faulty).sum() / max(int((~faulty).sum()), 1) * 10_000
        kinds = [
            f"{flagged[y == k + 1].mean():.2f}" if (y == k + 1).any() else "-"
            for k in range(len(FAULT_KINDS))
        ]
        label = f"{q:.4f}" + (" (baseline)" if q == QUANTILES[0] else "")
        table.add_row(label, f"{precision:.3f}", f"{recall:.3f}", f"{f1:.3f}", f"{false_alarms:.1f}", *kinds)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
