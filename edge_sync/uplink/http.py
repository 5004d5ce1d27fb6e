"""What the uplink's HTTP services share: bounded bodies, and errors answered with their own status.

An edgecore error carries its HTTP status (``foundation.errors``), so a handler here only
turns it into ``{"error": <class>, "reason": <message>}``; a 503 says when to retry.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge_sync.uplink.metrics import UplinkMetrics
from foundation.errors import EdgecoreError, InvalidInput, PayloadTooLarge, http_status

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI, metrics: UplinkMetrics | None = None) -> None:
    """Every error answered with its status, and counted in ``metrics`` (status and class only)."""

    @app.exception_handler(EdgecoreError)
    async def _edgecore_error(request: Request, exc: EdgecoreError) -> JSONResponse:
        status = http_status(exc)
        if metrics is not None:
            metrics.refused(status, type(exc).__name__)
        if status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
        retry_after = {503: "5", 429: "60"}.get(status)
        headers = {"Retry-After": retry_after} if retry_after else None
        return JSONResponse({"error": type(exc).__name__, "reason": str(exc)}, status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if metrics is not None:
            metrics.refused(exc.status_code, "HTTPException")
        return JSONResponse({"error": "HTTPException", "reason": str(exc.detail)}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own 422 repeats the value it refused; this one names the field and the rule only."""
        if metrics is not None:
            metrics.refused(422, "RequestValidationError")
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        reason = f"{where}: {first.get('msg', 'invalid')}"
        return JSONResponse({"error": "InvalidInput", "reason": reason}, 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if metrics is not None:
            metrics.refused(500, "InternalError")
        log.error("%s %s -> 500: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return JSONResponse({"error": "InternalError", "reason": "internal error"}, 500)


def declared_length(request: Request, limit: int, what: str) -> int | None:
    """Refuse a body whose Content-Length is already over ``limit`` before reading it."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        length = int(raw)
    except ValueError as exc:
        raise InvalidInput("Content-Length is not a number") from exc
    if length > limit:
        raise PayloadTooLarge(f"{what} of {length} bytes exceeds the {limit}-byte limit")
    return length


async def read_bounded(request: Request, limit: int, what: str) -> bytes:
    """A small body, read as it streams and cut off as soon as it passes ``limit``."""
    declared_length(request, limit, what)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"{what} exceeds the {limit}-byte limit")
    return bytes(body)


async def drain(stream: AsyncIterator[bytes], limit: int) -> None:
    """Read and drop what is left of a body (up to ``limit``) so the client sees our answer."""
    seen = 0
    try:
        async for chunk in stream:
            seen += len(chunk)
            if seen > limit:
                return
    except Exception:  # the client went away: nothing left to answer
        return


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def client_address(request: Request) -> str:
    """The caller's address, which failed logins and tokens are counted by."""
    return request.client.host if request.client else ""


def install_headers(app: FastAPI) -> None:
    """Headers every answer carries: no browser guesses a JSON refusal's type into a page."""

    @app.middleware("http")
    async def _nosniff(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
