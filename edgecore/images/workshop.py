"""Building, pushing and using the images in one place: the composition root of ``edgecore images``.

The images are built from the checkout this package runs from (``images/Containerfile``
beside the packages), so ``make images`` in a clone builds that clone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecore.images.base import ensure_base
from edgecore.images.build import CONTAINERFILE, BuiltImage, build_image, build_wheel, uv_binary
from edgecore.images.modelcar_base import modelcar_base
from edgecore.images.podman import Podman, podman
from edgecore.images.push import Destination, push
from edgecore.images.specs import TRAIN, named
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError
from foundation.images import MODELCAR_BASE_IMAGE
from pipelines.step_containers import ContainerEngine

CHECKOUT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Made:
    built: BuiltImage
    pinned: str | None
    """``<registry>/edgecore/<name>@sha256:…`` once pushed."""
    push_s: float


def checkout() -> Path:
    if not (CHECKOUT / CONTAINERFILE).is_file():
        raise StackError(f"no {CONTAINERFILE} beside the packages: build the images from a checkout")
    return CHECKOUT


def make_images(
    stack: StackSettings,
    destination: Destination | None,
    names: list[str] | None,
    report: Callable[[str], None],
) -> list[Made]:
    """Build the named images (all by default) and, given a ``destination``, push them there."""
    specs = named(names)
    engine = podman(stack)
    base = ensure_base(engine, stack, report)
    wheel = build_wheel(
        uv_binary(),
        checkout(),
        stack.cache_dir / "images" / "wheel",
        stack.cache_dir / "logs" / "wheel-build.log",
    )
    made = []
    for spec in specs:
        built = build_image(engine, stack, spec, base, checkout(), wheel, report)
        pinned, push_s = None, 0.0
        if destination is not None:
            report(f"pushing {spec.name} to {destination.address}")
            started = time.perf_counter()
            pinned = push(engine, built.ref, spec.name, spec.published, destination)
            push_s = time.perf_counter() - started
        made.append(Made(built, pinned, push_s))
    if destination is not None and not names:  # every modelcar publish pushes is layered on it
        report(f"pushing the modelcar base to {destination.address}")
        push(engine, modelcar_base(engine, stack, report), "modelcar-base", MODELCAR_BASE_IMAGE, destination)
    return made


def step_engine(stack: StackSettings, report: Callable[[str], None] = lambda _: None) -> ContainerEngine:
    """podman as the local DAG's step launcher, on the training image of this checkout: built
    first if the sources changed (one layer), so no step runs code older than the checkout."""
    (train,) = make_images(stack, None, [TRAIN.name], report)
    engine: Podman = podman(stack)
    return ContainerEngine((engine.binary,), engine.env, {TRAIN.published: train.built.ref})
