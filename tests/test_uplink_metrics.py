"""The front door and the gateway count what they accept and refuse, on a /metrics port of their own."""

from __future__ import annotations

from pathlib import Path

import httpx

from edge_sync import frontdoor
from edge_sync.uplink.gateway import create_app as gateway_app
from edge_sync.uplink.metrics import UplinkMetrics
from edge_sync.uplink.service import build_gateway
from edgecore.stack import Stack
from foundation.credentials import new_token
from foundation.settings import Settings
from serving.metrics import SensorMetrics
from testkit.uplink import free_port, front_door, gateway_tokens, image_bytes, serving

EDGE = "metrics-store"


def sample(text: str, name: str) -> float:
    """The value of one sample line (name with its labels) of a Prometheus text page."""
    return next(
        (float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")), 0.0
    )


def test_the_gateway_counts_images_sets_refusals_and_its_backlog_on_its_own_port(
    stack: Stack, settings: Settings, unique: str, tmp_path: Path
) -> None:
    device, staff = new_token(), new_token()
    cfg = settings.updated(state_dir=tmp_path, buckets={"edge_prefix": f"t{unique}-"})
    gateway_tokens(cfg, EDGE, devices={"camera-1": device}, staff={"manager": staff})
    gateway, port = build_gateway(cfg, EDGE), free_port()
    gateway.metrics.serve(port, "127.0.0.1")
    with serving(gateway_app(gateway), free_port()) as url:
        jpeg = {"Content-Type": "image/jpeg"}
        httpx.post(
            f"{url}/v1/images/COLA-330",
            content=image_bytes(1),
            headers={**jpeg, "Authorization": f"Bearer {device}"},
        )
        refused = httpx.post(
            f"{url}/v1/images/COLA-330",
            content=image_bytes(2),
            headers={**jpeg, "Authorization": "Bearer wrong"},
        )
        httpx.post(f"{url}/v1/sets/COLA-330/complete", headers={"Authorization": f"Bearer {staff}"})

        page = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    gateway.outbox.close()

    assert refused.status_code == 401
    assert sample(page, 'edgecore_gateway_refusals_total{error="Unauthorized",status="401"}') == 1
    assert sample(page, "edgecore_gateway_images_total") == 1
    assert sample(page, "edgecore_gateway_sets_total") == 1
    assert sample(page, "edgecore_gateway_backlog_sets") == 1
    assert "wrong" not in page


def test_the_front_door_counts_a_set_refused_for_a_wrong_token_without_anything_it_sent(
    stack: Stack, settings: Settings, unique: str, tmp_path: Path
) -> None:
    cfg = settings.updated(state_dir=tmp_path, buckets={"training": f"test-train-{unique}"})
    metrics, port = UplinkMetrics("receiver"), free_port()
    metrics.serve(port, "127.0.0.1")
    guess = new_token()
    with front_door(cfg, {EDGE: new_token()}) as (receiver, _):
        app = frontdoor.create_app(
            receiver,
            frontdoor.build_model_door(cfg, receiver.credentials),
            frontdoor.build_report_desk(cfg, receiver.credentials),
            metrics,
        )
        with serving(app, free_port()) as url:
            refused = httpx.post(
                f"{url}/v1/edges/{EDGE}/sets",
                content=b"\0" * 2048,
                headers={"Authorization": f"Bearer {guess}", "Content-Type": "application/x-tar"},
            )
            page = httpx.get(f"http://127.0.0.1:{port}/metrics").text

    assert refused.status_code == 401
    assert sample(page, 'edgecore_receiver_refusals_total{error="Unauthorized",status="401"}') == 1
    assert sample(page, "edgecore_receiver_sets_total") == 0
    assert guess not in page


def test_the_front_door_refuses_a_malformed_query_without_repeating_it_and_counts_it(
    stack: Stack, settings: Settings, unique: str, tmp_path: Path
) -> None:
    cfg = settings.updated(state_dir=tmp_path, buckets={"training": f"test-train-{unique}"})
    metrics, port = UplinkMetrics("receiver"), free_port()
    metrics.serve(port, "127.0.0.1")
    with front_door(cfg, {EDGE: new_token()}) as (receiver, _):
        app = frontdoor.create_app(
            receiver,
            frontdoor.build_model_door(cfg, receiver.credentials),
            frontdoor.build_report_desk(cfg, receiver.credentials),
            metrics,
        )
        with serving(app, free_port()) as url:
            refused = httpx.get(f"{url}/v1/edges/{EDGE}/models/{EDGE}-products/newest?after=zz-sesame")
            page = httpx.get(f"http://127.0.0.1:{port}/metrics").text

    assert refused.status_code == 422 and "sesame" not in refused.text
    assert refused.json()["reason"].startswith("query.after: ")
    assert sample(page, 'edgecore_receiver_refusals_total{error="RequestValidationError",status="422"}') == 1


def test_the_gateway_serves_its_sensor_monitors_series_on_its_own_port() -> None:
    sensors, gateway_metrics, port = SensorMetrics(EDGE), UplinkMetrics("gateway"), free_port()
    gateway_metrics.include(sensors.registry)
    gateway_metrics.serve(port, "127.0.0.1")

    sensors.scored("press-1", windows=3, anomalous=1)
    sensors.alarm("press-1", raised=True)

    page = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    labels = f'{{edge="{EDGE}",machine="press-1"}}'
    assert sample(page, f"edgecore_sensor_windows_total{labels}") == 3
    assert sample(page, f"edgecore_sensor_alarm_raised{labels}") == 1
    assert "edgecore_gateway_refusals_total" in page
