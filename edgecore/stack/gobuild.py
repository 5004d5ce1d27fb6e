"""Building the stack's Go programs from the Go module proxy, into the per-user cache.

``go_install`` builds a module that installs as published (MinIO, the OCI registry,
kustomize), once per pinned version.  ``build`` is for a module that cannot be
``go install``-ed as published:
``k8s.io/kubernetes`` and ``go.etcd.io/etcd/server/v3`` each replace their sibling
modules with folders of their own repository (``./staging/...``, ``../api``), so
``go install <module>@<version>`` refuses them.  A small wrapper module requires the
module and points each sibling at its published build instead; ``go build`` of the
wanted package then works from the Go module proxy alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, require, run_build


def installed_version(stack: StackSettings, binary: str) -> str | None:
    """The version of ``binary`` built into the cache, or None when it is not there."""
    path, stamp = stack.bin_dir / binary, stack.bin_dir / f"{binary}.version"
    if not path.exists() or not stamp.exists():
        return None
    return stamp.read_text().strip()


def go_install(stack: StackSettings, package: str, version: str, binary: str, what: str) -> bool:
    """``go install package@version`` into ``<cache_dir>/bin`` unless that exact version is there;
    True if it was built.  The version is written beside the binary only once it is built."""
    if installed_version(stack, binary) == version:
        return False
    stack.bin_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(stack.bin_dir), "GOFLAGS": "-mod=mod"}
    run_build(
        [require("go"), "install", "-trimpath", f"{package}@{version}"],
        env,
        stack.cache_dir / "logs" / f"{binary}-build.log",
        f"building {what} {version} with go install",
    )
    (stack.bin_dir / f"{binary}.version").write_text(version + "\n")
    return True


def local_siblings(gomod: str) -> list[str]:
    """The modules a ``go.mod`` replaces with a folder (``=> ./...`` or ``=> ../...``), except
    the ``FORBIDDEN_DEPENDENCY`` guards, which no build reaches."""
    found = set()
    for line in gomod.splitlines():
        left, arrow, right = line.partition("=>")
        target = right.strip()
        words = left.split()
        if arrow and words and target.startswith(".") and "FORBIDDEN" not in target:
            found.add(words[1] if words[0] == "replace" and len(words) > 1 else words[0])
    return sorted(found)


def wrapper_module(module: str, version: str, siblings: list[str], sibling_version: str) -> str:
    replaces = "\n".join(f"\t{m} => {m} {sibling_version}" for m in siblings)
    return (
        "module edgecore.local/build\n\ngo 1.24.0\n\n"
        f"require {module} {version}\n\nreplace (\n{replaces}\n)\n"
    )


def build(
    go: str,
    module: str,
    version: str,
    sibling_version: str,
    package: str,
    out: Path,
    workdir: Path,
    log: Path,
    ldflags: str = "",
) -> None:
    """``go build`` ``package`` of ``module@version`` into ``out``, siblings at ``sibling_version``."""
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    found = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"], env=env, capture_output=True, text=True
    )
    if found.returncode != 0:
        raise StackError(f"go mod download {module}@{version} failed: {found.stdout[-500:]}")
    siblings = local_siblings(Path(json.loads(found.stdout)["GoMod"]).read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "go.mod").write_text(wrapper_module(module, version, siblings, sibling_version))
    flags = [f"-ldflags={ldflags}"] if ldflags else []
    run_build(
        [go, "build", "-trimpath", *flags, "-o", str(out), package],
        env,
        log,
        f"building {package} {version} with go build",
        cwd=workdir,
    )
