"""The sensor pipeline's steps: ingest → prepare → train → evaluate → export, each a plain function
of folders, as the image steps are (``components.sensor_wrappers`` puts them on KFP).

* ingest fetches every ``telemetry/<machine>.csv`` of the requested dataset versions,
  verified against their manifests;
* prepare labels the readings by staff's verdicts on alarms (``foundation.alarm_verdicts``),
  cuts each machine's series into windows (``components.anomaly.windows``) and splits them
  in time: the earlier normal windows train, the later ones are held out for the threshold,
  and the test set is the held-out normal windows with every window that holds a labelled
  fault (a confirmed alarm's among them).  Every window inside a dismissed alarm's span, at
  every offset, is kept apart: whatever the edge's window alignment, it was normal;
* train fits the per-sensor scaling, the autoencoder and the texture detector on the
  training windows, the dismissed ones weighted up so the model learns what staff called normal;
* evaluate sets both thresholds on held-out normal windows, raised where needed so that no
  dismissed window crosses them, and gates the candidate on precision and recall over the
  labelled faults, and on no regression against the model the edge has (``components.sensor_gate``:
  its precision, and the labelled faults its alarm is raised during, on the same windows with its
  own scaling and thresholds);
* export writes the version the edge loads (``components.anomaly.export_sensor_model``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.anomaly import (
    WINDOW,
    AnomalyEvaluation,
    alarmed_faults,
    evaluate,
    export_sensor_model,
    raw_windows,
    reconstruction_errors,
    train_autoencoder,
    windows,
)
from components.ingest import DatasetRef, dataset_manifest, resolve
from components.sensor_gate import SensorGate, production_figures, regressions
from foundation.alarm_verdicts import VERDICTS_DIR, AlarmVerdict, label_by_verdicts, latest, read_verdicts
from foundation.errors import InvalidInput
from foundation.layout import (
    MANIFEST,
    TELEMETRY_DIR,
    Layout,
    sensor_model_name,
    telemetry_dataset,
)
from foundation.manifest import Manifest, entries_for_dir
from foundation.sensor_model import Normalisation, SensorModel, Texture, texture_features
from foundation.storage.objects import ObjectReader
from foundation.telemetry import label_name, read_csv

WINDOWS_FILE = "windows.npz"
SENSORS_FILE = "sensors.json"
AUTOENCODER_FILE = "autoencoder.keras"
SCALING_FILE = "normalisation.json"
TEXTURE_FILE = "texture.json"
EVALUATION_FILE = "evaluation.json"
SPLITS = ("train", "held", "test")
DISMISSED_WEIGHT = 10
"""How many times each dismissed window counts in training: a few dozen among thousands would
otherwise leave the autoencoder as it was.  Less where they would outnumber the normal windows."""
SPAN_WINDOWS = 720
"""Windows taken from one dismissed span at most: every offset of a short one, a stride through a long one."""
MAX_DISMISSED = 5000
"""Dismissed windows in all (an even sample past it): memory and training time stay bounded however
many verdicts the history holds."""


@dataclass(frozen=True)
class SensorEvaluation:
    threshold: float
    texture_threshold: float | None
    false_alarm_rate: float
    precision: float | None
    """None when the data holds no labelled fault: only the false-alarm rate is known then."""
    recall: float | None
    recall_by_label: dict[str, float]
    production: dict[str, float]
    """The edge's current model on the same test windows (empty when it has none)."""
    passed: bool
    reasons: list[str]
    """Why the gate refused the candidate."""
    notes: list[str]
    """What the gate could not check, and what staff's dismissals did to the thresholds."""
    dismissed_windows: int = 0
    """Windows of alarms staff dismissed, which the thresholds were set to leave unflagged."""
    faults: int = 0
    """Labelled faults in the test windows."""
    alarmed: list[int] | None = None
    """Of those, the ones the edge's alarm would be raised during (``components.anomaly.alarmed_faults``)."""

    @property
    def faults_caught(self) -> int | None:
        return None if self.alarmed is None else len(self.alarmed)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> SensorEvaluation:
        return cls(**json.loads(path.read_text()))

    def metrics(self) -> dict[str, float]:
        figures = {
            "false_alarm_rate": self.false_alarm_rate,
            "precision": self.precision,
            "recall": self.recall,
            "faults_caught": None if self.faults_caught is None else float(self.faults_caught),
        }
        return {k: v for k, v in figures.items() if v is not None}


