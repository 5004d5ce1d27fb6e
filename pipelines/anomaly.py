"""The sensor DAG: one anomaly model per edge, trained on its machines' telemetry and gated.

The same shape as the product DAG (``pipelines.training``), on the same secret, config
map, retries and caching: for each edge, ingest (the ``<edge>-telemetry`` dataset
versions and the sensor model the edge serves) → prepare → train → evaluate → export, and
publish only when the gate passed.  The version it publishes is ``<edge>-sensors``.
"""

from kfp import dsl

from components.sensor_gate import SensorGate
from components.sensor_wrappers import (
    sensor_evaluate_op,
    sensor_export_op,
    sensor_ingest_op,
    sensor_prepare_op,
    sensor_train_op,
)
from components.wrappers import publish_op
from pipelines.training import compute_step, io_step

PIPELINE_NAME = "edgecore-sensors"
_GATE = SensorGate()


@dsl.pipeline(  # type: ignore[untyped-decorator]
    name=PIPELINE_NAME, description="Retrain, gate and deliver one machine-sensor anomaly model per edge."
)
def anomaly_pipeline(
    edges: list[str] = ["hypermarket"],  # noqa: B006 - KFP parameter defaults are literals
    datasets: list[str] = ["hypermarket-telemetry@.."],  # noqa: B006
    epochs: int = 30,
    seed: int = 0,
    min_precision: float = _GATE.min_precision,
    min_recall: float = _GATE.min_recall,
    release: str = "",
) -> None:
    with dsl.ParallelFor(edges, parallelism=2) as edge:
        snapshot = io_step(sensor_ingest_op(edge=edge, datasets=datasets)).set_display_name("ingest")
        prepared = compute_step(sensor_prepare_op(snapshot=snapshot.outputs["snapshot"]), "1", "2Gi")
        trained = compute_step(
            sensor_train_op(prepared=prepared.outputs["prepared"], epochs=epochs, seed=seed), "2", "4Gi"
        )
        evaluated = compute_step(
            sensor_evaluate_op(
                edge=edge,
                prepared=prepared.outputs["prepared"],
                model=trained.outputs["model"],
                production=snapshot.outputs["production"],
                min_precision=min_precision,
                min_recall=min_recall,
            ),
            "1",
            "2Gi",
        )
        exported = compute_step(
            sensor_export_op(
                edge=edge,
                prepared=prepared.outputs["prepared"],
                model=trained.outputs["model"],
                evaluation=evaluated.outputs["evaluation"],
                snapshot=snapshot.outputs["snapshot"],
                release=release,
            ),
            "1",
            "2Gi",
        )
        with dsl.If(evaluated.outputs["Output"] == True, name="quality-gate-passed"):  # noqa: E712
            io_step(publish_op(edge=edge, exported=exported.outputs["exported"])).set_display_name("publish")
