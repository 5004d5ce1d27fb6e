"""The core's status page: one HTML page and the JSON it reads, for the core's operators.

Operators log in with their token (``operators.json``) for a session cookie, as store
staff do at their gateway (``edge_sync.uplink.sessions``); scripts may send the token as
a bearer instead.  The page is read-only.  It listens on the core's internal network
(loopback by default), never on the front door the stores reach.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from edge_sync.uplink.http import client_address, install_error_handlers, install_headers
from edge_sync.uplink.page import PageFiles, install_files, install_session
from edge_sync.uplink.service import serve
from edge_sync.uplink.sessions import PAGE_HEADER, StaffSessions
from edgecore.console.status import CoreStatus, readable
from foundation.credentials import Credentials, bearer
from foundation.errors import EdgecoreError, NotFound, Unauthorized
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from pipelines.ledger import Ledger
from pipelines.listener import GROUP_ID

log = logging.getLogger(__name__)
CORE_COOKIE = "edgecore_core"
CORE_FILES = PageFiles(
    "edgecore.console",
    "core_page",
    {
        "core.html": "text/html",
        "page.js": "text/javascript",
        "core.js": "text/javascript",
        "core.css": "text/css",
    },
    index="core.html",
)


def sections(status: CoreStatus) -> dict[str, Callable[[], Any]]:
    return {
        "datasets": status.datasets,
        "runs": status.runs,
        "models": status.models,
        "stores": status.stores,
        "fleet": status.fleet,
        "dead-letters": status.dead_letters,
    }


def _operator(operators: Credentials, authorization: str | None) -> str:
    who = operators.owner(bearer(authorization))
    if who is None:
        raise Unauthorized("unknown operator token")
    return who


def create_app(status: CoreStatus, operators: Credentials) -> FastAPI:
    app = FastAPI(title="edgecore core status", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_headers(app)
    sessions = StaffSessions(operators, CORE_COOKIE)
    readers = sections(status)

    def allow(request: Request) -> str:
        authorization = request.headers.get("authorization")
        try:
            if authorization is None and sessions.cookie in request.cookies:
                sessions.check_page(request.method, request.headers.get(PAGE_HEADER))
                return sessions.owner(request.cookies[sessions.cookie])
            return sessions.bounded(client_address(request), lambda: _operator(operators, authorization))
        except EdgecoreError as exc:
            log.warning("core page: refused %s %s: %s", request.method, request.url.path, exc)
            raise

    install_files(app, "/core/", CORE_FILES)
    install_session(app, sessions, allow, lambda operator: {"operator": operator})

    @app.get("/v1/status/{section}")
    async def section(section: str, request: Request) -> dict[str, Any]:
        allow(request)
        if section not in readers:
            raise NotFound(f"no such status section: one of {sorted(readers)}")
        return await run_in_threadpool(readable, section, readers[section])

    return app


def build_status(settings: Settings, group: str = GROUP_ID) -> CoreStatus:
    """The readers over the core's own S3 and Kafka (the stores' storage is never read)."""
    store = ObjectStore(settings.s3)
    ledger = Ledger(store, Layout(settings.buckets).listener_ledger(group))
    return CoreStatus(settings, store, ledger, group)


def run_page(settings: Settings, group: str = GROUP_ID) -> None:
    operators = Credentials("operator", path=settings.operators_file)
    if not operators.principals:
        log.warning("no operator in %s: nobody can log in to the core page", settings.operators_file)
    app = create_app(build_status(settings, group), operators)
    host, port = settings.console.host, settings.console.port
    log.info("the core page is at http://%s:%d/core/", host, port)
    serve(app, host, port, settings.console.max_connections)
