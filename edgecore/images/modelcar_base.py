"""The modelcar base: Debian's static busybox as a one-layer image, pushed beside the other images.

KServe runs each modelcar as a sidecar through a shell, so every modelcar that publish
pushes is layered on this image (``foundation.modelcar``).  Its layer is built here from
the host's ``/bin/busybox`` (``make containers`` installs busybox-static), byte for byte
the same each time, and imported into podman, which pushes it as it pushes the others:
to the stack's registry, or to a cluster's after ``podman login``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgecore.images.podman import Podman
from edgecore.stack.settings import StackSettings
from foundation.modelcar import base_layer

BUSYBOX = Path("/bin/busybox")


def modelcar_base(engine: Podman, stack: StackSettings, report: Callable[[str], None]) -> str:
    """The base imported into podman (once per busybox); its local reference."""
    folder = stack.cache_dir / "images" / "modelcar-base"
    folder.mkdir(parents=True, exist_ok=True)
    layer = base_layer(BUSYBOX, folder / "layer.tar.gz")
    ref = f"localhost/edgecore/modelcar-base:{layer.digest.removeprefix('sha256:')[:16]}"
    if engine.image(ref) is None:
        report("importing the modelcar base (busybox)")
        engine.run(
            ["import", "--change", 'CMD ["sh"]', str(layer.path), ref], "podman import of the modelcar base"
        )
    return ref
