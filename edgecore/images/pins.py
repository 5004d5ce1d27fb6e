"""Pointing the compiled pipeline and the kustomize overlays at pushed images by digest.

The overlays in git name the published tags; pinning writes kustomize's ``images:``
entries (name → registry and digest) into an overlay's kustomization, which is what a
release commits, and rewrites each executor's image in a compiled pipeline, which is
what KFP runs.  Both refuse a name that was never pushed rather than leave it on a tag,
and digests of a loopback registry unless told they are for this machine (``local``):
no cluster pulls from 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from foundation.errors import InvalidInput
from foundation.images import MODELCAR_BASE_IMAGE, repository


def split(pinned: str) -> tuple[str, str]:
    """``host/edgecore/train@sha256:…`` → (``host/edgecore/train``, ``sha256:…``)."""
    name, at, digest = pinned.partition("@")
    if not at or not digest.startswith("sha256:"):
        raise InvalidInput(f"{pinned!r} is not a reference by digest")
    return name, digest


def pin_overlay(overlay: Path, pushed: Mapping[str, str], local: bool = False) -> list[str]:
    """Write one ``images:`` entry per pushed image into ``overlay``'s kustomization, in place
    of any before (the rest of the file, comments too, is left as it was); the names pinned."""
    path = overlay / "kustomization.yaml"
    if not path.is_file():
        raise InvalidInput(f"{overlay} has no kustomization.yaml")
    # no workload runs the modelcar base: publish layers each model on it (EDGECORE_MODELCAR_BASE)
    pushed = {name: pinned for name, pinned in pushed.items() if name != MODELCAR_BASE_IMAGE}
    _check(pushed, local)
    kustomization = yaml.safe_load(path.read_text())
    entries = {entry["name"]: entry for entry in kustomization.get("images", [])}
    for published, pinned in sorted(pushed.items()):
        new_name, digest = split(pinned)
        entries[repository(published)] = {
            "name": repository(published),
            "newName": new_name,
            "digest": digest,
        }
    block = yaml.safe_dump({"images": list(entries.values())}, sort_keys=False)
    path.write_text(_without_images(path.read_text()).rstrip("\n") + "\n" + block)
    return sorted(pushed)


def _check(pushed: Mapping[str, str], local: bool) -> None:
    if not pushed:
        raise InvalidInput("no image was pushed yet: run `make images`")
    loopback = sorted(p for p in pushed.values() if p.startswith(("127.", "localhost", "[::1]")))
    if loopback and not local:
        raise InvalidInput(
            f"{loopback[0]} is on this machine's loopback registry, which no cluster can pull from: "
            "push to the cluster's registry, or pin for this machine only (--local)"
        )


def _without_images(text: str) -> str:
    """The kustomization without its top-level ``images:`` block."""
    kept, skipping = [], False
    for line in text.splitlines():
        if line.startswith("images:"):
            skipping = True
            continue
        if skipping and line and not line[0].isspace() and not line.startswith("-"):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"


def pin_pipeline(package: Path, pushed: Mapping[str, str], local: bool = False) -> int:
    """Rewrite every executor image of a compiled pipeline to its digest, a digest pinned
    before included; how many executors were pinned."""
    if not package.is_file():
        raise InvalidInput(
            f"{package} is not a file: compile the pipeline first (`edgecore pipeline compile`)"
        )
    _check(pushed, local)
    by_repository = {split(pinned)[0]: pinned for pinned in pushed.values()}
    documents = list(yaml.safe_load_all(package.read_text()))
    changed = 0
    for document in documents:
        executors: dict[str, Any] = (document or {}).get("deploymentSpec", {}).get("executors", {})
        for name, executor in executors.items():
            container = executor.get("container")
            if container is None:
                continue
            image = container["image"]
            pinned = pushed.get(image) or by_repository.get(image.partition("@")[0])
            if pinned is None:
                raise InvalidInput(f"executor {name} runs {image}, which was never pushed: run `make images`")
            container["image"] = pinned
            changed += 1
    package.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return changed
