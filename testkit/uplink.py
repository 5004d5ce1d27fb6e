"""Helpers of the edge-sync tests: real HTTP servers on free ports, real images and tars."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI
from PIL import Image

from edge_sync import frontdoor
from edge_sync.delivery.pull import DoorClient
from edge_sync.uplink.receiver import Receiver
from edgecore.stack.tools import free_port as free_port  # the tests' one way to pick a port
from foundation.credentials import Credentials, write_tokens_file
from foundation.layout import Layout
from foundation.messaging import EventProducer
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from foundation.tls import client_context


@contextmanager
def front_door(
    settings: Settings, tokens: dict[str, str], producer: EventProducer | None = None
) -> Iterator[tuple[Receiver, FastAPI]]:
    """The core's front door app (sets and models) for edges holding ``tokens``, as the door builds it."""
    write_tokens_file(settings.door_tokens_file, {edge: [token] for edge, token in tokens.items()})
    credentials = Credentials("edge", path=settings.door_tokens_file)
    receiver = frontdoor.build_receiver(settings, credentials, producer)
    try:
        yield (
            receiver,
            frontdoor.create_app(
                receiver,
                frontdoor.build_model_door(settings, credentials),
                frontdoor.build_report_desk(settings, credentials),
                modelcars=frontdoor.build_modelcar_door(settings, credentials),
            ),
        )
    finally:
        receiver.close()


def gateway_tokens(settings: Settings, edge: str, devices: dict[str, str], staff: dict[str, str]) -> None:
    """Who may call the edge's gateway, written where its build function reads them."""
    devices_file, staff_file = settings.gateway_tokens_files(edge)
    write_tokens_file(devices_file, {who: [token] for who, token in devices.items()})
    write_tokens_file(staff_file, {who: [token] for who, token in staff.items()})


@contextmanager
def serving(app: FastAPI, port: int, tls: Settings | None = None) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1:port in a thread (over TLS with ``tls``'s certificate, as the
    front door runs); yields its base URL."""
    options = frontdoor.tls_options(tls) if tls is not None else {}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if tls is not None else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass(frozen=True)
class DoorCore:
    """A core whose front door runs over TLS with the local CA, on its own buckets."""

    settings: Settings
    url: str
    store: ObjectStore
    layout: Layout

    def client(self, edge: str, token: str) -> DoorClient:
        tls = client_context(self.settings.ca_file)
        http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, verify=tls)
        return DoorClient(self.url, edge, http)


@contextmanager
def door_core(
    settings: Settings, state_dir: Path, tokens: dict[str, str], **changes: Any
) -> Iterator[DoorCore]:
    """The front door of a core with buckets of its own, for edges holding ``tokens`` (``changes``: more
    settings, as ``Settings.updated`` takes them)."""
    unique = uuid.uuid4().hex[:10]
    cfg = settings.updated(
        state_dir=state_dir,
        buckets={
            "training": f"t-train-{unique}",
            "models": f"t-models-{unique}",
            "edge_prefix": f"t-{unique}-",
        },
        tls={"ca_file": settings.ca_file, "cert_file": settings.cert_file, "key_file": settings.key_file},
        **changes,
    )
    with front_door(cfg, tokens) as (_, app), serving(app, free_port(), tls=cfg) as url:
        yield DoorCore(cfg, url, ObjectStore(cfg.s3), Layout(cfg.buckets))


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
def breaking_proxy(target_port: int, after: int = 20_000) -> Iterator[int]:
    """A TCP proxy to ``127.0.0.1:target_port`` whose first connection breaks after ``after`` bytes
    towards the target (a link that drops mid-transfer, TLS or not), then relays faithfully."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def pump(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while chunk := src.recv(65536):
                if limit is not None and sent + len(chunk) > limit:
                    dst.sendall(chunk[: limit - sent])
                    break
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
            threading.Thread(
                target=pump, args=(client, upstream, after if first else None), daemon=True
            ).start()
            threading.Thread(target=pump, args=(upstream, client, None), daemon=True).start()
            first = False

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port
    finally:
        listener.close()
