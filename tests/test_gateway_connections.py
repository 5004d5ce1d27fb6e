"""The gateway serves a bounded number of connections at once: the rest are told to come back."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from edgecore.stack import Stack
from foundation.credentials import new_token
from foundation.settings import Settings
from testkit.conditions import wait_for
from testkit.flood import gateway_process
from testkit.uplink import gateway_tokens


def _status(url: str) -> int:
    return httpx.get(f"{url}/healthz", timeout=10).status_code


def test_connections_over_the_limit_get_503_until_the_held_ones_close(
    stack: Stack, settings: Settings, unique: str, tmp_path: Path
) -> None:
    edge = f"conns-{unique}"
    cfg = settings.updated(
        state_dir=tmp_path, buckets={"edge_prefix": f"t{unique}-"}, uplink={"gateway_max_connections": 2}
    )
    gateway_tokens(cfg, edge, devices={"camera": new_token()}, staff={"manager": new_token()})
    with gateway_process(cfg, edge, tmp_path / "gateway.log") as (url, _):
        host, port = url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port))) for _ in range(2)]
        try:
            for conn in held:  # an upload that never finishes its headers
                conn.sendall(b"POST /v1/images/APPLE-RED HTTP/1.1\r\nHost: gateway\r\n")
            wait_for(lambda: _status(url) == 503, 30, what="the third connection refused")
        finally:
            for conn in held:
                conn.close()
        wait_for(lambda: _status(url) == 200, 30, what="the gateway serving again")
