"""The front door as a read-only OCI registry: each edge pulls its own modelcars, nothing else.

An edge's kubelet (KServe modelcars), podman or the sync controller pull

    oci://<door>/edges/<edge>/models/<model>@sha256:…

with the edge's login (user ``<edge>``, its door token as password: what an image pull
secret holds).  The door checks the login belongs to that edge and that ``model`` is its
own, then serves the manifest or blob from the core's registry
(``<root>/models/<model>``), which only the core can reach.  The registry only answers
blobs linked to that repository, so a digest guessed from another model is refused there.
Only GET and HEAD exist: nothing is pushed through the door.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from foundation.credentials import Credentials
from foundation.errors import (
    EdgecoreError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from foundation.layout import edge_models
from foundation.modelcar import model_repository
from foundation.oci import MANIFEST_TYPE, Reference, Registry

log = logging.getLogger(__name__)
CHALLENGE = {"WWW-Authenticate": 'Basic realm="edgecore front door"'}
"""What an OCI client is answered without a login, so it sends one (RFC 7617)."""


UNAUTHORIZED = '{"errors":[{"code":"UNAUTHORIZED","message":"log in with the edge id and its door token"}]}'
_REFERENCE = r"^(v\d{6}|sha256:[0-9a-f]{64})$"
_DIGEST = r"^sha256:[0-9a-f]{64}$"
MAX_PULLS = 8
"""Blobs streamed at once: each holds a worker thread, which the door's other routes share."""


class ModelcarDoor:
    """Answers edges' registry requests for their own modelcars from the core's registry."""

    def __init__(
        self, registry: Registry, root: str, credentials: Credentials, max_pulls: int = MAX_PULLS
    ) -> None:
        self.registry = registry
        self.root = root
        self.credentials = credentials
        self._pulls = threading.BoundedSemaphore(max_pulls)

    def login(self, authorization: str | None) -> str:
        """The edge a Basic login (``<edge>:<token>``) proves; the token is checked as its bearer's."""
        user, token = _basic(authorization)
        try:
            self.credentials.authenticate_edge(user, f"Bearer {token}", "a modelcar pull")
        except InvalidInput as exc:  # not even an edge id: a login to ask for again
            raise Unauthorized("log in with the edge id and its front-door token") from exc
        return user

    def authorize(self, edge: str, model: str, authorization: str | None) -> Reference:
        """The core repository of ``model`` once the login is ``edge``'s and the model its own."""
        if self.login(authorization) != edge:
            log.warning("refused a login for another edge's modelcar path (edge %r)", edge[:80])
            raise Forbidden("this login pulls only its own edge's modelcars")
        if model not in edge_models(edge):
            log.warning("refused edge %s: asked for the modelcar of %r", edge, model[:80])
            raise Forbidden(f"edge {edge} pulls only its own models")
        return model_repository(self.root, model)

    def manifest(self, repository: Reference, reference: str) -> tuple[bytes, str]:
        tagged = (
            repository.pinned(reference)
            if reference.startswith("sha256:")
            else Reference(repository.registry, repository.repository, reference)
        )
        with _upstream(repository):
            return self.registry.manifest_bytes(tagged)

    def blob_size(self, repository: Reference, digest: str) -> int:
        with _upstream(repository):
            return self.registry.blob_size(repository, digest)

    def blob(
        self, repository: Reference, digest: str, size: int
    ) -> tuple[Iterator[bytes], Callable[[], None]]:
        """The blob's bytes, one of at most ``max_pulls`` streams at once (more are answered 503), and
        what frees its slot (once, however often called: at the stream's end or the response's)."""
        if not self._pulls.acquire(blocking=False):
            raise ServiceUnavailable("too many modelcar pulls at once; try again")
        freed = threading.Event()

        def free() -> None:
            if not freed.is_set():
                freed.set()
                self._pulls.release()

        def chunks() -> Iterator[bytes]:
            try:
                yield from self.registry.blob_chunks(repository, digest, size)
            finally:
                free()

        return chunks(), free


@contextmanager
def _upstream(repository: Reference) -> Iterator[None]:
    """The core registry's refusals as the door's own: its address and answers stay in the door's log."""
    try:
        yield
    except NotFound as exc:
        raise NotFound("no such modelcar") from exc
    except EdgecoreError as exc:
        log.error("the core's registry failed a modelcar read of %s: %s", repository.repository, exc)
        raise ServiceUnavailable("the core's registry cannot be read now") from exc


def _basic(authorization: str | None) -> tuple[str, str]:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized("log in with the edge id and its front-door token")
    try:
        user, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed Basic credentials") from exc
    return user, token


def routes(door: ModelcarDoor) -> APIRouter:
    router = APIRouter()

    @router.api_route("/v2/", methods=["GET", "HEAD"])
    async def version_check(request: Request) -> Response:
        """An OCI client's first question: answered 401 with a challenge until it logs in."""
        try:
            await run_in_threadpool(door.login, request.headers.get("authorization"))
        except (Unauthorized, Forbidden):
            return _challenge()
        return Response("{}", media_type="application/json")

    @router.api_route("/v2/edges/{edge}/models/{model}/manifests/{reference}", methods=["GET", "HEAD"])
    async def manifest(edge: str, model: str, reference: str, request: Request) -> Response:
        repository = await _authorized(door, edge, model, request)
        if isinstance(repository, Response):
            return repository
        raw, digest = await run_in_threadpool(door.manifest, repository, _checked(reference, _REFERENCE))
        headers = {"Docker-Content-Digest": digest, "Content-Length": str(len(raw))}
        body = b"" if request.method == "HEAD" else raw
        return Response(body, headers=headers, media_type=MANIFEST_TYPE)

    @router.api_route("/v2/edges/{edge}/models/{model}/blobs/{digest}", methods=["GET", "HEAD"])
    async def blob(edge: str, model: str, digest: str, request: Request) -> Response:
        repository = await _authorized(door, edge, model, request)
        if isinstance(repository, Response):
            return repository
        size = await run_in_threadpool(door.blob_size, repository, _checked(digest, _DIGEST))
        headers = {"Docker-Content-Digest": digest, "Content-Length": str(size)}
        if request.method == "HEAD":
            return Response(headers=headers, media_type="application/octet-stream")
        chunks, free = door.blob(repository, digest, size)
        media = "application/octet-stream"
        return StreamingResponse(chunks, headers=headers, media_type=media, background=BackgroundTask(free))

    return router


def _challenge() -> Response:
    return Response(UNAUTHORIZED, 401, CHALLENGE, "application/json")


async def _authorized(door: ModelcarDoor, edge: str, model: str, request: Request) -> Reference | Response:
    try:
        return await run_in_threadpool(door.authorize, edge, model, request.headers.get("authorization"))
    except Unauthorized:
        return _challenge()


def _checked(reference: str, pattern: str) -> str:
    if not re.fullmatch(pattern, reference):
        raise InvalidInput("a modelcar is named by its version (v000001) and its blobs by digest (sha256:…)")
    return reference
