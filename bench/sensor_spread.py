"""How often the sensor gate refuses a model for its seed alone: the rule as it stood, then the gate now.

    .venv/bin/python bench/sensor_spread.py [--seeds 12] [--machines 2] [--hours 48] [--faults 6]
    .venv/bin/python bench/sensor_spread.py --prepared <a run's sensor-prepare-op/prepared folder>

The same windows (generated telemetry through the pipeline's own prepare step, or a run's
prepared folder, the demo's for one) are trained once per seed and judged by the pipeline's
evaluate step.  A new seed stands for what another CPU's rounding does to the same run, so
every ordered pair of seeds (one as the edge's model, the other as the candidate, both
learnt from the same data) that a regression rule refuses is a refusal by chance.  The
baseline is the rule as it stood: precision and the share of faulty windows flagged may each fall
at most 0.02 below the edge's model's; the gate now (``components.sensor_gate``): precision within
0.02, window recall within 0.25, and no labelled fault the edge's model alarms on
(``components.anomaly.alarmed_faults``) left without an alarm.  It also names the seeds whose
model the gate's absolute floors alone would refuse, with no model at the edge to compare against.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from components.sensor_gate import Production, SensorGate, regressions
from components.sensor_steps import SensorEvaluation, evaluate_sensors, prepare_telemetry, train_sensors
from edgecore.synthetic.telemetry import generate
from foundation.layout import TELEMETRY_DIR
from foundation.telemetry import write_csv


def refused_before(edge: SensorEvaluation, candidate: SensorEvaluation) -> bool:
    """The rule as it stood: precision and window recall each within 0.02 of the edge's model's."""
    assert edge.precision is not None and candidate.precision is not None
    assert edge.recall is not None and candidate.recall is not None
    return candidate.precision < edge.precision - 0.02 or candidate.recall < edge.recall - 0.02


def refused_now(edge: SensorEvaluation, candidate: SensorEvaluation) -> bool:
    """The gate's rule (``components.sensor_gate.regressions``), the edge's model being ``edge``."""
    assert edge.precision is not None and edge.recall is not None and edge.alarmed is not None
    assert candidate.precision is not None and candidate.recall is not None and candidate.alarmed is not None
    before = Production(edge.precision, edge.recall, frozenset(edge.alarmed))
    alarmed = set(candidate.alarmed)
    return bool(
        regressions(candidate.precision, candidate.recall, alarmed, candidate.faults, before, SensorGate())
    )


def generated(folder: Path, machines: int, hours: float, faults: int) -> Path:
    """Each machine's generated telemetry, prepared as the pipeline prepares a dataset."""
    snapshot = folder / "snapshot" / TELEMETRY_DIR / "bench-telemetry@v000001"
    snapshot.mkdir(parents=True)
    for m in range(machines):
        write_csv(
            [generate(f"machine-{m}", hours, seed=200 + m, faults=faults)], snapshot / f"machine-{m}.csv"
        )
    prepare_telemetry(folder / "snapshot", folder / "prepared")
    return folder / "prepared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--machines", type=int, default=2)
    parser.add_argument("--hours", type=float, default=48.0)
    parser.add_argument("--faults", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prepared", type=Path, help="a run's prepared windows instead of generated ones")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        prepared = args.prepared or generated(Path(scratch), args.machines, args.hours, args.faults)
        runs = []
        for seed in track(range(args.seeds), description="one model per seed"):
            model = Path(scratch) / f"model-{seed}"
            train_sensors(prepared, model, epochs=args.epochs, seed=seed)
            runs.append(evaluate_sensors(prepared, model, None))
    recalls = [r.recall or 0.0 for r in runs]
    caught = [r.faults_caught or 0 for r in runs]
    pairs = args.seeds * (args.seeds - 1)
    table = Table(title=f"{runs[0].faults} labelled faults, {args.seeds} seeds, {pairs} ordered pairs")
    for column in ("regression rule", "refused by chance", "ratio to baseline"):
        table.add_column(column, justify="right")
    rules = (("window recall within 0.02 (baseline)", refused_before), ("the gate now", refused_now))
    counts = [sum(rule(a, b) for a in runs for b in runs if a is not b) for _, rule in rules]
    for (label, _), count in zip(rules, counts, strict=True):
        table.add_row(
            label, f"{count} ({count / pairs:.0%})", f"{count / counts[0]:.2f}" if counts[0] else "-"
        )
    Console(width=160).print(table)
    middle = statistics.median(recalls)
    print(f"window recall per seed: min {min(recalls):.4f} median {middle:.4f} max {max(recalls):.4f}")
    print(f"faults caught per seed: {caught} of {runs[0].faults}")
    precisions = [r.precision or 0.0 for r in runs]
    floored = [seed for seed, r in enumerate(runs) if not r.passed]
    print(
        f"precision per seed: min {min(precisions):.4f} median {statistics.median(precisions):.4f}"
        f" max {max(precisions):.4f}; seeds the gate's floors alone refuse: {floored or 'none'}"
    )


if __name__ == "__main__":
    main()
