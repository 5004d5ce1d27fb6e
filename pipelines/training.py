"""The training DAG: one model per edge, trained and gated in parallel.

For each edge (``dsl.ParallelFor``): ingest fetches the dataset versions and the
production model (I/O: retried, never cached, since "newest version" changes under it), then
prepare → train → evaluate → export (pure functions of their inputs: cached), and
publish runs only when the quality gate passed (``dsl.If``).  S3 credentials come
from a Kubernetes secret as ``EDGECORE_S3_*`` variables and the other endpoints from a
config map, so the compiled spec holds no secret.
"""

from kfp import dsl, kubernetes

from components.evaluate import GateConfig
from components.train import TrainConfig
from components.wrappers import (
    evaluate_op,
    export_op,
    ingest_op,
    prepare_op,
    publish_op,
    train_op,
)

PIPELINE_NAME = "edgecore-training"
_GATE, _TRAIN = GateConfig(), TrainConfig()
"""The steps' own defaults are the pipeline's: each is defined once, in its step."""
S3_SECRET = "edgecore-s3"
S3_SECRET_KEYS = {
    "endpoint": "EDGECORE_S3_ENDPOINT",
    "access-key": "EDGECORE_S3_ACCESS_KEY",
    "secret-key": "EDGECORE_S3_SECRET_KEY",
}
CONFIG_MAP = "edgecore-config"
CONFIG_KEYS = {
    "kafka-bootstrap": "EDGECORE_KAFKA_BOOTSTRAP",
    "training-bucket": "EDGECORE_TRAINING_BUCKET",
    "models-bucket": "EDGECORE_MODELS_BUCKET",
    "edge-bucket-prefix": "EDGECORE_EDGE_BUCKET_PREFIX",
    "image-size": "EDGECORE_IMAGE_SIZE",
    "kafka-create-topics": "EDGECORE_KAFKA_CREATE_TOPICS",
}


def io_step(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """An S3/Kafka step: credentials from the secret, retried with backoff, not cached."""
    kubernetes.use_secret_as_env(task, secret_name=S3_SECRET, secret_key_to_env=S3_SECRET_KEYS)
    kubernetes.use_config_map_as_env(task, config_map_name=CONFIG_MAP, config_map_key_to_env=CONFIG_KEYS)
    task.set_retry(num_retries=3, backoff_duration="30s", backoff_factor=2.0, backoff_max_duration="600s")
    task.set_caching_options(False)
    return task


def compute_step(task: dsl.PipelineTask, cpu: str, memory: str) -> dsl.PipelineTask:
    """A pure step: same inputs, same outputs, so caching is correct."""
    kubernetes.use_config_map_as_env(task, config_map_name=CONFIG_MAP, config_map_key_to_env=CONFIG_KEYS)
    task.set_cpu_request(cpu).set_cpu_limit(cpu).set_memory_request(memory).set_memory_limit(memory)
    task.set_caching_options(True)
    return task


@dsl.pipeline(  # type: ignore[untyped-decorator]
    name=PIPELINE_NAME, description="Retrain, gate and deliver one product model per edge."
)
def training_pipeline(
    edges: list[str] = ["hypermarket", "boutique"],  # noqa: B006 - KFP parameter defaults are literals
    datasets: list[str] = ["hypermarket", "boutique"],  # noqa: B006 - edge-sync names datasets by edge
    epochs: int = _TRAIN.epochs,
    seed: int = _TRAIN.seed,
    min_accuracy: float = _GATE.min_accuracy,
    max_regression: float = _GATE.max_regression,
    max_class_drop: float = _GATE.max_class_drop,
    release: str = "",
) -> None:
    with dsl.ParallelFor(edges, parallelism=2) as edge:
        snapshot = io_step(ingest_op(edge=edge, datasets=datasets)).set_display_name("ingest")
        prepared = compute_step(prepare_op(snapshot=snapshot.outputs["snapshot"], seed=seed), "1", "2Gi")
        trained = compute_step(
            train_op(
                prepared=prepared.outputs["prepared"],
                production=snapshot.outputs["production"],
                epochs=epochs,
                seed=seed,
            ),
            "2",
            "4Gi",
        )
        evaluated = compute_step(
            evaluate_op(
                edge=edge,
                prepared=prepared.outputs["prepared"],
                model=trained.outputs["model"],
                production=snapshot.outputs["production"],
                min_accuracy=min_accuracy,
                max_regression=max_regression,
                max_class_drop=max_class_drop,
            ),
            "1",
            "2Gi",
        )
        exported = compute_step(
            export_op(
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
