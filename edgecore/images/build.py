"""Building one image from uv.lock, without a network inside the build.

The context holds the image's requirements exported from uv.lock with their hashes, the
project's wheel and the uv binary; the host's uv cache (filled by ``make setup``) is
mounted read-write at ``/uv-cache`` and uv installs offline from it.  An image is keyed by
everything that goes into it (Containerfile, requirements, the wheel's files, the base's
id): a key already built is not built again.  Within a build podman's layer cache keeps
the dependencies' layer while only the sources change.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecore.images.podman import Podman
from edgecore.images.specs import ImageSpec
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, run_build

CONTAINERFILE = Path("images") / "Containerfile"


@dataclass(frozen=True)
class BuiltImage:
    spec: ImageSpec
    ref: str
    """``localhost/edgecore/<name>:<key>``: this exact build."""
    image_id: str
    size_bytes: int
    seconds: float
    cached: bool


def uv_binary() -> str:
    """The uv that installed this environment (``make setup`` pins it), else the one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if found is None:
        raise StackError("no `uv` beside this Python or on PATH: run `make setup`")
    return found


def uv_cache_dir(uv: str) -> Path:
    return Path(
        subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    )


def sources(root: Path) -> list[str]:
    """What the wheel is built from: pyproject.toml's packages (one list, there) and its readme."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    return ["pyproject.toml", project["project"]["readme"], *[name.rstrip("*") for name in packages]]


def build_wheel(uv: str, root: Path, out: Path, log: Path) -> Path:
    """The project's wheel, built from a clean copy of the checkout at ``root``: setuptools'
    ``build/`` folder in a checkout can hold modules deleted since, which a wheel would ship."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    staged = out.parent / "sources"
    shutil.rmtree(staged, ignore_errors=True)
    for name in sources(root):
        source = root / name
        if source.is_dir():
            shutil.copytree(source, staged / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            staged.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staged / name)
    argv = [uv, "build", "--wheel", "--out-dir", str(out), str(staged)]
    run_build(argv, os.environ, log, "uv build --wheel")
    shutil.rmtree(staged)
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise StackError(f"uv build left {len(wheels)} wheels in {out}")
    return wheels[0]


def requirements(uv: str, root: Path, spec: ImageSpec) -> str:
    """uv.lock's pins for the image's extras, with hashes; the project itself comes as a wheel."""
    extras = [arg for extra in spec.extras for arg in ("--extra", extra)]
    argv = [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header", *extras]
    result = subprocess.run(argv, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"uv export for {spec.name} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def fill_index_cache(uv: str, requirements: Path, scratch: Path) -> None:
    """Every pin's index page in the host's uv cache: ``uv sync`` from a lock file fetches the wheels
    but never those pages, and the offline install inside the build cannot find a pin without
    them (a fresh machine's first build failed so).  A dry run into an empty venv asks for each."""
    shutil.rmtree(scratch, ignore_errors=True)
    dry_run = ["--dry-run", "--no-deps", "--require-hashes", "-r", str(requirements)]
    for argv in (
        [uv, "venv", "-q", "--python", sys.executable, str(scratch)],
        [uv, "pip", "install", "-q", *dry_run, "--python", str(scratch / "bin" / "python")],
    ):
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"filling uv's cache for the build failed: {result.stderr.strip()[-500:]}")
    shutil.rmtree(scratch, ignore_errors=True)


def wheel_digest(wheel: Path) -> str:
    """The wheel's files, not its zip times: the same sources give the same key."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name))
    return digest.hexdigest()


def build_image(
    podman: Podman,
    stack: StackSettings,
    spec: ImageSpec,
    base: str,
    root: Path,
    built_wheel: Path,
    report: Callable[[str], None],
) -> BuiltImage:
    """Build ``spec`` on ``base`` with the project's ``built_wheel`` and the pins of the checkout at
    ``root``, unless this exact build exists."""
    uv = uv_binary()
    context = stack.cache_dir / "images" / f"context-{spec.name}"
    shutil.rmtree(context / "wheel", ignore_errors=True)
    (context / "wheel").mkdir(parents=True)
    wheel = Path(shutil.copy2(built_wheel, context / "wheel" / built_wheel.name))
    pins = requirements(uv, root, spec)
    (context / "requirements.txt").write_text(pins)
    shutil.copy2(uv, context / "uv")
    base_info = podman.image(base)
    if base_info is None:
        raise StackError(f"the base {base} is not in podman's storage")
    key = hashlib.sha256(
        "\n".join(
            [(root / CONTAINERFILE).read_text(), pins, wheel_digest(wheel), str(base_info["Id"])]
        ).encode()
    ).hexdigest()[:16]
    ref = f"localhost/edgecore/{spec.name}:{key}"
    started = time.perf_counter()
    cached = podman.image(ref) is not None
    if not cached:
        report(f"building {spec.name} ({spec.purpose})")
        fill_index_cache(uv, context / "requirements.txt", stack.cache_dir / "images" / "index-probe")
        podman.run(
            [
                "build",
                "--network=none",
                f"--volume={uv_cache_dir(uv)}:/uv-cache",
                f"--build-arg=BASE={base}",
                f"--file={root / CONTAINERFILE}",
                f"--tag={ref}",
                str(context),
            ],
            f"podman build of {spec.name}",
            log=f"image-{spec.name}-build.log",
        )
        try:
            podman.run(["run", "--rm", ref, *spec.check()], f"the check of {spec.name}")
        except StackError:
            with contextlib.suppress(StackError):  # never taken for a good build later
                podman.run(["rmi", ref], f"podman rmi {ref}")
            raise
    podman.run(["tag", ref, spec.published], f"podman tag {spec.published}")
    info = podman.image(ref)
    if info is None:
        raise StackError(f"{ref} is gone from podman's storage right after its build")
    return BuiltImage(
        spec, ref, str(info["Id"]), int(str(info["Size"])), time.perf_counter() - started, cached
    )
