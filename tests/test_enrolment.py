"""Enrolling, rotating and revoking a store's front-door token, against the running door.

A rotation leaves two tokens valid at once, so the store switches with no downtime; the
door reads its tokens file again when it changes, without a restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge_sync.delivery.pull import DoorClient
from edgecore.enrolment import enrol, revoke
from edgecore.stack import Stack
from edgecore.stack.site import read_env_file
from foundation.credentials import new_token
from foundation.errors import Conflict, Unauthorized
from foundation.layout import edge_model_name
from foundation.settings import Settings
from foundation.tls import client_context
from testkit.uplink import free_port, front_door, serving

STORE = "north"


@dataclass(frozen=True)
class Door:
    settings: Settings
    url: str

    def admits(self, token: str) -> bool:
        http = httpx.Client(
            headers={"Authorization": f"Bearer {token}"}, verify=client_context(self.settings.ca_file)
        )
        try:
            DoorClient(self.url, STORE, http).newest(edge_model_name(STORE))
        except Unauthorized:
            return False
        finally:
            http.close()
        return True


@pytest.fixture
def door(stack: Stack, settings: Settings, tmp_path: Path) -> Iterator[Door]:
    unique = uuid.uuid4().hex[:10]
    cfg = settings.updated(
        state_dir=tmp_path,
        buckets={
            "training": f"e-train-{unique}",
            "models": f"e-models-{unique}",
            "edge_prefix": f"e-{unique}-",
        },
        tls={"ca_file": settings.ca_file, "cert_file": settings.cert_file, "key_file": settings.key_file},
    )
    with front_door(cfg, {"elsewhere": new_token()}) as (_, app), serving(app, free_port(), tls=cfg) as url:
        yield Door(cfg, url)


def _token(env_file: Path) -> str:
    return read_env_file(env_file)["EDGECORE_DOOR_TOKEN"]


def test_an_enrolled_store_s_token_opens_the_door(door: Door, tmp_path: Path) -> None:
    enrol(door.settings, STORE, tmp_path / "edge.env", kafka=False)
    assert door.admits(_token(tmp_path / "edge.env"))


def test_enrolling_a_store_twice_without_rotating_is_refused(door: Door, tmp_path: Path) -> None:
    enrol(door.settings, STORE, tmp_path / "edge.env", kafka=False)
    with pytest.raises(Conflict, match="--rotate"):
        enrol(door.settings, STORE, tmp_path / "again.env", kafka=False)


def test_after_a_rotation_the_old_and_the_new_token_both_open_the_door(door: Door, tmp_path: Path) -> None:
    enrol(door.settings, STORE, tmp_path / "edge.env", kafka=False)
    old = _token(tmp_path / "edge.env")
    enrol(door.settings, STORE, tmp_path / "edge.env", rotate=True, kafka=False)
    new = _token(tmp_path / "edge.env")

    assert new != old
    assert door.admits(old) and door.admits(new)


def test_revoking_the_old_token_closes_the_door_to_it_and_not_to_the_new_one(
    door: Door, tmp_path: Path
) -> None:
    enrol(door.settings, STORE, tmp_path / "edge.env", kafka=False)
    old = _token(tmp_path / "edge.env")
    enrol(door.settings, STORE, tmp_path / "edge.env", rotate=True, kafka=False)

    assert revoke(door.settings, STORE, old_only=True) == 1

    assert not door.admits(old)
    assert door.admits(_token(tmp_path / "edge.env"))


def test_the_env_file_a_store_gets_is_readable_by_its_owner_only(door: Door, tmp_path: Path) -> None:
    enrol(door.settings, STORE, tmp_path / "edge.env", kafka=False)
    assert (tmp_path / "edge.env").stat().st_mode & 0o077 == 0
