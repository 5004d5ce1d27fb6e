"""Plumbing: whole local pipeline wall time ÷ the sum of the steps' own compute time.
Goal ≤ 1.15.  Runs the real DAG with kfp.local against the local stack (fresh buckets).

    .venv/bin/python bench/plumbing.py [--images 30] [--epochs 20] [--edges hypermarket] [--in-images]

``--in-images`` then runs the DAG again with each step inside the training image (podman;
``make images`` first), as a cluster would: that ratio includes starting a container per
step, and is printed against the subprocess run of the same command.

With both edges (the default) their branches overlap, so wall ÷ sum of compute credits
the parallelism; wall ÷ the longest edge's compute, and a run with one edge, show the
plumbing overhead itself.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

from pipeline_runs import isolated_settings, upload_demo

from edgecore.images.workshop import step_engine
from edgecore.stack.settings import StackSettings
from pipelines.step_containers import ContainerEngine
from pipelines.submit import LocalRun, run_local


def main() -> None:
    """One run of the DAG (and, with --in-images, one more with each step in its image, after the
    subprocess baseline); its wall time against the steps' own compute, per task and per edge branch."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=30, help="photos per product")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--edges", nargs="+", default=["hypermarket", "boutique"], help="edges to train (one model each)"
    )
    parser.add_argument("--in-images", action="store_true", help="also each step in its image (podman)")
    args = parser.parse_args()
    runners: list[tuple[str, ContainerEngine | None]] = [("subprocesses (baseline)", None)]
    if args.in_images:
        runners.append(("each step in its image", step_engine(StackSettings())))
    edges = list(args.edges)
    ratios = []
    for name, engine in runners:
        settings = isolated_settings()
        with tempfile.TemporaryDirectory() as tmp:
            upload_demo(settings, Path(tmp) / "photos", 21, args.images, edges)
            arguments = {"edges": edges, "datasets": edges, "epochs": args.epochs}
            run = run_local(Path(tmp) / "root", arguments, engine=engine)
        print(f"--- {name}")
        ratios.append(report(run))
    if len(ratios) == 2:
        print(f"ratio in images / baseline = {ratios[1] / ratios[0]:.3f}")


def report(run: LocalRun) -> float:
    """Print one run's figures; its wall ÷ sum of compute."""
    per_task: dict[str, float] = defaultdict(float)
    per_branch: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    process_cpu: dict[str, float] = defaultdict(float)
    for step in run.steps:
        per_task[step["task"]] += float(step["compute_s"])
        per_branch[step["branch"]] += float(step["compute_s"])
        cpu[step["task"]] += float(step["cpu_s"])
        process_cpu[step["task"]] += float(step["process_cpu_s"])
    for task, seconds in sorted(per_task.items(), key=lambda kv: -kv[1]):
        print(
            f"{task:>16}: {seconds:7.1f} s own wall, {cpu[task]:6.1f} s own CPU, "
            f"{process_cpu[task] - cpu[task]:5.1f} s CPU starting the step process (both edges)"
        )
    print(
        f"CPU: steps' own {sum(cpu.values()):.1f} s, step processes in all {sum(process_cpu.values()):.1f} s"
    )
    critical = max(per_branch.values())
    print(f"wall {run.wall_s:.1f} s, steps' own compute {run.compute_s:.1f} s, longest edge {critical:.1f} s")
    print(f"ratio wall / sum of compute = {run.wall_s / run.compute_s:.3f} (goal <= 1.15; edges overlap)")
    print(
        f"ratio wall / longest edge's compute = {run.wall_s / critical:.3f} (the per-edge plumbing overhead)"
    )
    return run.wall_s / run.compute_s


if __name__ == "__main__":
    main()
