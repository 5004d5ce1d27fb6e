"""The store's page: the staff's review desk over HTTP, and the page's own files.

``/staff/`` serves one HTML page with its script and stylesheet, all shipped in this
package (nothing is fetched from elsewhere, and the Content-Security-Policy says so).
The page logs in with a staff token (``POST /v1/session``, ``edge_sync.uplink.sessions``)
and then calls the JSON routes below on its session cookie; every route also takes the
staff's bearer token, so scripts can do what the page does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from edge_sync.uplink.alarm_desk import ALARMS_SHOWN, AlarmDesk
from edge_sync.uplink.http import client_address, media_type, read_bounded
from edge_sync.uplink.review import PAGE_SIZE, ReviewDesk
from edge_sync.uplink.sessions import SESSION_S, StaffSessions
from foundation.errors import InvalidInput, NotFound, Unauthorized, UnsupportedMedia
from foundation.layout import check_sku

log = logging.getLogger(__name__)
Allow = Callable[[Request, bool, str], str]
"""(request, staff only, what is asked) → who asks, or an error (``gateway.create_app``)."""
SHARED_SCRIPT = "page.js"
"""What every edgecore page shares (login, calls, drawing helpers): one copy, the store page's."""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_JSON_BYTES = 4096


@dataclass(frozen=True)
class PageFiles:
    """A page's files: the package folder that ships them, and the allow-list (name → media type).

    A request names a file of the list, never a path, so nothing else in the package is served.
    Both edgecore pages (this one and ``edgecore.console``) are served through it.
    """

    package: str
    folder: str
    types: Mapping[str, str]
    index: str
    """The HTML page itself, served at the page's home."""

    def read(self, name: str) -> bytes:
        """One file of the list; the shared script is the store page's, whichever page asks."""
        if name not in self.types:
            raise NotFound("no such page file")
        where = STAFF_FILES if name == SHARED_SCRIPT else self
        return resources.files(where.package).joinpath(where.folder, name).read_bytes()


STAFF_FILES = PageFiles(
    "edge_sync.uplink",
    "staff_page",
    {
        "staff.html": "text/html",
        "page.js": "text/javascript",
        "staff.js": "text/javascript",
        "staff.css": "text/css",
    },
    index="staff.html",
)


async def json_body(request: Request, what: str) -> dict[str, Any]:
    if media_type(request) != "application/json":
        raise UnsupportedMedia(f"post the {what} as application/json")
    raw = await read_bounded(request, MAX_JSON_BYTES, what)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"the {what} is not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidInput(f"the {what} is a JSON object")
    return body


def install_page(
    app: FastAPI, desk: ReviewDesk, alarms: AlarmDesk, sessions: StaffSessions, allow: Allow
) -> None:
    """The page's files, its login, and the desk's routes, on the gateway's app."""
    install_files(app, "/staff/", STAFF_FILES)
    install_session(
        app,
        sessions,
        lambda request: allow(request, True, "reading the session").removeprefix("staff:"),
        lambda staff: {"staff": staff, "edge": desk.edge},
    )
    install_unsure(app, desk, allow)
    install_catalogue(app, desk, allow)
    install_alarms(app, alarms, allow)
    install_shipments(app, desk, allow)


def install_files(app: FastAPI, home: str, files: PageFiles) -> None:
    """``/`` sends the browser to the page at ``home`` (``/staff/``, ``/core/``), which serves ``files``."""

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(home, status_code=303)

    @app.get(home, include_in_schema=False)
    async def page() -> Response:
        return Response(files.read(files.index), media_type="text/html", headers=SECURITY_HEADERS)

    @app.get(home + "{name}", include_in_schema=False)
    async def page_file(name: str) -> Response:
        return Response(files.read(name), media_type=files.types[name], headers=SECURITY_HEADERS)


