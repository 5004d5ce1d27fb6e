"""What runs a float32 batch through a model: the LiteRT interpreter, or the SavedModel as a fallback.

The LiteRT flatbuffer runs by default (tens of microseconds per image, no TensorFlow
import); the SavedModel serves only a version exported without a ``.tflite`` file,
because importing TensorFlow costs seconds and hundreds of megabytes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from foundation.errors import IntegrityError
from foundation.openset import Outputs, as_outputs, litert_output_shape, litert_outputs


class Runner(Protocol):
    """Runs a float32 batch ``(N, S, S, 3)`` through a model: probabilities ``(N, labels)`` and,
    from a version that outputs it, each image's largest cosine ``(N,)``."""

    kind: str

    def __call__(self, pixels: npt.NDArray[np.float32]) -> Outputs: ...


class LiteRTRunner:
    """The LiteRT interpreter, invoked once per image (its input is ``[1, S, S, 3]``).

    An interpreter is not thread-safe, so a lock guards invoke; it is uncontended when
    the server runs inference on its event loop, and keeps a warm-up thread safe.
    """

    kind = "litert"

    def __init__(self, path: Path, image_size: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=1)
            self._interpreter.allocate_tensors()
            self._output, self._cosine = litert_outputs(self._interpreter)
            self.classes = litert_output_shape(self._interpreter, self._output)[-1]
        except (ValueError, RuntimeError) as exc:
            raise IntegrityError(f"{path}: not a loadable LiteRT model: {exc}") from exc
        inp = self._interpreter.get_input_details()[0]
        expected = [1, image_size, image_size, 3]
        if list(inp["shape"]) != expected or inp["dtype"] is not np.float32:
            raise IntegrityError(
                f"{path}: input is {list(inp['shape'])} {inp['dtype'].__name__}, expected {expected} float32"
            )
        self._input = int(inp["index"])
        self._lock = threading.Lock()

    def __call__(self, pixels: npt.NDArray[np.float32]) -> Outputs:
        result = np.empty((len(pixels), self.classes), dtype=np.float32)
        cosine = np.empty(len(pixels), dtype=np.float32) if self._cosine is not None else None
        with self._lock:
            for i in range(len(pixels)):
                self._interpreter.set_tensor(self._input, pixels[i : i + 1])
                self._interpreter.invoke()
                result[i] = self._interpreter.get_tensor(self._output)[0]
                if cosine is not None:
                    cosine[i] = self._interpreter.get_tensor(self._cosine)[0]
        return Outputs(result, cosine)


class SavedModelRunner:
    """The TensorFlow SavedModel's ``serve`` endpoint (slow to import; fallback only)."""

    kind = "saved_model"

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        try:
            self._model = tf.saved_model.load(str(path))
            self._fn: Any = self._model.signatures["serving_default"]
        except (OSError, ValueError, KeyError) as exc:
            raise IntegrityError(f"{path}: not a loadable SavedModel: {exc}") from exc
        self._tf = tf

    def __call__(self, pixels: npt.NDArray[np.float32]) -> Outputs:
        outputs = self._fn(self._tf.constant(pixels))
        return as_outputs({name: np.asarray(value, dtype=np.float32) for name, value in outputs.items()})
