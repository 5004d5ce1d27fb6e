"""Where a verified model version is deployed: a KServe InferenceService or the local server."""

from edge_sync.targets.base import Deployed, RolloutFailed, Target, TargetState

__all__ = ["Deployed", "RolloutFailed", "Target", "TargetState"]
