"""Pointing the compiled pipeline and the kustomize overlays at pushed images by digest.

The overlays in git name the published tags; pinning writes kustomize's ``images:``
entries (name → registry and digest) into an overlay's kustomization, which is what a
release commits, and rewrites each executor's image in a compiled pipeline, which is
what KFP runs.  Both refuse a name that was never pushed rather than leave it on a tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from foundation.errors import InvalidInput
from foundation.images import repository


def split(pinned: str) -> tuple[str, str]:
    """``host/edgecore/train@sha256:…`` → (``host/edgecore/train``, ``sha256:…``)."""
    name, at, digest = pinned.partition("@")
    if not at or not digest.startswith("sha256:"):
        raise InvalidInput(f"{pinned!r} is not a reference by digest")
    return name, digest


def pin_overlay(overlay: Path, pushed: Mapping[str, str]) -> list[str]:
    """Write one ``images:`` entry per pushed image into ``overlay``'s kustomization; the
    published names pinned."""
    path = overlay / "kustomization.yaml"
    if not path.is_file():
        raise InvalidInput(f"{overlay} has no kustomization.yaml")
    if not pushed:
        raise InvalidInput("no image was pushed yet: run `make images`")
    kustomization = yaml.safe_load(path.read_text())
    entries = {entry["name"]: entry for entry in kustomization.get("images", [])}
    for published, pinned in sorted(pushed.items()):
        new_name, digest = split(pinned)
        entries[repository(published)] = {
            "name": repository(published),
            "newName": new_name,
            "digest": digest,
        }
    kustomization["images"] = list(entries.values())
    path.write_text(_with_header(path.read_text(), yaml.safe_dump(kustomization, sort_keys=False)))
    return sorted(pushed)


def pin_pipeline(package: Path, pushed: Mapping[str, str]) -> int:
    """Rewrite every executor image of a compiled pipeline to its digest; how many were."""
    documents = list(yaml.safe_load_all(package.read_text()))
    changed = 0
    for document in documents:
        executors: dict[str, Any] = (document or {}).get("deploymentSpec", {}).get("executors", {})
        for name, executor in executors.items():
            container = executor.get("container")
            if container is None:
                continue
            image = container["image"]
            if "@sha256:" in image:
                continue
            if image not in pushed:
                raise InvalidInput(f"executor {name} runs {image}, which was never pushed: run `make images`")
            container["image"] = pushed[image]
            changed += 1
    package.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return changed


def _with_header(before: str, body: str) -> str:
    """The kustomization's leading comments survive a rewrite."""
    header = []
    for line in before.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return "\n".join(header) + ("\n" if header else "") + body
