"""Stores report to the core through the front door: what each serves, and how its predictor fares.

Real pieces throughout: the edge model server (``python -m serving.server``) answering
predictions, its ``/metrics`` read by the store's local target, the front door over TLS
with the local CA, the core's MinIO, and the core page's reader of what landed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from page_fixtures import ARTIFACTS

from edge_sync.delivery.report_desk import ReportDesk
from edge_sync.delivery.reporter import Reporter
from edge_sync.delivery.targets.local import LocalServerTarget
from edgecore.console.app import build_status
from edgecore.console.app import create_app as core_app
from edgecore.stack import Stack
from foundation.credentials import Credentials, new_token
from foundation.edge_report import MAX_REPORT_BYTES, EdgeReport
from foundation.errors import Forbidden
from foundation.layout import edge_model_name
from foundation.pointer import ModelPointer
from foundation.settings import Settings
from foundation.tls import client_context
from testkit.browser import Browser
from testkit.serving import Server, b64, kiosk_jpeg, running_server, upload_version, write_version
from testkit.uplink import DoorCore, door_core, free_port, serving

EDGE, OTHER = "lakeside", "hillside"
MODEL = edge_model_name(EDGE)
TOKENS = {EDGE: new_token(), OTHER: new_token()}


class Core(DoorCore):
    def stored(self, edge: str = EDGE) -> EdgeReport:
        raw = self.store.get_bytes(self.layout.edge_report(edge))
        return EdgeReport.from_bytes(raw, "stored")


@pytest.fixture(scope="module")
def core(stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    state = tmp_path_factory.mktemp("core")
    with door_core(settings, state, TOKENS, door={"report_interval_s": 0}) as door:
        yield Core(**vars(door))


@pytest.fixture(scope="module")
def shop(core: Core, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The store's model server answering with v000001; the core's registry already holds v000002."""
    tmp = tmp_path_factory.mktemp("versions")
    layout, store = core.layout, core.store
    for version in ("v000001", "v000002"):
        root = write_version(tmp / version, EDGE, version)
        upload_version(store, layout.model_prefix(MODEL, version), root)
    store.ensure_bucket(layout.edge_bucket(EDGE))
    uri = upload_version(store, layout.edge_model_prefix(EDGE, MODEL, "v000001"), tmp / "v000001")
    pointer = ModelPointer(model=MODEL, version="v000001", uri=uri, synced_at=datetime.now(UTC))
    store.put_bytes(layout.edge_model_pointer(EDGE, MODEL), pointer.to_bytes())
    with running_server(
        core.settings,
        EDGE,
        tmp_path_factory.mktemp("server"),
        capture=False,
        edge_bucket_prefix=core.settings.buckets.edge_prefix,
    ) as server:
        yield server


def _reporter(core: Core, shop: Server, series: Path, token: str = TOKENS[EDGE]) -> Reporter:
    target = LocalServerTarget(shop.url, EDGE, MODEL, series.parent, core.store, core.layout, 60)
    return Reporter(core.client(EDGE, token), target, MODEL, series, interval_s=60)


def _predict(shop: Server, times: int) -> None:
    for seed in range(times):
        body = {"instances": [{"image_bytes": {"b64": b64(kiosk_jpeg("LIME-GREEN", 40 + seed))}}]}
        httpx.post(f"{shop.url}/v1/models/{MODEL}:predict", json=body, timeout=30).raise_for_status()


def test_a_store_reports_the_version_it_serves_and_what_its_predictor_answered_since_the_last_read(
    core: Core, shop: Server, tmp_path: Path
) -> None:
    reporter = _reporter(core, shop, tmp_path / "series.json")
    reporter.read()  # where the interval starts
    _predict(shop, 3)

    sent = reporter.report()

    stored = core.stored()
    assert (stored.serving, stored.confirmed, stored.model) == ("v000001", True, MODEL)
    assert stored.received is not None and stored.points == sent.points
    [point] = stored.points
    assert point.predictions == 3 and point.errors == 0
    assert point.p50_ms is not None and point.p99_ms is not None and 0 < point.p50_ms <= point.p99_ms


