"""Staff's verdicts on machine alarms teach the next round: a dismissed alarm's behaviour is normal,
a confirmed alarm's readings are a fault the gate scores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from components.anomaly import WINDOW, raw_windows, windows
from components.sensor_steps import (
    evaluate_sensors,
    export_sensors,
    load_windows,
    prepare_telemetry,
    train_sensors,
)
from edgecore.synthetic.telemetry import WASH_S, generate
from foundation.alarm_verdicts import (
    VERDICTS_DIR,
    AlarmVerdict,
    VerdictBatch,
    label_by_verdicts,
    latest,
    read_verdicts,
)
from foundation.errors import InvalidInput
from foundation.layout import TELEMETRY_DIR
from foundation.telemetry import CONFIRMED, Telemetry, write_csv
from serving.anomaly import WindowScorer

HOURS = 48
WASH_AT_H = 2.0
NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def _verdict(series: Telemetry, first: int, last: int, verdict: str, **fields: object) -> AlarmVerdict:
    times = series.times
    return AlarmVerdict.model_validate(
        {
            "machine": series.machine,
            "window_id": "101500000000-abcd1234",
            "start": float(times[first]),
            "end": float(times[last]),
            "verdict": verdict,
            "at": NOW,
            **fields,
        }
    )


def test_a_confirmed_span_is_labelled_a_fault_and_a_known_fault_inside_it_keeps_its_kind() -> None:
    series = generate("press-1", 1, seed=1, faults=[("spike", 0.5, 0.01)])
    spike = int(np.flatnonzero(series.labels)[0])

    labels, dismissed = label_by_verdicts(series, [_verdict(series, spike - 20, spike + 20, "confirmed")])

    assert (labels[spike - 20 : spike] == CONFIRMED).all() and labels[spike] == series.labels[spike]
    assert not labels[: spike - 20].any() and not dismissed.any()


def test_a_dismissed_span_marks_its_readings_and_leaves_every_label_as_it_was() -> None:
    series = generate("press-1", 1, seed=1)

    labels, dismissed = label_by_verdicts(series, [_verdict(series, 100, 169, "dismissed")])

    assert np.flatnonzero(dismissed).tolist() == list(range(100, 170))
    assert (labels == series.labels).all()


def test_an_alarm_judged_twice_counts_once_with_the_later_verdict() -> None:
    series = generate("press-1", 1, seed=1)
    first = _verdict(series, 100, 169, "confirmed")
    second = _verdict(series, 100, 169, "dismissed", at=NOW + timedelta(minutes=2))

    assert latest([second, first]) == [second]


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"end": 1.0}, "span runs forward"),
        ({"machine": "Press 1"}, "machine"),
        ({"verdict": "maybe"}, "verdict"),
    ],
)
def test_a_verdict_the_contract_cannot_carry_is_refused_naming_the_rule_not_the_value(
    change: dict[str, object], rule: str
) -> None:
    one = {"machine": "press-1", "window_id": "w-1", "start": 100.0, "end": 700.0, "verdict": "dismissed"}
    body = json.dumps({"verdicts": [{**one, "at": NOW.isoformat(), **change}]}).encode()

    with pytest.raises(InvalidInput, match=rule) as refused:
        read_verdicts(body)

    assert "Press 1" not in str(refused.value) and "maybe" not in str(refused.value)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of two machines with faults (the first version), then a morning of press-1 with a wash."""
    root = tmp_path_factory.mktemp("snapshot")
    first = root / TELEMETRY_DIR / "plant-telemetry@v000001"
    first.mkdir(parents=True)
    for i, machine in enumerate(("press-1", "press-2")):
        write_csv([generate(machine, HOURS, seed=40 + i, faults=6)], first / f"{machine}.csv")
    return root


@pytest.fixture(scope="module")
def first_model(history: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    prepared, trained, out = (tmp_path_factory.mktemp(n) for n in ("prepared", "trained", "model"))
    prepare_telemetry(history, prepared)
    train_sensors(prepared, trained, epochs=8)
    export_sensors(prepared, trained, evaluate_sensors(prepared, trained, None), out, "plant", {})
    return out


def _wash_morning(seed: int) -> Telemetry:
    return generate("press-1", 4, seed=seed, start=1_767_225_600.0 + HOURS * 3600, washes=[WASH_AT_H])


def _flags(model: Path, series: Telemetry, first: int, last: int) -> int:
    """How many windows ending in readings ``first..last`` (every offset) the model flags."""
    part = series.values[first - WINDOW + 1 : last + 1]
    scorer = WindowScorer(model)
    x, _ = windows(part, np.zeros(len(part), np.int8), stride=1)
    flags = scorer.spec.flags(scorer.errors(x), scorer.texture_distances(raw_windows(part, stride=1)))
    return int(flags.sum())


def _next_round(
    history: Path, first_model: Path, out: Path, verdict: AlarmVerdict, morning: Telemetry
) -> Path:
    """The history with the morning's readings and one verdict added, trained and gated as the DAG does."""
    snapshot = out / "snapshot"
    for source in history.rglob("*.csv"):
        target = snapshot / source.relative_to(history)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    (snapshot / TELEMETRY_DIR / "plant-telemetry@v000002").mkdir()
    write_csv([morning], snapshot / TELEMETRY_DIR / "plant-telemetry@v000002" / "press-1.csv")
    (snapshot / VERDICTS_DIR / "plant-telemetry@v000003").mkdir(parents=True)
    body = VerdictBatch(verdicts=[verdict]).model_dump_json()
    (snapshot / VERDICTS_DIR / "plant-telemetry@v000003" / "one.json").write_text(body)
    prepare_telemetry(snapshot, out / "prepared")
    train_sensors(out / "prepared", out / "trained", epochs=8)
    evaluation = evaluate_sensors(out / "prepared", out / "trained", first_model)
    export_sensors(out / "prepared", out / "trained", evaluation, out / "model", "plant", {})
    (out / "evaluation.json").write_text(json.dumps(evaluation.notes + evaluation.reasons))
    assert evaluation.passed, evaluation.reasons
    return out / "model"


@pytest.mark.slow
def test_after_staff_dismiss_an_alarm_the_next_round_flags_none_of_its_readings_and_still_passes_the_gate(
    history: Path, first_model: Path, tmp_path: Path
) -> None:
    morning = _wash_morning(seed=77)
    wash = int(WASH_AT_H * 3600 / morning.period_s)
    span = (wash, wash + int(WASH_S / morning.period_s) + WINDOW)
    assert _flags(first_model, morning, *span) > 0  # a wash is new to the first model: it raised alarms

    model = _next_round(history, first_model, tmp_path, _verdict(morning, *span, "dismissed"), morning)

    assert _flags(model, morning, *span) == 0
    assert (
        "windows of dismissed alarms stay under the thresholds" in (tmp_path / "evaluation.json").read_text()
    )


@pytest.mark.slow
def test_a_confirmed_alarm_s_readings_are_scored_by_the_gate_as_a_fault_of_their_own(
    history: Path, first_model: Path, tmp_path: Path
) -> None:
    morning = _wash_morning(seed=78)
    wash = int(WASH_AT_H * 3600 / morning.period_s)
    verdict = _verdict(morning, wash, wash + int(WASH_S / morning.period_s), "confirmed")

    _next_round(history, first_model, tmp_path, verdict, morning)

    w, _ = load_windows(tmp_path / "prepared")
    spanned = (int(WASH_S / morning.period_s) + WINDOW) // 10  # windows (stride 10) touching the span
    assert np.count_nonzero(w["test_y"] == CONFIRMED) >= spanned - 1
