"""The three images and what each must hold.

Each is the same Containerfile with another set of uv.lock's extras: the training image
carries everything, the serving and services images leave TensorFlow and the KFP SDK
out.  ``check`` runs in the built image: a build that cannot start its service, or that
would carry TensorFlow where it must not, fails there and not in a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundation.errors import InvalidInput
from foundation.images import SERVE_IMAGE, SERVICES_IMAGE, TRAIN_IMAGE


@dataclass(frozen=True)
class ImageSpec:
    name: str
    published: str
    extras: tuple[str, ...]
    purpose: str
    imports: tuple[str, ...]
    absent: tuple[str, ...] = ()
    """Packages that must not be importable in the image."""

    def check(self) -> list[str]:
        """A command proving the image holds what it must, and nothing it must not."""
        script = f"import {', '.join(self.imports)}\n"
        for package in self.absent:
            found = f"importlib.util.find_spec({package!r})"
            script += (
                f"import importlib.util\nassert {found} is None, '{package} must not be in {self.name}'\n"
            )
        return ["python", "-c", script]


TRAIN = ImageSpec(
    name="train",
    published=TRAIN_IMAGE,
    extras=("training",),
    purpose="every KFP component and the core's listener",
    imports=("tensorflow", "kfp", "skimage", "components.wrappers", "components.sensor_wrappers"),
)
SERVE = ImageSpec(
    name="serve",
    published=SERVE_IMAGE,
    extras=("serving",),
    purpose="the model server (KServe predictor on LiteRT)",
    imports=("serving.server", "serving.runners", "ai_edge_litert.interpreter"),
    absent=("tensorflow", "keras", "kfp"),
)
SERVICES = ImageSpec(
    name="services",
    published=SERVICES_IMAGE,
    extras=(),
    purpose="the edge's gateway and sync controller, the core's front door",
    imports=(
        "edgecore.cli",
        "edge_sync.uplink.service",
        "edge_sync.delivery.service",
        "edge_sync.frontdoor",
        "serving.sensor_monitor",
    ),
    absent=("tensorflow", "keras", "kfp", "kserve"),
)
IMAGES = (TRAIN, SERVE, SERVICES)


def named(names: list[str] | None) -> tuple[ImageSpec, ...]:
    """The specs called ``names`` (all when None), or InvalidInput naming the known ones."""
    if not names:
        return IMAGES
    known = {spec.name: spec for spec in IMAGES}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidInput(f"unknown image {unknown[0]!r}: use {', '.join(known)}")
    return tuple(known[name] for name in names)
