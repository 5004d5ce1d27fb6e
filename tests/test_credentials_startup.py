"""Processes start only with credentials worth the name, and the core needs none of an edge's.

A placeholder (``change-me-…``) or short token stops the process at start-up with one line
naming what is wrong, never the secret itself.  The core's front door starts from the
core's settings alone: nothing in its environment opens an edge's storage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edgecore.stack import Stack
from foundation.credentials import new_token, write_tokens_file
from foundation.settings import Settings
from foundation.tls import client_context
from testkit.conditions import wait_for
from testkit.uplink import free_port

EDGECORE = str(Path(sys.executable).with_name("edgecore"))
PLACEHOLDER = "change-me-hypermarket"
LONG_PLACEHOLDER = "change-me-hypermarket-0123456789abcdefghijklmnop"


def _edgecore(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGECORE, *args], env=env, capture_output=True, text=True, timeout=120)


def _core_env(settings: Settings, tmp: Path, **extra: str) -> dict[str, str]:
    """The core's settings only: no EDGECORE_* of any edge (no door token, no edge storage)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECORE_")}
    return {
        **env,
        "EDGECORE_STATE_DIR": str(tmp),
        "EDGECORE_TLS_CA_FILE": str(settings.ca_file),
        "EDGECORE_TLS_CERT_FILE": str(settings.cert_file),
        "EDGECORE_TLS_KEY_FILE": str(settings.key_file),
        **extra,
    }


@pytest.mark.parametrize("token", [PLACEHOLDER, LONG_PLACEHOLDER, "x" * 20])
def test_the_front_door_refuses_to_start_with_a_weak_edge_token(
    stack: Stack, settings: Settings, tmp_path: Path, token: str
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"hypermarket": token}))
    env = _core_env(
        settings, tmp_path, EDGECORE_DOOR_TOKENS_FILE=str(tokens), EDGECORE_DOOR_PORT=str(free_port())
    )
    result = _edgecore(["core", "door"], env)
    assert result.returncode == 2
    assert "hypermarket" in result.stderr + result.stdout
    assert token not in result.stderr + result.stdout


@pytest.mark.parametrize("command", [["edge", "ship", "--edge", "hypermarket"], ["edges", "run"]])
def test_an_edge_process_refuses_to_start_with_a_placeholder_door_token(
    stack: Stack, settings: Settings, tmp_path: Path, command: list[str]
) -> None:
    env = {**os.environ, "EDGECORE_STATE_DIR": str(tmp_path), "EDGECORE_DOOR_TOKEN": LONG_PLACEHOLDER}
    fleet = tmp_path / "edges.json"
    target = {"kind": "kserve", "context": "in-cluster", "namespace": "edge", "name": "hypermarket-products"}
    fleet.write_text(json.dumps([{"edge": "hypermarket", "target": target}]))
    result = _edgecore([*command, *(["--fleet", str(fleet)] if command[0] == "edges" else [])], env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "placeholder" in result.stderr + result.stdout
    assert LONG_PLACEHOLDER not in result.stderr + result.stdout


def test_the_front_door_starts_from_the_core_s_settings_with_no_edge_credential(
    stack: Stack, settings: Settings, tmp_path: Path
) -> None:
    tokens = tmp_path / "door" / "tokens.json"
    write_tokens_file(tokens, {"hypermarket": [new_token()]})
    port = free_port()
    env = _core_env(settings, tmp_path, EDGECORE_DOOR_PORT=str(port))
    door = subprocess.Popen([EDGECORE, "core", "door"], env=env)
    try:
        with httpx.Client(verify=client_context(settings.ca_file)) as http:

            def healthy() -> bool:
                try:
                    return http.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
                except httpx.TransportError:
                    assert door.poll() is None, "the door exited"
                    return False

            wait_for(healthy, timeout_s=60, what="the door answering over TLS")
    finally:
        door.terminate()
        door.wait(timeout=30)
