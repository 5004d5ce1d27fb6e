"""A flood of the largest images a device may post does not take the store's memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecore.stack import Stack
from foundation.credentials import new_token
from foundation.settings import Settings
from testkit.flood import big_png, flood, gateway_process
from testkit.uplink import gateway_tokens

MEMORY_BOUND_MB = 512
CLIENTS = 200


@pytest.mark.timeout(900)
def test_two_hundred_concurrent_large_pngs_stay_under_the_memory_bound_and_memory_is_given_back(
    stack: Stack, settings: Settings, unique: str, tmp_path: Path
) -> None:
    edge, token = f"flood-{unique}", new_token()
    cfg = settings.updated(state_dir=tmp_path, buckets={"edge_prefix": f"t{unique}-"})
    gateway_tokens(cfg, edge, devices={"camera": token}, staff={"manager": new_token()})
    image = big_png()

    with gateway_process(cfg, edge, tmp_path / "gateway.log") as (url, process):
        result = flood(url, process, token, image, CLIENTS)

    assert result.statuses.get(201, 0) + result.statuses.get(200, 0) == CLIENTS, result.statuses
    assert result.peak_rss_mb < MEMORY_BOUND_MB, result
    assert result.after_rss_mb < result.idle_rss_mb + 100, result
