"""Building the Kubernetes manifests under ``manifests/`` with a pinned kustomize.

kustomize is installed the same way as MinIO, with ``go install`` into the per-user
cache, so building the overlays needs no cluster and no kubectl.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from edgecore.stack.gobuild import go_install
from edgecore.stack.settings import StackSettings
from foundation.errors import InvalidInput

MODULE = "sigs.k8s.io/kustomize/kustomize/v5"


def ensure_kustomize(stack: StackSettings) -> Path:
    """The pinned kustomize binary, built on first use."""
    go_install(stack, MODULE, stack.kustomize_module_version, "kustomize", "kustomize")
    return stack.bin_dir / "kustomize"


def build(stack: StackSettings, overlay: Path) -> list[dict[str, Any]]:
    """Render one kustomization directory into its list of objects."""
    if not (overlay / "kustomization.yaml").is_file():
        raise InvalidInput(f"{overlay} has no kustomization.yaml")
    result = subprocess.run(
        [str(ensure_kustomize(stack)), "build", str(overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InvalidInput(f"kustomize build {overlay} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
