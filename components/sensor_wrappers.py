"""Thin ``@dsl.component`` wrappers of the sensor pipeline's steps (``components.sensor_steps``).

The same base image and conventions as ``components.wrappers``: imports inside each
function (KFP ships each one's source alone), ``Settings()`` from the environment, the
step's wall and CPU time on its output.  Publish is the image pipeline's ``publish_op``:
registering a version and announcing it does not depend on what the model reads.
"""

from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components.wrappers import component


@component
def sensor_ingest_op(
    edge: str, datasets: list[str], snapshot: Output[Dataset], production: Output[Model]
) -> None:
    """Snapshot the edge's telemetry dataset versions and the sensor model it serves (if any)."""
    from pathlib import Path

    from components.ingest import snapshot_production
    from components.sensor_steps import ingest_telemetry
    from components.timing import StepClock, exit_once_written
    from foundation.layout import Layout, sensor_model_name
    from foundation.settings import Settings
    from foundation.storage.store import ObjectStore

    exit_once_written()
    clock = StepClock()
    settings = Settings()
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    manifest = ingest_telemetry(store, layout, edge, [str(d) for d in datasets], Path(snapshot.path))
    current = snapshot_production(store, layout, edge, Path(production.path), sensor_model_name(edge))
    production.metadata.update({"version": current.version if current else ""})
    snapshot.metadata.update({"edge": edge, "datasets": manifest.metadata["datasets"], **clock.figures()})


@component
def sensor_prepare_op(snapshot: Input[Dataset], prepared: Output[Dataset]) -> None:
    """Windows per machine, split in time into training, threshold and test windows."""
    from pathlib import Path

    from components.sensor_steps import prepare_telemetry
    from components.timing import StepClock, exit_once_written

    exit_once_written()
    clock = StepClock()
    figures = prepare_telemetry(Path(snapshot.path), Path(prepared.path))
    prepared.metadata.update({**figures, **clock.figures()})


@component
def sensor_train_op(prepared: Input[Dataset], epochs: int, seed: int, model: Output[Model]) -> None:
    """The per-sensor scaling, the autoencoder of normal windows and the texture detector."""
    from pathlib import Path

    from components.sensor_steps import train_sensors
    from components.timing import StepClock, exit_once_written

    exit_once_written()
    clock = StepClock()
    figures = train_sensors(Path(prepared.path), Path(model.path), epochs=epochs, seed=seed)
    model.metadata.update({**figures, **clock.figures()})


@component
def sensor_evaluate_op(
    edge: str,
    prepared: Input[Dataset],
    model: Input[Model],
    production: Input[Model],
    min_precision: float,
    min_recall: float,
    evaluation: Output[Model],
    metrics: Output[Metrics],
    report: Output[Markdown],
) -> bool:
    """Thresholds and the gate; the single output is the verdict (see ``components.wrappers.evaluate_op``)."""
    from pathlib import Path

    from components.sensor_gate import SensorGate
    from components.sensor_report import markdown_report
    from components.sensor_steps import EVALUATION_FILE, evaluate_sensors
    from components.timing import StepClock, exit_once_written

    exit_once_written()
    clock = StepClock()
    gate = SensorGate(min_precision=min_precision, min_recall=min_recall)
    result = evaluate_sensors(Path(prepared.path), Path(model.path), Path(production.path), gate)
    Path(evaluation.path).mkdir(parents=True, exist_ok=True)
    result.save(Path(evaluation.path) / EVALUATION_FILE)
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    Path(report.path).write_text(markdown_report(result, edge))
    evaluation.metadata.update({"passed": result.passed, "reasons": result.reasons, **clock.figures()})
    return result.passed


@component
def sensor_export_op(
    edge: str,
    prepared: Input[Dataset],
    model: Input[Model],
    evaluation: Input[Model],
    snapshot: Input[Dataset],
    exported: Output[Model],
    release: str = "",
) -> None:
    """The version folder the edge loads: LiteRT, SavedModel, ``sensor_model.json``, manifest."""
    from pathlib import Path

    from components.sensor_steps import EVALUATION_FILE, SensorEvaluation, export_sensors
    from components.timing import StepClock, exit_once_written

    exit_once_written()
    clock = StepClock()
    result = SensorEvaluation.load(Path(evaluation.path) / EVALUATION_FILE)
    metadata = {
        "datasets": snapshot.metadata.get("datasets", []),
        **({"release": release} if release else {}),
    }
    manifest = export_sensors(
        Path(prepared.path), Path(model.path), result, Path(exported.path), edge, metadata
    )
    exported.metadata.update({"files": len(manifest.files), **clock.figures()})
