"""Staff sessions for the store's page: log in once with a staff token, then a cookie.

A page cannot attach a bearer token to an ``<img>`` it shows, and a token typed into
every request would sit in the page's script.  So a member of staff logs in with their
token once; the gateway answers with a random session id in an ``HttpOnly``,
``SameSite=Strict`` cookie, held only in the gateway's memory (a restart logs everyone
out).  Sessions expire, are bounded in number (the oldest goes first), and end at once
when the staff member's token is revoked from ``staff.json``: each use re-checks it.

A state-changing call on a cookie must also carry :data:`PAGE_HEADER`: a request from
another site cannot set a custom header without the gateway's consent (CORS), so a
forged form or link never acts on a logged-in session.

Failed logins are counted per client address: past :data:`MAX_FAILED_LOGINS` in
:data:`FAILED_WINDOW_S` that address is answered 429 until the window has passed, so a
page open to a store's network cannot be used to guess tokens at line rate.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from foundation.credentials import Credentials
from foundation.errors import Forbidden, TooManyRequests, Unauthorized

T = TypeVar("T")

COOKIE = "edgecore_staff"
"""The store page's cookie name is this and the edge id; the core page's is ``edgecore_core``.
Browsers keep cookies per host, not per port: pages on one host must not share a name."""
PAGE_HEADER = "x-edgecore-page"
"""Sent by the page's own script with every state-changing call (see the module's docstring)."""
SESSION_S = 8 * 3600
"""One shift."""
MAX_SESSIONS = 1000
MAX_FAILED_LOGINS = 10
FAILED_WINDOW_S = 60.0
MAX_ADDRESSES = 10_000
"""Client addresses whose failed logins are remembered (the oldest forgotten first)."""


@dataclass(frozen=True)
class Session:
    staff: str
    token: str
    expires: float


class StaffSessions:
    """The logged-in staff of one gateway."""

    def __init__(
        self,
        staff: Credentials,
        cookie: str = COOKIE,
        lifetime_s: float = SESSION_S,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.staff = staff
        self.cookie = cookie
        self.lifetime_s = lifetime_s
        self.limit = limit
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def login(self, token: str, address: str = "") -> tuple[str, str]:
        """(session id, staff id) for a current staff token; Unauthorized otherwise, and
        TooManyRequests for an ``address`` that failed too often of late (even with a good token)."""
        self._check_failures(address)
        who = self.staff.owner(token)
        if who is None:
            self._failed(address)
            raise Unauthorized("unknown staff token")
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = Session(who, token, self._clock() + self.lifetime_s)
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
        return session_id, who

    def bounded(self, address: str, authenticate: Callable[[], T]) -> T:
        """A bearer token's check under the same per-address bound as a login: otherwise the API
        would let an address guess tokens at line rate where the login form does not."""
        self._check_failures(address)
        try:
            return authenticate()
        except Unauthorized:
            self._failed(address)
            raise

    def owner(self, session_id: str | None) -> str:
        """The staff id of a live session; Unauthorized for none, an unknown, expired or revoked one."""
        session = self._find(session_id)
        if session is None or self._clock() >= session.expires:
            self.logout(session_id)
            raise Unauthorized("not logged in, or the session has ended: log in again")
        if self.staff.owner(session.token) != session.staff:  # the token was revoked meanwhile
            self.logout(session_id)
            raise Unauthorized("this staff token is no longer valid: log in again")
        return session.staff

    def check_page(self, method: str, header: str | None) -> None:
        """A cookie-borne change must come from the page's own script (the module's docstring)."""
        if method not in ("GET", "HEAD") and header != "1":
            raise Forbidden(f"a change on a session needs the {PAGE_HEADER} header of the page")

    def logout(self, session_id: str | None) -> None:
        if session_id is None:
            return
        with self._lock:
            self._sessions.pop(session_id, None)

    def _check_failures(self, address: str) -> None:
        with self._lock:
            recent = [t for t in self._failures.get(address, ()) if self._clock() - t < FAILED_WINDOW_S]
            if recent:
                self._failures[address] = recent
            else:
                self._failures.pop(address, None)
        if len(recent) >= MAX_FAILED_LOGINS:
            raise TooManyRequests(
                f"too many failed logins from this address: try again in {FAILED_WINDOW_S:.0f} s"
            )

    def _failed(self, address: str) -> None:
        with self._lock:
            self._failures.setdefault(address, []).append(self._clock())
            self._failures.move_to_end(address)
            while len(self._failures) > MAX_ADDRESSES:
                self._failures.popitem(last=False)

    def _find(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            return self._sessions.get(session_id)