def ingest_telemetry(
    reader: ObjectReader, layout: Layout, edge: str, datasets: list[str], out: Path
) -> Manifest:
    """Every telemetry file of the requested versions into ``out/telemetry/``, and every verdict
    file into ``out/verdicts/``; the snapshot manifest."""
    if not datasets:
        raise InvalidInput("no dataset requested")
    refs = [ref for ref in map(DatasetRef.parse, datasets) if ref.name == telemetry_dataset(edge)]
    if not refs:  # a run's datasets name every edge's: each edge trains on its own machines only
        raise InvalidInput(f"edge {edge}: none of {', '.join(datasets)} is its {telemetry_dataset(edge)}")
    versions = dict.fromkeys((ref.name, v) for ref in refs for v in resolve(reader, layout, ref))
    for name, version in versions:
        manifest = dataset_manifest(reader, layout, name, version)
        for file, entry in manifest.files.items():
            folder, _, leaf = file.partition("/")
            if (folder, Path(leaf).suffix) not in ((TELEMETRY_DIR, ".csv"), (VERDICTS_DIR, ".json")):
                continue
            local = out / folder / f"{name}@{version}" / leaf
            reader.download(layout.dataset_file(name, version, file), local, expected_sha256=entry.sha256)
    used = [f"{name}@{version}" for name, version in versions]
    if not (out / TELEMETRY_DIR).is_dir():
        raise InvalidInput(f"edge {edge}: no telemetry in datasets {', '.join(used)}")
    snapshot = Manifest(
        kind="dataset",
        name=f"{edge}-telemetry-snapshot",
        version="+".join(used),
        files=entries_for_dir(out),
        metadata={"edge": edge, "datasets": used, "use_case": "sensors"},
    )
    (out / MANIFEST).write_bytes(snapshot.to_bytes())
    return snapshot


def prepare_telemetry(snapshot: Path, out: Path, held_out: float = 0.3) -> dict[str, Any]:
    """Windows of every machine, split in time (the module's docstring); figures per split."""
    parts: dict[str, list[np.ndarray]] = {f"{s}_{k}": [] for s in SPLITS for k in ("x", "raw", "y")}
    parts |= {"dismissed_x": [], "dismissed_raw": [], "test_fault": []}
    sensors: tuple[str, ...] | None = None
    faults = 0
    verdicts = _verdicts(snapshot)
    for path in sorted((snapshot / TELEMETRY_DIR).rglob("*.csv")):
        for series in read_csv(path):
            if sensors not in (None, series.sensors):
                raise InvalidInput(f"{path}: sensors {series.sensors} differ from the other files' {sensors}")
            sensors = series.sensors
            labels, dismissed = label_by_verdicts(series, verdicts)
            _dismissed_windows(series.values, labels, dismissed, parts)
            if len(series.values) < 2 * WINDOW:
                continue  # too short to give a window to both training and the threshold
            faults += _split_machine(series.values, labels, held_out, parts, faults)
    if sensors is None or not parts["train_x"]:
        raise InvalidInput(f"{snapshot}: no machine has enough readings for training windows")
    empty = np.zeros((0, WINDOW, len(sensors)), np.float32)
    arrays = {key: np.concatenate(chunks) if chunks else empty for key, chunks in parts.items()}
    if len(arrays["dismissed_x"]) > MAX_DISMISSED:
        keep = np.linspace(0, len(arrays["dismissed_x"]) - 1, MAX_DISMISSED).astype(int)
        arrays["dismissed_x"], arrays["dismissed_raw"] = (
            arrays["dismissed_x"][keep],
            arrays["dismissed_raw"][keep],
        )
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / WINDOWS_FILE, **arrays)  # type: ignore[arg-type]  # a key might be allow_pickle
    (out / SENSORS_FILE).write_text(json.dumps(list(sensors)))
    return {
        "sensors": list(sensors),
        **{f"{s}_windows": len(arrays[f"{s}_x"]) for s in SPLITS},
        "fault_windows": int(np.count_nonzero(arrays["test_y"])),
        "faults": faults,
        "dismissed_windows": len(arrays["dismissed_x"]),
        "verdicts": len(verdicts),
    }


