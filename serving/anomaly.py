"""Scoring sensor windows at the edge: each window's reconstruction error through the LiteRT autoencoder.

A version folder (``components.anomaly.export_sensor_model``) holds the flatbuffer and
``sensor_model.json``; windows are checked and scaled by that file, the very statistics
training used, and run through the interpreter in fixed batches (one invoke per batch:
the per-invoke overhead, not the arithmetic, is what bounds a small dense model).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

from foundation.errors import IntegrityError
from foundation.layout import TFLITE_FILE
from foundation.sensor_model import SensorModel, texture_features

Array = npt.NDArray[np.float32]
BATCH = 256


class WindowScorer:
    """One sensor model version, loaded once; thread-safe (one interpreter behind a lock)."""

    def __init__(self, folder: Path, batch: int = BATCH, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.spec = SensorModel.load(folder)
        self.batch = batch
        shape = [batch, self.spec.window, len(self.spec.sensors)]
        try:
            self._interpreter = Interpreter(model_path=str(folder / TFLITE_FILE), num_threads=threads)
            inp = self._interpreter.get_input_details()[0]
            if list(inp["shape"][1:]) != shape[1:] or inp["dtype"] is not np.float32:
                raise IntegrityError(
                    f"{folder}: the model takes {list(inp['shape'])} {inp['dtype'].__name__}, "
                    f"its sensor_model.json describes windows of {shape[1:]} float32"
                )
            self._interpreter.resize_tensor_input(inp["index"], shape)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise IntegrityError(f"{folder}: not a loadable LiteRT sensor model: {exc}") from exc
        self._input = int(inp["index"])
        self._output = int(self._interpreter.get_output_details()[0]["index"])
        self._padded = np.zeros(shape, np.float32)
        self._lock = threading.Lock()

    def errors(self, windows: Array) -> npt.NDArray[np.float64]:
        """Mean squared reconstruction error of each ``(window, sensors)`` window, on scaled readings."""
        x = self.spec.normalisation.apply(self.spec.check(windows))
        out = np.empty(len(x), np.float64)
        with self._lock:
            for start in range(0, len(x), self.batch):
                chunk = x[start : start + self.batch]
                self._padded[: len(chunk)] = chunk
                self._interpreter.set_tensor(self._input, self._padded)
                self._interpreter.invoke()
                reproduced = self._interpreter.get_tensor(self._output)[: len(chunk)]
                out[start : start + len(chunk)] = np.mean((reproduced - chunk) ** 2, axis=(1, 2))
        return out

    def texture_distances(self, raw: Array) -> npt.NDArray[np.float64] | None:
        """How far each window's texture lies from normal (``raw``: gaps as NaN); None without a texture."""
        texture = self.spec.texture
        return (
            None if texture is None else texture.distances(texture_features(self.spec.check(raw, gaps=True)))
        )

    def anomalous(self, windows: Array, raw: Array | None = None) -> npt.NDArray[np.bool_]:
        """Over either threshold: the reconstruction error of ``windows`` (gaps filled), or the texture
        of ``raw`` (the same windows with their gaps; ``windows`` where not given)."""
        return self.spec.flags(self.errors(windows), self.texture_distances(windows if raw is None else raw))
