"""Helpers of the edge-sync tests: real HTTP servers on free ports, real images and tars."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import numpy as np
import uvicorn
from fastapi import FastAPI
from PIL import Image

from edgecore.demo.world import free_port as free_port  # the tests' one way to pick a port


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1:port in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def image_bytes(seed: int, fmt: str = "JPEG", side: int = 48) -> bytes:
    """A small, distinct, decodable photo-like image."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


@contextmanager
def damaging_proxy(target_port: int, skip: int = 2000) -> Iterator[int]:
    """A TCP proxy to ``127.0.0.1:target_port`` that damages one upload, then relays faithfully.

    On the first connection, one byte ``skip`` bytes after the first JPEG start-of-image
    marker sent towards the target is flipped: a bit error inside an image's entropy-coded
    data, which leaves the image decodable, so only its digest can tell.  Yields its port.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    damaged = threading.Event()

    def pump(src: socket.socket, dst: socket.socket, damage: bool) -> None:
        seen = b""
        at: int | None = None
        sent = 0
        try:
            while chunk := src.recv(65536):
                if damage and not damaged.is_set():
                    if at is None:
                        marker = (seen[-2:] + chunk).find(b"\xff\xd8\xff")
                        if marker >= 0:
                            at = sent - len(seen[-2:]) + marker + skip
                        seen = chunk
                    if at is not None and sent <= at < sent + len(chunk):
                        buf = bytearray(chunk)
                        buf[at - sent] ^= 0x01
                        chunk = bytes(buf)
                        damaged.set()
                sent += len(chunk)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        first = True
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pump, args=(client, upstream, first), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()
            first = False

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port
    finally:
        listener.close()
