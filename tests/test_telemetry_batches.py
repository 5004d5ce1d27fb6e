"""The store's telemetry batches: every reading taken kept on disk, in the canonical CSV, until shipped."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_sync.uplink.telemetry_batches import OPEN, TelemetryBatches
from foundation.alarm_verdicts import AlarmVerdict, read_verdicts
from foundation.errors import InvalidInput
from foundation.telemetry import SENSORS, read_csv
from foundation.telemetry_batch import read_batch

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
ORDER = ("pressure_bar", "temperature_c", "vibration_mm_s", "current_a")


def _rows(n: int, start: float = 1_767_225_600.0) -> tuple[list[float], list[list[float]]]:
    times = [start + 10.0 * i for i in range(n)]
    rows = [[5.0 + i, 40.0 + i, 2.0, math.nan] for i in range(n)]
    return times, rows


def test_a_full_batch_closes_into_a_file_the_core_reads_back_as_the_readings_taken(tmp_path: Path) -> None:
    batches = TelemetryBatches(tmp_path, max_rows=6)
    times, rows = _rows(6)

    batches.record("press-1", ORDER, times[:4], rows[:4])
    batches.record("press-1", ORDER, times[4:], rows[4:])

    [ready] = batches.ready()
    [series] = read_csv(ready, SENSORS)
    assert series.machine == "press-1" and len(series.values) == 6
    assert series.column("pressure_bar").tolist() == [5.0 + i for i in range(6)]
    assert series.column("temperature_c").tolist() == [40.0 + i for i in range(6)]
    assert all(math.isnan(v) for v in series.column("current_a"))
    assert not series.labels.any()


def test_a_batch_open_long_enough_is_closed_when_due(tmp_path: Path) -> None:
    batches = TelemetryBatches(tmp_path, max_age_s=0.0)
    batches.record("press-1", ORDER, *_rows(3))

    batches.close_due()

    assert len(batches.ready()) == 1 and not (tmp_path / OPEN).exists()


def test_a_batch_left_open_by_a_killed_gateway_is_closed_on_start_without_its_torn_last_row(
    tmp_path: Path,
) -> None:
    TelemetryBatches(tmp_path).record("press-1", ORDER, *_rows(3))
    with (tmp_path / OPEN).open("a") as torn:
        torn.write("1767225700.000,press-1,4")

    [ready] = TelemetryBatches(tmp_path).ready()

    [series] = read_csv(ready, SENSORS)
    assert len(series.values) == 3


def test_past_the_disk_bound_the_oldest_unshipped_batch_is_dropped_and_counted(tmp_path: Path) -> None:
    times, rows = _rows(6)
    probe = TelemetryBatches(tmp_path / "probe", max_rows=3)
    probe.record("press-1", ORDER, times[:3], rows[:3])
    one_batch = probe.ready()[0].stat().st_size
    batches = TelemetryBatches(tmp_path / "edge", max_rows=3, max_ready_bytes=one_batch + one_batch // 2)

    batches.record("press-1", ORDER, times[:3], rows[:3])
    batches.record("press-1", ORDER, times[3:], rows[3:])

    [kept] = batches.ready()
    [series] = read_csv(kept, SENSORS)
    assert batches.dropped == 1 and series.times[0] == times[3]


def test_past_the_disk_bound_readings_go_but_a_queued_verdict_stays(tmp_path: Path) -> None:
    times, rows = _rows(6)
    batches = TelemetryBatches(tmp_path, max_rows=3, max_ready_bytes=1)
    verdict = AlarmVerdict(
        machine="press-1", window_id="w-1", start=times[0], end=times[2], verdict="dismissed", at=NOW
    )

    batches.queue_verdict(verdict)
    batches.record("press-1", ORDER, times, rows)

    [kept] = batches.ready()
    assert kept.suffix == ".json" and batches.dropped == 1


def _closed(batches: TelemetryBatches) -> Path:
    closed = batches.close_batch()
    assert closed is not None
    return closed


def test_the_core_reads_a_batch_with_an_outage_as_two_runs_of_the_machine(tmp_path: Path) -> None:
    batches = TelemetryBatches(tmp_path)
    times, rows = _rows(20)
    batches.record("press-1", ORDER, times[:10], rows[:10])
    batches.record("press-1", ORDER, [t + 300.0 for t in times[10:]], rows[10:])  # five minutes quiet

    runs, left_out = read_batch(_closed(batches).read_bytes(), SENSORS, 1000)

    assert [len(r.values) for r in runs] == [10, 10] and left_out == 0
    assert runs[1].start == times[10] + 300.0


def test_a_reading_sent_again_and_a_lone_reading_are_left_out_and_counted(tmp_path: Path) -> None:
    batches = TelemetryBatches(tmp_path)
    times, rows = _rows(8)
    batches.record("press-1", ORDER, times, rows)
    batches.record("press-1", ORDER, times[-2:], rows[-2:])  # after a gateway restart
    batches.record("press-2", ORDER, times[:1], rows[:1])

    runs, left_out = read_batch(_closed(batches).read_bytes(), SENSORS, 1000)

    assert [(r.machine, len(r.values)) for r in runs] == [("press-1", 8)] and left_out == 3


def test_a_batch_whose_header_names_other_columns_is_refused_without_quoting_them(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("time,machine,SECRET-COLUMN\n1,press-1,2\n")

    with pytest.raises(InvalidInput) as refused:
        read_batch(path.read_bytes(), SENSORS, 1000)

    assert "SECRET" not in str(refused.value)


def test_a_verdict_waits_behind_the_readings_taken_before_it(tmp_path: Path) -> None:
    batches = TelemetryBatches(tmp_path)
    batches.record("press-1", ORDER, *_rows(3))
    verdict = AlarmVerdict(
        machine="press-1",
        window_id="w-1",
        start=1_767_225_600.0,
        end=1_767_225_620.0,
        verdict="dismissed",
        at=NOW,
    )

    batches.queue_verdict(verdict)

    readings, queued = batches.ready()
    assert readings.suffix == ".csv" and len(read_csv(readings, SENSORS)[0].values) == 3
    assert read_verdicts(queued.read_bytes()) == [verdict]
    assert not (tmp_path / OPEN).exists()
