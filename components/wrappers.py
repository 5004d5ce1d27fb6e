"""Thin ``@dsl.component`` wrappers: map KFP artifacts and parameters to the step functions.

Every wrapper runs on the training image built from ``images/Containerfile`` (the
project installed, so ``kfp.local``'s ``SubprocessRunner(use_venv=False)`` and a real
cluster run the same code) and builds ``Settings()`` from the environment, where the
pipeline puts the S3 credentials (a Kubernetes secret) and the endpoints.  Each output
artifact records the step's own wall and CPU time (``components.timing``) for the plumbing benchmark.
KFP ships each wrapper's source on its own, hence the imports inside the functions,
and reads the annotations at decoration time, hence no ``from __future__ import annotations``.
"""

import functools
from collections.abc import Callable
from typing import Any

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from foundation.images import TRAIN_IMAGE

component: Callable[[Callable[..., Any]], Any] = functools.partial(
    dsl.component, base_image=TRAIN_IMAGE, install_kfp_package=False
)
"""``@dsl.component`` on the training image (``make images``); kfp is already installed in it."""


@component
def ingest_op(edge: str, datasets: list[str], snapshot: Output[Dataset], production: Output[Model]) -> None:
    """Snapshot what the edge's training reads from S3: its dataset versions (labelled hard
    examples ship inside them) and its production model (empty when there is none yet).

    One step for both because each step is a process that pays its interpreter and
    imports before any work; both are S3 reads that must not be cached.
    """
    from pathlib import Path

    from components.ingest import ingest, snapshot_production
    from components.timing import StepClock, exit_once_written
    from foundation.layout import Layout
    from foundation.settings import Settings
    from foundation.storage.store import ObjectStore

    exit_once_written()
    clock = StepClock()
    settings = Settings()
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    manifest = ingest(store, layout, edge, [str(d) for d in datasets], Path(snapshot.path))
    current = snapshot_production(store, layout, edge, Path(production.path))
    production.metadata.update({"version": current.version if current else ""})
    snapshot.metadata.update(
        {
            "edge": edge,
            "datasets": manifest.metadata["datasets"],
            "images": len(manifest.files) - 1,
            **clock.figures(),
        }
    )


@component
def prepare_op(snapshot: Input[Dataset], seed: int, prepared: Output[Dataset]) -> None:
    """Validate, clean up, preprocess and split."""
    from pathlib import Path

    from components.prepare import prepare
    from components.timing import StepClock, exit_once_written
    from foundation.settings import Settings

    exit_once_written()
    clock = StepClock()
    report = prepare(Path(snapshot.path), Path(prepared.path), Settings().images.size, seed=seed)
    prepared.metadata.update(
        {
            "kept": report.kept,
            "dropped": report.dropped,
            "splits": report.splits,
            **clock.figures(),
        }
    )


@component
def train_op(
    prepared: Input[Dataset], production: Input[Model], epochs: int, seed: int, model: Output[Model]
) -> None:
    """Fit the CNN, warm-started from production when its labels allow it."""
    from pathlib import Path

    from components.timing import StepClock, exit_once_written
    from components.train import TrainConfig, train

    exit_once_written()
    clock = StepClock()
    result = train(
        Path(prepared.path), Path(model.path), TrainConfig(epochs=epochs, seed=seed), Path(production.path)
    )
    model.metadata.update(
        {
            "epochs_run": result.epochs_run,
            "best_val_accuracy": result.best_val_accuracy,
            "warm_started": result.warm_started_from is not None,
            **clock.figures(),
        }
    )


@component
def evaluate_op(
    edge: str,
    prepared: Input[Dataset],
    model: Input[Model],
    production: Input[Model],
    min_accuracy: float,
    max_regression: float,
    max_class_drop: float,
    evaluation: Output[dsl.Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[Markdown],
) -> bool:
    """Score the candidate, compare with production; the single output is the gate verdict.

    The verdict is the component's only return value (KFP output ``Output``) because
    ``kfp.local`` 2.17 resolves a ``dsl.If`` channel only for pipeline parameters and
    outputs named ``Output``; a named output such as ``passed`` is looked up as a
    parent input, is not found and the branch is silently skipped.
    """
    from pathlib import Path

    from components.evaluate import GateConfig, evaluate, markdown_report
    from components.prepare import PreparedData
    from components.timing import StepClock, exit_once_written

    exit_once_written()
    clock = StepClock()
    result = evaluate(
        Path(model.path),
        Path(prepared.path),
        GateConfig(min_accuracy, max_regression, max_class_drop),
        Path(production.path),
    )
    result.save(Path(evaluation.path))
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    classification.log_confusion_matrix(result.labels, result.confusion)
    Path(report.path).write_text(markdown_report(result, edge, PreparedData(Path(prepared.path)).report))
    evaluation.metadata.update({"passed": result.passed, "reasons": result.reasons, **clock.figures()})
    return result.passed


@component
def export_op(
    prepared: Input[Dataset],
    model: Input[Model],
    evaluation: Input[dsl.Artifact],
    snapshot: Input[Dataset],
    exported: Output[Model],
    release: str = "",
) -> None:
    """Write the version folder: LiteRT, SavedModel, labels, catalogue, card, manifest; the run's
    models share ``release``, which edges take in rollout waves."""
    from pathlib import Path

    from components.evaluate import Evaluation
    from components.export import export_trained
    from components.timing import StepClock, exit_once_written
    from foundation.settings import Settings

    exit_once_written()
    clock = StepClock()
    result = Evaluation.load(Path(evaluation.path))
    manifest = export_trained(
        Path(model.path),
        Path(prepared.path),
        Path(exported.path),
        Settings().images.size,
        result.metrics(),
        {
            "datasets": snapshot.metadata.get("datasets", []),
            "production_version": result.production_version,
            **({"release": release} if release else {}),
        },
    )
    exported.metadata.update({"files": len(manifest.files), **clock.figures()})


@component
def publish_op(edge: str, exported: Input[Model], registration: Output[dsl.Artifact]) -> str:
    """Register the version; emit ``model-published`` on the core's topic and on the edge's own."""
    from pathlib import Path

    from components.publish import publish
    from components.timing import StepClock, exit_once_written
    from foundation.layout import Layout
    from foundation.messaging import EventProducer, ensure_topics
    from foundation.modelcar import core_registry, pusher
    from foundation.settings import Settings
    from foundation.storage.store import ObjectStore

    exit_once_written()
    clock = StepClock()
    settings = Settings()
    topics = [settings.kafka.topic_model_published, settings.kafka.edge_topic(edge)]
    ensure_topics(settings.kafka, extra=topics)
    producer = EventProducer(settings.kafka, source="edgecore/pipeline/publish")
    modelcar = pusher(settings, core_registry(settings)) if settings.modelcar.registry else None
    try:
        event = publish(
            ObjectStore(settings.s3),
            Layout(settings.buckets),
            Path(exported.path),
            edge,
            lambda e: producer.publish_all(topics, e),
            modelcar=modelcar,
        )
    finally:
        producer.close()
    Path(registration.path).write_text(event.model_dump_json(indent=2))
    registration.metadata.update({"version": event.version, **clock.figures()})
    return event.version
