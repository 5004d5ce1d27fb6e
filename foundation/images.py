"""The names edgecore's images are published under: one place for the component decorator,
the manifests and the image builder.

A build tags each image with its published name; a push to a registry records the digest,
and the compiled pipeline and the kustomize overlays are then pinned to it
(``edgecore images pin``), so a cluster runs exactly the bytes that were built.
"""

from __future__ import annotations

PUBLISHER = "ghcr.io/edgecore"
TAG = "0.1.0"
"""Follows the project's version."""

TRAIN_IMAGE = f"{PUBLISHER}/edgecore-train:{TAG}"
"""Every KFP component and the core's listener: TensorFlow, the KFP SDK, KServe."""
SERVE_IMAGE = f"{PUBLISHER}/edgecore-serve:{TAG}"
"""The model server: LiteRT and KServe, no TensorFlow."""
SERVICES_IMAGE = f"{PUBLISHER}/edgecore-services:{TAG}"
"""The edge's gateway and sync controller, and the core's front door: no TensorFlow, no KServe."""

MODELCAR_BASE_IMAGE = f"{PUBLISHER}/edgecore-modelcar-base:{TAG}"
"""What every modelcar is layered on: a static busybox, the shell KServe runs the sidecar with."""


def repository(image: str) -> str:
    """``ghcr.io/edgecore/edgecore-train:0.1.0`` → ``ghcr.io/edgecore/edgecore-train``."""
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image
