"""The base every image starts from.

Where a registry of base images is reachable, ``image_base`` names one (``python:3.11-slim``).
Where none is (these machines reach Debian's packages but no container registry), the base
is a Debian bookworm root filesystem made here with mmdebstrap: minbase plus Python 3.11 and
the few shared libraries the wheels expect, without documentation.  The tarball is cached
under ``<cache_dir>/images`` and imported into podman once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable

from edgecore.images.podman import Podman
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, run_build

SUITE = "bookworm"
PACKAGES = ("python3", "ca-certificates", "libgomp1")
"""Python 3.11 for the wheels uv.lock pins; CA roots for TLS; OpenMP for TensorFlow and LiteRT."""
EXCLUDED = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
EPOCH = "1704067200"
"""SOURCE_DATE_EPOCH for mmdebstrap: file times in the tarball do not depend on the day it was made."""


def debian_key(stack: StackSettings) -> str:
    recipe = "\n".join([SUITE, stack.debian_mirror, *PACKAGES, *EXCLUDED])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def ensure_base(podman: Podman, stack: StackSettings, report: Callable[[str], None]) -> str:
    """The reference of the base image, present in podman's storage (made or pulled if needed)."""
    if stack.image_base != "debian":
        if podman.image(stack.image_base) is None:
            report(f"pulling the base {stack.image_base}")
            podman.run(["pull", stack.image_base], f"podman pull {stack.image_base}", log="base-pull.log")
        return stack.image_base
    ref = f"localhost/edgecore/base:{SUITE}-{debian_key(stack)}"
    if podman.image(ref) is not None:
        return ref
    tarball = stack.cache_dir / "images" / f"{SUITE}-{debian_key(stack)}.tar"
    if not tarball.is_file():
        report(f"making the Debian {SUITE} root filesystem with mmdebstrap")
        _mmdebstrap(stack, tarball)
    report(f"importing the base as {ref}")
    podman.run(["import", str(tarball), ref], "podman import of the base", log="base-import.log")
    return ref


def _mmdebstrap(stack: StackSettings, tarball: os.PathLike[str]) -> None:
    binary = shutil.which("mmdebstrap")
    if binary is None:
        raise StackError("`mmdebstrap` is not on PATH: run `make containers`")
    partial = f"{os.fspath(tarball)}.partial"
    os.makedirs(os.path.dirname(partial), exist_ok=True)
    argv = [
        binary,
        "--variant=minbase",
        "--format=tar",
        f"--include={','.join(PACKAGES)}",
        *[f"--dpkgopt=path-exclude={path}" for path in EXCLUDED],
        SUITE,
        partial,
        stack.debian_mirror,
    ]
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    run_build(argv, env, stack.cache_dir / "logs" / "mmdebstrap.log", f"mmdebstrap {SUITE}")
    os.replace(partial, tarball)
