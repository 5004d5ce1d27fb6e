"""Machine telemetry for the anomaly use case: realistic normal operation, labelled faults, CSV in and out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecore.cli import app
from edgecore.synthetic.telemetry import generate
from foundation.errors import InvalidInput
from foundation.telemetry import (
    FAULT_KINDS,
    MAX_MACHINES,
    NORMAL,
    Telemetry,
    read_csv,
    read_telemetry,
    write_csv,
)

DAY = 24.0


def _healthy_and_faulty(kind: str) -> tuple[Telemetry, Telemetry]:
    """The same machine and seed, without and with one fault from hour 30 for 3 hours, nothing lost."""
    healthy = generate("press-1", 2 * DAY, seed=5, missing_rate=0)
    faulty = generate("press-1", 2 * DAY, seed=5, faults=[(kind, 30.0, 3.0)], missing_rate=0)
    return healthy, faulty


def test_the_same_seed_gives_the_same_series_and_another_seed_another() -> None:
    one, again, other = (generate("press-1", 6, seed=s, faults=2) for s in (1, 1, 2))

    assert np.array_equal(one.values, again.values, equal_nan=True) and one.faults == again.faults
    assert not np.array_equal(one.values, other.values, equal_nan=True)


def test_the_machine_runs_and_idles_and_its_temperature_follows() -> None:
    series = generate("press-1", DAY, seed=3, missing_rate=0)
    current = series.column("current_a")
    running = current > 5

    assert 0.6 < running.mean() < 0.95, "duty cycles: mostly running, idle between"
    assert (
        series.column("temperature_c")[running].mean() > series.column("temperature_c")[~running].mean() + 5
    )


def test_a_day_has_its_daily_pattern_and_readings_go_missing_at_about_the_rate_asked() -> None:
    series = generate("press-1", 3 * DAY, seed=4, missing_rate=0.01)

    assert 0.005 < np.isnan(series.values).mean() < 0.02
    assert (series.labels == NORMAL).all() and series.faults == ()


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_is_labelled_exactly_where_it_was_injected(kind: str) -> None:
    _, faulty = _healthy_and_faulty(kind)
    (fault,) = faulty.faults
    per_hour = 3600 / faulty.period_s

    assert (fault.start, fault.end) == (int(30 * per_hour), int(33 * per_hour))
    assert (faulty.labels[fault.start : fault.end] == 1 + FAULT_KINDS.index(kind)).all()
    assert (np.delete(faulty.labels, np.s_[fault.start : fault.end]) == NORMAL).all()


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_changes_only_its_window(kind: str) -> None:
    healthy, faulty = _healthy_and_faulty(kind)
    (fault,) = faulty.faults
    changed = np.flatnonzero(np.any(healthy.values != faulty.values, axis=1))

    assert len(changed) and fault.start <= changed.min() and changed.max() < fault.end


def test_a_stuck_sensor_repeats_one_value() -> None:
    _, faulty = _healthy_and_faulty("stuck")
    (fault,) = faulty.faults

    assert np.ptp(faulty.column(fault.sensor)[fault.start : fault.end]) == 0


def test_a_frequency_change_moves_the_pressure_pulsation_s_dominant_period() -> None:
    healthy = generate("press-1", 2 * DAY, seed=5, missing_rate=0)
    per_hour = 3600 / healthy.period_s
    span = int(per_hour * 2 / 3)  # 40 minutes inside one run
    running = healthy.column("current_a") > 5
    first = next(i for i in range(int(30 * per_hour), len(running) - span) if running[i : i + span].all())
    faulty = generate(
        "press-1", 2 * DAY, seed=5, faults=[("frequency_change", first / per_hour, 2 / 3)], missing_rate=0
    )
    (fault,) = faulty.faults

    def period(series: Telemetry) -> float:
        signal = series.column("pressure_bar")[fault.start : fault.end]
        spectrum = np.abs(np.fft.rfft(signal - signal.mean()))
        freqs = np.fft.rfftfreq(len(signal), d=series.period_s)
        return float(1 / freqs[1:][np.argmax(spectrum[1:])])

    assert period(healthy) == pytest.approx(120, rel=0.1) and period(faulty) == pytest.approx(48, rel=0.1)


def test_degradation_grows_vibration_and_heat_over_its_window() -> None:
    healthy, faulty = _healthy_and_faulty("degradation")
    (fault,) = faulty.faults
    extra = faulty.column("vibration_mm_s") - healthy.column("vibration_mm_s")

    assert extra[fault.start] < 0.1 < 3.0 < extra[fault.end - 1]


def test_random_faults_fall_in_the_second_half_in_running_time_without_overlapping() -> None:
    series = generate("press-1", 4 * DAY, seed=9, faults=5)
    current = series.column("current_a")

    assert [f.kind for f in series.faults] == list(FAULT_KINDS)
    assert all(f.start >= len(series.values) // 2 for f in series.faults)
    assert all(a.end <= b.start for a, b in zip(series.faults, series.faults[1:], strict=False))
    assert all(not np.isnan(current[f.start]) and current[f.start] > 5 for f in series.faults)


def test_csv_round_trips_every_machine_with_its_missing_readings_and_labels(tmp_path: Path) -> None:
    series = [
        generate(m, 12, seed=i, faults=1, missing_rate=0.01) for i, m in enumerate(("press-1", "pump-2"))
    ]
    path = tmp_path / "telemetry.csv"

    write_csv(series, path)
    back = read_csv(path)

    assert [b.machine for b in back] == ["press-1", "pump-2"]
    for original, read in zip(series, back, strict=True):
        assert read.period_s == original.period_s and read.start == pytest.approx(original.start)
        assert np.allclose(read.values, original.values, atol=1e-4, equal_nan=True)
        assert np.array_equal(read.labels, original.labels)


def test_a_csv_without_a_sensor_column_says_which(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("time,machine,temperature_c\n1,press-1,20\n")

    with pytest.raises(InvalidInput, match="no column vibration_mm_s, current_a, pressure_bar"):
        read_csv(path)


def test_a_csv_row_that_does_not_parse_is_named_by_its_number_not_its_content(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "time,machine,temperature_c,vibration_mm_s,current_a,pressure_bar\n"
        "2026-01-01T00:00:00+00:00,press-1,20,2,12,6\n"
        "2026-01-01T00:00:10+00:00,press-1,hot-secret,2,12,6\n"
    )

    with pytest.raises(InvalidInput, match="row 3 does not parse") as caught:
        read_csv(path)
    assert "hot-secret" not in str(caught.value)


def test_readings_left_out_instead_of_left_empty_are_refused(tmp_path: Path) -> None:
    rows = [f"{t},press-1,20,2,12,6" for t in (0, 10, 20, 60, 70)]
    path = tmp_path / "export.csv"
    path.write_text(
        "time,machine,temperature_c,vibration_mm_s,current_a,pressure_bar\n" + "\n".join(rows) + "\n"
    )

    with pytest.raises(InvalidInput, match="not evenly spaced"):
        read_csv(path)


def test_an_export_over_the_row_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "time,machine,temperature_c,vibration_mm_s,current_a,pressure_bar\n"
        + "".join(f"{t * 10},press-1,20,2,12,6\n" for t in range(11))
    )

    with pytest.raises(InvalidInput, match="more than 10 rows"):
        read_csv(path, max_rows=10)


def test_the_sensors_commands_write_telemetry_and_read_it_back(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.csv"
    runner = CliRunner()

    made = runner.invoke(app, ["sensors", "generate", "--out", str(path), "--machines", "2", "--hours", "6"])
    checked = runner.invoke(app, ["sensors", "check", str(path)])

    assert made.exit_code == checked.exit_code == 0, made.output + checked.output
    assert [b.machine for b in read_csv(path)] == ["machine-1", "machine-2"]
    assert "machine-2" in checked.output and "2160" in checked.output


def _parquet(path: Path, series: list[Telemetry], timestamps: bool = True) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    times = np.concatenate([one.times for one in series])
    columns: dict[str, object] = {
        "time": pa.array((times * 1e6).astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))
        if timestamps
        else pa.array(times),
        "machine": pa.array([one.machine for one in series for _ in one.times]),
        "label": pa.array(np.concatenate([one.labels for one in series]).astype(np.int16)),
    }
    values = np.concatenate([one.values for one in series])
    for j, sensor in enumerate(series[0].sensors):
        columns[sensor] = pa.array(values[:, j], mask=np.isnan(values[:, j]))  # a missing reading is null
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize("timestamps", [True, False], ids=["timestamp", "seconds"])
def test_a_parquet_export_reads_as_its_csv_does(tmp_path: Path, timestamps: bool) -> None:
    series = [generate("press-1", 6, seed=1, faults=2), generate("press-2", 6, seed=2)]
    write_csv(series, tmp_path / "t.csv")

    from_parquet = read_telemetry(_parquet(tmp_path / "t.parquet", series, timestamps))

    from_csv = read_telemetry(tmp_path / "t.csv")
    assert [s.machine for s in from_parquet] == ["press-1", "press-2"]
    for got, want in zip(from_parquet, from_csv, strict=True):
        assert got.start == pytest.approx(want.start) and got.period_s == pytest.approx(want.period_s)
        np.testing.assert_allclose(got.values, want.values, atol=1e-3)  # the CSV keeps 4 decimals
        assert np.array_equal(got.labels, want.labels)


def test_a_parquet_export_without_a_sensor_column_or_over_the_row_limit_is_refused(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = _parquet(tmp_path / "t.parquet", [generate("press-1", 1, seed=1)])
    pq.write_table(pq.read_table(path).drop_columns(["pressure_bar"]), tmp_path / "short.parquet")

    with pytest.raises(InvalidInput, match="no column pressure_bar"):
        read_telemetry(tmp_path / "short.parquet")
    with pytest.raises(InvalidInput, match="more than 100 rows"):
        read_telemetry(path, max_rows=100)
    (tmp_path / "not.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidInput, match="not a readable Parquet file"):
        read_telemetry(tmp_path / "not.parquet")


HEADER = "time,machine,temperature_c,vibration_mm_s,current_a,pressure_bar,label\n"


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("20,press-1,1e30,2,12,6,0", "beyond"),
        ("20,press-1,inf,2,12,6,0", "beyond"),
        ("20,press-1,20,2,12,6,1000", "label outside"),
        ("20,press-1,20,2,12", "more or fewer cells"),
        ("20,press-1,20,2,12,6,0,extra", "more or fewer cells"),
        ("99999999999,press-1,20,2,12,6,0", "in the future"),
    ],
)
def test_a_csv_value_no_sensor_reads_or_a_broken_row_is_refused_in_one_line(
    tmp_path: Path, row: str, why: str
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(HEADER + "0,press-1,20,2,12,6,0\n10,press-1,20,2,12,6,0\n" + row + "\n")

    with pytest.raises(InvalidInput, match=why):
        read_csv(path)


def test_a_file_that_is_not_utf8_text_is_refused_as_not_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(HEADER.encode() + b"0,press-\xff\xfe,20,2,12,6,0\n")

    with pytest.raises(InvalidInput, match="not a UTF-8 CSV"):
        read_csv(path)


def test_iso_times_without_a_zone_are_read_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        HEADER + "2026-01-01T00:00:00,press-1,20,2,12,6,0\n2026-01-01T00:00:10,press-1,20,2,12,6,0\n"
    )

    [series] = read_csv(path)

    assert series.start == datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def test_an_export_of_more_machines_than_a_version_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    rows = "".join(f"{t},m-{m},20,2,12,6,0\n" for m in range(MAX_MACHINES + 1) for t in (0, 10))
    path.write_text(HEADER + rows)

    with pytest.raises(InvalidInput, match=f"more than {MAX_MACHINES} machines"):
        read_csv(path)
