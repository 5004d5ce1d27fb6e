"""Where a verified model version is deployed: a KServe InferenceService or the local server."""

from edge_sync.delivery.targets.base import Deployed, Target, TargetState

__all__ = ["Deployed", "Target", "TargetState"]