def _verdicts(snapshot: Path) -> list[AlarmVerdict]:
    files = sorted((snapshot / VERDICTS_DIR).rglob("*.json"))
    return latest(one for path in files for one in read_verdicts(path.read_bytes()))


def _dismissed_windows(
    values: np.ndarray, labels: np.ndarray, dismissed: np.ndarray, parts: dict[str, list[np.ndarray]]
) -> None:
    """The windows inside each dismissed span and outside any labelled fault, at every offset
    (``SPAN_WINDOWS`` at most per span)."""
    quiet = dismissed & (labels == 0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start < WINDOW:
            continue
        stride = max(1, -(-(stop - start - WINDOW + 1) // SPAN_WINDOWS))
        try:
            x, _ = windows(values[start:stop], np.zeros(stop - start, np.int8), stride=stride)
        except ValueError:  # a sensor silent through the whole span: nothing the edge scored
            continue
        parts["dismissed_x"].append(x)
        parts["dismissed_raw"].append(raw_windows(values[start:stop], stride=stride))


def _split_machine(
    values: np.ndarray, labels: np.ndarray, held_out: float, parts: dict[str, list[np.ndarray]], first: int
) -> int:
    """The machine's windows into the splits, each test window named by its fault (``first`` on; -1:
    none): a run of faulty windows in a row, of one label, is one fault.  How many faults it held.
    Two faults of one kind closer than a window's length read as one."""
    try:
        x, y = windows(values, labels)
    except ValueError as exc:  # a sensor with no reading at all
        raise InvalidInput(f"telemetry: {exc}") from exc
    raw = raw_windows(values)
    normal = np.flatnonzero(y == 0)
    cut = int(len(normal) * (1.0 - held_out))
    train, held = normal[:cut], normal[cut:]
    faulty = np.flatnonzero(y > 0)
    test = np.concatenate([held, faulty])
    for split, index in (("train", train), ("held", held), ("test", test)):
        parts[f"{split}_x"].append(x[index])
        parts[f"{split}_raw"].append(raw[index])
        parts[f"{split}_y"].append(y[index])
    starts = (np.diff(faulty, prepend=-2) > 1) | (np.diff(y[faulty], prepend=-1) != 0)  # a gap, or a kind
    fault = np.cumsum(starts) - 1
    parts["test_fault"].append(np.concatenate([np.full(len(held), -1), first + fault]).astype(np.int32))
    return int(fault[-1]) + 1 if len(fault) else 0


def load_windows(prepared: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    with np.load(prepared / WINDOWS_FILE) as data:
        arrays = {key: data[key] for key in data.files}
    return arrays, tuple(json.loads((prepared / SENSORS_FILE).read_text()))


def train_sensors(prepared: Path, out: Path, epochs: int = 30, seed: int = 0) -> dict[str, Any]:
    """The scaling, the autoencoder and the texture detector of the training windows."""
    w, sensors = load_windows(prepared)
    scale = Normalisation.fit(w["train_x"], sensors)
    dismissed = w.get("dismissed_x", w["train_x"][:0])
    weight = max(1, min(DISMISSED_WEIGHT, len(w["train_x"]) // max(1, len(dismissed))))
    x = np.concatenate([w["train_x"], np.repeat(dismissed, weight, 0)])
    model = train_autoencoder(scale.apply(x), epochs=epochs, seed=seed)
    dismissed_raw = w.get("dismissed_raw", w["train_raw"][:0])
    texture = Texture.fit(texture_features(w["train_raw"]), kept=texture_features(dismissed_raw))
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / AUTOENCODER_FILE)
    (out / SCALING_FILE).write_text(scale.model_dump_json())
    (out / TEXTURE_FILE).write_text(texture.model_dump_json())
    return {"train_windows": len(w["train_x"]), "epochs": epochs}


def load_trained(trained: Path) -> tuple[Any, Normalisation, Texture]:
    import keras

    model = keras.models.load_model(trained / AUTOENCODER_FILE)
    scale = Normalisation.model_validate_json((trained / SCALING_FILE).read_text())
    return model, scale, Texture.model_validate_json((trained / TEXTURE_FILE).read_text())


def evaluate_sensors(
    prepared: Path, trained: Path, production: Path | None, gate: SensorGate = SensorGate()
) -> SensorEvaluation:
    """Thresholds from held-out normal windows; the gate on labelled faults and against the edge's model."""
    w, sensors = load_windows(prepared)
    if "test_fault" not in w:
        raise InvalidInput(f"{prepared}: windows prepared before faults were named: prepare them again")
    model, scale, texture = load_trained(trained)
    held = reconstruction_errors(model, scale.apply(w["held_x"]))
    test = reconstruction_errors(model, scale.apply(w["test_x"]))
    distances = (
        texture.distances(texture_features(w["held_raw"])),
        texture.distances(texture_features(w["test_raw"])),
    )
    dismissed = w.get("dismissed_x", w["held_x"][:0])
    cover = (
        (
            reconstruction_errors(model, scale.apply(dismissed)),
            texture.distances(texture_features(w["dismissed_raw"])),
        )
        if len(dismissed)
        else None
    )
    result = evaluate(
        held, test, w["test_y"], gate.quantile, gate.min_precision, gate.min_recall, distances, cover
    )
    labelled = bool(np.any(w["test_y"] > 0))
    reasons, notes = (
        (list(result.reasons), [])
        if labelled
        else ([], ["no labelled fault: precision and recall not measured"])
    )
    if cover is not None:
        notes.append(_cover_note(held, distances[0], result, len(dismissed), gate.quantile))
    faults = len(np.unique(w["test_fault"][w["test_fault"] >= 0]))
    alarmed = alarmed_faults(result.flagged, w["test_fault"])
    before = production_figures(production, w, sensors) if production is not None else None
    if labelled and before is not None:
        reasons += regressions(result.precision, result.recall, alarmed, faults, before, gate)
    elif production is not None and before is None and any(production.iterdir()):
        notes.append("the edge's current model reads other sensors or windows: not compared")
    return SensorEvaluation(
        threshold=result.threshold,
        texture_threshold=result.texture_threshold,
        false_alarm_rate=result.false_alarm_rate,
        precision=result.precision if labelled else None,
        recall=result.recall if labelled else None,
        recall_by_label={label_name(k): v for k, v in result.recall_by_label.items()},
        production=before.figures if before is not None else {},
        passed=not reasons,
        reasons=reasons,
        notes=notes,
        dismissed_windows=len(dismissed),
        faults=faults,
        alarmed=sorted(alarmed) if labelled else None,
    )


def _cover_note(
    held: np.ndarray, held_texture: np.ndarray, result: AnomalyEvaluation, windows: int, quantile: float
) -> str:
    """What the dismissed alarms did to the thresholds."""
    before = (float(np.quantile(held, quantile)), float(np.quantile(held_texture, quantile)))
    after = (result.threshold, result.texture_threshold or 0.0)
    raised = [
        f"{name} threshold raised from {was:.4g} to {now:.4g}"
        for name, was, now in zip(("error", "texture"), before, after, strict=True)
        if now > was
    ]
    what = "; ".join(raised) if raised else "no threshold raised"
    return f"{windows} windows of dismissed alarms stay under the thresholds ({what})"


def export_sensors(
    prepared: Path,
    trained: Path,
    evaluation: SensorEvaluation,
    out: Path,
    edge: str,
    metadata: dict[str, Any],
) -> Manifest:
    """The version folder the edge loads, its thresholds those evaluation set."""
    w, _ = load_windows(prepared)
    model, scale, texture = load_trained(trained)
    tt = evaluation.texture_threshold
    spec = SensorModel(
        normalisation=scale,
        window=int(w["train_x"].shape[1]),
        threshold=evaluation.threshold,
        texture=texture.with_threshold(tt) if tt is not None else None,
    )
    samples = scale.apply(w["test_x"][:64])
    return export_sensor_model(
        model, spec, out, samples, sensor_model_name(edge), evaluation.metrics(), metadata
    )
