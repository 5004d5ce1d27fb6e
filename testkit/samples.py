"""Sample contract objects shared by several test modules."""

from __future__ import annotations

from foundation.events import TrainingDataReady

READY = TrainingDataReady(
    dataset="hypermarket",
    version="v000001",
    edge="hypermarket",
    labels=["MILK-1L", "BREAD-WHITE"],
    object_count=40,
    bucket="edgecore-training",
    prefix="datasets/hypermarket/v000001/",
    manifest_sha256="0" * 64,
)
