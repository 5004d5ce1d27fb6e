"""The images edgecore runs in (``make images``): built with podman from uv.lock, pushed to
the stack's registry, and pinned by digest where the pipeline and the overlays name them."""
