"""The model files a version ships, written once, in the step that already has TensorFlow loaded.

Importing TensorFlow costs a step subprocess several CPU-seconds, far more than scoring a
few dozen test photos or copying files.  So the train step, which needs TensorFlow anyway,
writes every TensorFlow artefact beside ``model.keras``: the SavedModel (KServe's
TensorFlow runtime) and the LiteRT flatbuffer (the edge), checked against the Keras model
before anything downstream trusts it.  Evaluate then scores the LiteRT file, the very
artefact the edge serves, and export only packages files, neither importing TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from foundation.errors import IntegrityError
from foundation.layout import SAVED_MODEL_DIR, TFLITE_FILE
from foundation.openset import (
    UNNAMED_OUTPUT,
    Outputs,
    as_outputs,
    litert_output_indices,
    litert_output_shape,
)

KERAS_FILE = "model.keras"
PARITY_TOLERANCE = 1e-4
PARITY_SAMPLES = 32

_UNUSED_OPTIONAL_IMPORTS = ("pandas", "matplotlib", "IPython")
"""Keras imports these at start-up when they are installed (DataFrame inputs, image plots, a
notebook file editor); the steps use none of them and they are much of TensorFlow's
import time.  They are hidden only while Keras first loads, and only when not yet imported."""


def configure_tensorflow(threads: int) -> Any:
    """Import TensorFlow and Keras with small thread pools (the machine is shared)."""
    hidden = [name for name in _UNUSED_OPTIONAL_IMPORTS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        import keras  # noqa: F401  # loads TensorFlow as its backend
        import tensorflow as tf
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this process: keep its pools
        pass
    return tf


def load_keras_model(path: Path) -> Any:
    """A saved ``model.keras`` (its custom output layer registered first)."""
    from components.head import cosine_softmax

    cosine_softmax()
    import keras

    return keras.models.load_model(path, compile=False)


def litert_run(model_file: Path, x: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
    """Every output of a LiteRT flatbuffer by the name its signature gives it, one image per
    invoke as on the edge."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_file), num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    indices = litert_output_indices(interpreter)
    rows: dict[str, list[npt.NDArray[np.float32]]] = {name: [] for name in indices}
    for image in x:
        interpreter.set_tensor(inp, image[None])
        interpreter.invoke()
        for name, index in indices.items():
            rows[name].append(interpreter.get_tensor(index)[0].copy())
    if len(x):
        return {name: np.stack(r) for name, r in rows.items()}
    return {
        name: np.zeros((0, *litert_output_shape(interpreter, index)), np.float32)
        for name, index in indices.items()
    }


def keras_run(model: Any, x: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
    """Every output of a Keras model by name (one unnamed output as export names it)."""
    answer = model.predict(x, verbose=0, batch_size=64)
    if isinstance(answer, dict):
        return {name: np.asarray(value, np.float32) for name, value in answer.items()}
    return {UNNAMED_OUTPUT: np.asarray(answer, np.float32)}


def litert_predict(model_file: Path, x: npt.NDArray[np.float32]) -> Outputs:
    """What a product model's LiteRT flatbuffer answers."""
    return as_outputs(litert_run(model_file, x))


def keras_predict(model: Any, x: npt.NDArray[np.float32]) -> Outputs:
    """What a product model answers in Keras: the serving model's two outputs, or a trained model's one."""
    return as_outputs(keras_run(model, x))


def to_tflite(saved_model: Path) -> bytes:
    tf = configure_tensorflow(1)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    return bytes(converter.convert())


def check_parity(tflite: Path, model: Any, samples: npt.NDArray[np.float32]) -> float:
    """Largest difference between LiteRT's and Keras's outputs, each by name, on ``samples``."""
    if not len(samples):
        return 0.0
    expected, actual = keras_run(model, samples), litert_run(tflite, samples)
    if len(expected) == len(actual) == 1:
        pairs = [(next(iter(expected.values())), next(iter(actual.values())))]
    elif set(expected) == set(actual):
        pairs = [(expected[name], actual[name].reshape(expected[name].shape)) for name in expected]
    else:
        raise IntegrityError(f"{tflite}: outputs {sorted(actual)}, Keras's are {sorted(expected)}")
    diff = max(float(np.max(np.abs(keras - litert))) for keras, litert in pairs)
    if diff > PARITY_TOLERANCE:
        raise IntegrityError(f"{tflite}: LiteRT output differs from Keras by {diff:.2e}")
    return diff


def write_serving_files(model: Any, out: Path, samples: npt.NDArray[np.float32]) -> float:
    """``saved_model/`` and ``model.tflite`` in ``out``; return the checked LiteRT/Keras difference."""
    configure_tensorflow(1)
    model.export(str(out / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)
    (out / TFLITE_FILE).write_bytes(to_tflite(out / SAVED_MODEL_DIR))
    return check_parity(out / TFLITE_FILE, model, samples[:PARITY_SAMPLES])


def has_serving_files(model_dir: Path) -> bool:
    return (model_dir / TFLITE_FILE).is_file() and (model_dir / SAVED_MODEL_DIR).is_dir()
