"""The predictor's command line: its own flags and KServe's, which are honoured or refused, never dropped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from serving.server import parse


def test_kserve_s_own_port_and_server_options_are_honoured() -> None:
    args, kserve = parse(
        ["--edge", "store", "--http_port", "9001", "--max_threads", "8", "--timeout-keep-alive", "5"]
    )

    assert args.http_port == 9001
    assert dict(kserve) == {"max_threads": 8, "timeout_keep_alive": 5}


def test_kserve_flags_that_ask_for_what_runs_anyway_are_accepted() -> None:
    args, kserve = parse(["--edge", "store", "--workers", "1", "--model_name", "store-products"])

    assert (args.workers, kserve) == (1, ())


@pytest.mark.parametrize(
    "flags, reason",
    [
        (["--workers", "2"], "--workers is not supported"),
        (["--enable_grpc", "true"], "--enable_grpc is not supported"),
        (["--model_name", "other-products"], "not this edge's model"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_a_flag_it_cannot_honour_is_a_one_line_error(
    flags: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(["--edge", "store", *flags])

    assert exit_.value.code == 2
    assert reason in capsys.readouterr().err.splitlines()[-1]


def test_the_process_refuses_an_unsupported_kserve_flag_before_loading_anything() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "serving.server", "--edge", "store", "--workers", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--workers is not supported" in done.stderr