def install_unsure(app: FastAPI, desk: ReviewDesk, allow: Allow) -> None:
    """The photos the model was unsure of: the list, each photo, and discarding one."""

    @app.get("/v1/unsure")
    async def unsure(request: Request, limit: int = PAGE_SIZE) -> dict[str, Any]:
        allow(request, True, "reading unsure photos")
        shown, waiting = await run_in_threadpool(desk.unsure, limit)
        return {"edge": desk.edge, "waiting": waiting, "unsure": [u.to_json() for u in shown]}

    @app.get("/v1/unsure/{day}/{capture_id}/image")
    async def unsure_image(day: str, capture_id: str, request: Request) -> Response:
        allow(request, True, "reading an unsure photo")
        data = await run_in_threadpool(desk.image, day, capture_id)
        no_cache = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}  # a shared tablet
        return Response(data, media_type="image/jpeg", headers=no_cache)

    @app.delete("/v1/unsure/{day}/{capture_id}")
    async def discard(day: str, capture_id: str, request: Request) -> Response:
        who = allow(request, True, "discarding an unsure photo")
        await run_in_threadpool(desk.discard, day, capture_id, who)
        return Response(status_code=204)


def install_catalogue(app: FastAPI, desk: ReviewDesk, allow: Allow) -> None:
    """The store's catalogue, and adding or editing one product (recorded as the member of staff)."""

    @app.get("/v1/catalogue")
    async def catalogue(request: Request) -> dict[str, Any]:
        allow(request, True, "reading the catalogue")
        current = await run_in_threadpool(desk.catalogue)
        if current is None:
            return {"edge": desk.edge, "currency": "EUR", "products": []}
        return current.model_dump(mode="json")

    @app.put("/v1/catalogue/products/{sku}")
    async def save_product(sku: str, request: Request) -> JSONResponse:
        who = allow(request, True, "changing the catalogue")
        body = await json_body(request, "product")
        product, added = await run_in_threadpool(desk.save_product, check_sku(sku), body, who)
        log.info("edge %s: product %s %s by %s", desk.edge, sku, "added" if added else "edited", who)
        return JSONResponse(product.model_dump(mode="json"), 201 if added else 200)


def install_alarms(app: FastAPI, alarms: AlarmDesk, allow: Allow) -> None:
    """The machine alarms awaiting a verdict, and recording one."""

    @app.get("/v1/alarms")
    async def alarm_windows(request: Request, limit: int = ALARMS_SHOWN) -> dict[str, Any]:
        allow(request, True, "reading machine alarms")
        shown, waiting = await run_in_threadpool(alarms.waiting, limit)
        return {"edge": alarms.edge, "waiting": waiting, "alarms": shown}

    @app.put("/v1/alarms/{machine}/{day}/{window_id}/verdict")
    async def verdict(machine: str, day: str, window_id: str, request: Request) -> JSONResponse:
        who = allow(request, True, "judging a machine alarm")
        body = await json_body(request, "verdict")
        record = await run_in_threadpool(
            alarms.judge, machine, day, window_id, str(body.get("verdict", "")), who
        )
        return JSONResponse(record, 201)


def install_shipments(app: FastAPI, desk: ReviewDesk, allow: Allow) -> None:
    """The sets queued to ship and the latest shipped."""

    @app.get("/v1/shipments")
    async def shipments(request: Request) -> dict[str, Any]:
        allow(request, True, "reading shipments")
        return await run_in_threadpool(desk.shipments)


def install_session(
    app: FastAPI,
    sessions: StaffSessions,
    who: Callable[[Request], str],
    answer: Callable[[str], dict[str, str]],
) -> None:
    """Log in with a token for a session cookie; who is logged in; log out.  ``who`` names the caller
    (or refuses); ``answer`` is what the page is told about a logged-in principal."""

    @app.post("/v1/session")
    async def login(request: Request) -> JSONResponse:
        body = await json_body(request, "login")
        sessions.logout(request.cookies.get(sessions.cookie))  # a shared tablet: the last login ends
        try:
            session_id, principal = sessions.login(str(body.get("token", "")), client_address(request))
        except Unauthorized:
            log.warning("%s: refused a login: unknown token", app.title)
            raise
        log.info("%s: %s logged in", app.title, principal)
        response = JSONResponse(answer(principal), 201)
        response.set_cookie(
            sessions.cookie, session_id, max_age=int(SESSION_S), httponly=True, samesite="strict", path="/"
        )
        return response

    @app.get("/v1/session")
    async def whoami(request: Request) -> dict[str, str]:
        return answer(who(request))

    @app.delete("/v1/session")
    async def logout(request: Request) -> Response:
        sessions.logout(request.cookies.get(sessions.cookie))
        response = Response(status_code=204)
        response.delete_cookie(sessions.cookie, path="/", httponly=True, samesite="strict")
        return response
