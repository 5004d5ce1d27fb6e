"""Client certificates at the front door (``EDGECORE_TLS_CLIENT_CA_FILE``): an edge without one
is refused before any request is read; an edge presenting one the CA signed gets through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgecore.stack import Stack
from edgecore.stack.certificates import Pki
from foundation.credentials import new_token
from foundation.settings import Settings
from foundation.tls import edge_context
from testkit.uplink import free_port, front_door, serving


@pytest.fixture
def door(stack: Stack, settings: Settings, tmp_path: Path) -> Iterator[str]:
    tls = {"ca_file": settings.ca_file, "cert_file": settings.cert_file, "key_file": settings.key_file}
    cfg = settings.updated(state_dir=tmp_path / "core", tls={**tls, "client_ca_file": settings.ca_file})
    with front_door(cfg, {"north": new_token()}) as (_, app), serving(app, free_port(), tls=cfg) as url:
        yield url


def _edge(settings: Settings, tmp_path: Path, certificate: bool) -> Settings:
    """An edge's settings: the core's CA, and a client certificate the same CA signed if asked."""
    tls: dict[str, object] = {"ca_file": settings.ca_file}
    if certificate:
        cert, key = tmp_path / "north.crt", tmp_path / "north.key"
        Pki(settings.tls_dir).issue("north", (), cert, key, server=False)
        tls |= {"client_cert_file": cert, "client_key_file": key}
    return settings.updated(tls=tls)


def test_an_edge_without_a_client_certificate_is_refused(
    door: str, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{door}/healthz", verify=edge_context(_edge(settings, tmp_path, certificate=False)))


def test_an_edge_with_a_certificate_the_ca_signed_gets_through(
    door: str, settings: Settings, tmp_path: Path
) -> None:
    answer = httpx.get(f"{door}/healthz", verify=edge_context(_edge(settings, tmp_path, certificate=True)))

    assert answer.status_code == 200