def test_a_restarted_controller_goes_on_with_the_series_it_kept(
    core: Core, shop: Server, tmp_path: Path
) -> None:
    first = _reporter(core, shop, tmp_path / "series.json")
    first.read()
    _predict(shop, 1)
    first.read()

    again = _reporter(core, shop, tmp_path / "series.json").read()

    assert len(again.points) == 1 and again.points[0].predictions == 1


def test_the_core_page_shows_each_store_s_version_how_far_behind_it_is_and_its_series(
    core: Core, shop: Server, tmp_path: Path
) -> None:
    reporter = _reporter(core, shop, tmp_path / "series.json")
    reporter.read()
    _predict(shop, 2)
    reporter.report()

    [row] = [r for r in build_status(core.settings).stores() if r["edge"] == EDGE]

    assert (row["serving"], row["newest"], row["behind"], row["error"]) == ("v000001", "v000002", 1, None)
    assert row["points"][-1]["predictions"] == 2 and row["points"][-1]["unsure_rate"] is not None


def test_a_report_sooner_than_the_interval_after_the_last_is_dropped(core: Core) -> None:
    desk = ReportDesk(core.store, core.layout, Credentials("edge", inline={}), min_interval_s=3600)
    first = EdgeReport(edge=OTHER, model=edge_model_name(OTHER), at=datetime.now(UTC), serving="v000003")
    again = first.model_copy(update={"serving": "v000004"})

    assert desk.accept(OTHER, first.to_bytes()) and not desk.accept(OTHER, again.to_bytes())
    assert core.stored(OTHER).serving == "v000003"


def test_a_store_cannot_report_as_another_store(core: Core, shop: Server, tmp_path: Path) -> None:
    target = LocalServerTarget(shop.url, EDGE, MODEL, tmp_path, core.store, core.layout, 60)
    posing = Reporter(core.client(EDGE, TOKENS[OTHER]), target, MODEL, tmp_path / "s.json", 60)

    with pytest.raises(Forbidden):
        posing.report()


def _put(core: Core, body: bytes, token: str | None = TOKENS[EDGE]) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.put(
        f"{core.url}/v1/edges/{EDGE}/report",
        content=body,
        headers=headers,
        verify=client_context(core.settings.ca_file),
        timeout=30,
    )


def test_a_report_without_a_token_is_refused(core: Core) -> None:
    assert _put(core, b"{}", token=None).status_code == 401


def test_a_malformed_report_is_refused_with_a_reason_that_does_not_echo_it(core: Core) -> None:
    body = b'{"edge": "lakeside", "model": "lakeside-products", "at": "2026-01-01T00:00:00Z", '
    body += b'"serving": "SECRET-X"}'

    response = _put(core, body)

    assert response.status_code == 400 and "serving" in response.json()["reason"]
    assert "SECRET-X" not in response.text


def test_a_report_over_the_size_limit_is_refused_before_it_is_read(core: Core) -> None:
    response = _put(core, b" " * (MAX_REPORT_BYTES + 1))

    assert response.status_code == 413


def test_the_core_page_draws_a_store_s_latency_and_unsure_rate_over_time(
    core: Core, shop: Server, tmp_path: Path, browser: Browser
) -> None:
    reporter = _reporter(core, shop, tmp_path / "series.json")
    reporter.read()
    for _ in range(2):
        _predict(shop, 2)
        reporter.read()
    reporter.report()
    operator = new_token()
    app = core_app(build_status(core.settings), Credentials("operator", inline={"lead": [operator]}))

    with serving(app, free_port()) as url:
        browser.open(f"{url}/core/")
        browser.type("#token", operator)
        browser.click("#login-form button[type=submit]")
        browser.wait(lambda: "v000002" in browser.text("#stores-rows"), "the store's row on the core page")
        browser.run("document.getElementById('stores-title').scrollIntoView()")
        browser.screenshot(ARTIFACTS / "7-core-page-stores.png")
        row = browser.text("#stores-rows")
        lines = browser.find_all("#stores svg.plot polyline")

    assert EDGE in row and "v000001" in row
    assert len(lines) == 4  # p50, p95, p99; unsure rate
