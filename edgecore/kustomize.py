"""Building the Kubernetes manifests under ``manifests/`` with a pinned kustomize.

kustomize is installed the same way as MinIO, with ``go install`` into the per-user
cache, so building the overlays needs no cluster and no kubectl.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from edgecore.errors import InvalidInput
from edgecore.settings import Settings
from edgecore.stack.tools import require, run_build

MODULE = "sigs.k8s.io/kustomize/kustomize/v5"


def ensure_kustomize(settings: Settings) -> Path:
    """The pinned kustomize binary, built on first use."""
    binary = settings.bin_dir / "kustomize"
    stamp = settings.bin_dir / "kustomize.version"
    wanted = settings.kustomize_module_version
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return binary
    settings.bin_dir.mkdir(parents=True, exist_ok=True)
    run_build(
        [require("go"), "install", f"{MODULE}@{wanted}"],
        {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(settings.bin_dir)},
        settings.cache_dir / "logs" / "kustomize-build.log",
        f"building kustomize {wanted} with go install",
    )
    stamp.write_text(wanted + "\n")
    return binary


def build(settings: Settings, overlay: Path) -> list[dict[str, Any]]:
    """Render one kustomization directory into its list of objects."""
    if not (overlay / "kustomization.yaml").is_file():
        raise InvalidInput(f"{overlay} has no kustomization.yaml")
    result = subprocess.run(
        [str(ensure_kustomize(settings)), "build", str(overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InvalidInput(f"kustomize build {overlay} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
