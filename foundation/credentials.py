"""Who may call: bearer tokens per principal (an edge, a device, a member of staff).

Every service that takes a credential reads it through :class:`Credentials`: a
principal may hold two tokens at once, so a new one is issued, rolled out, and only
then the old one withdrawn, with no downtime; the file they live in is read again
whenever it changes, so rotating one needs no restart.  Tokens are compared in
constant time and never logged; a refusal is logged with the principal (where known)
and the reason only.  Placeholders and weak tokens (the ``change-me-…`` of example
manifests) are refused when a service starts, not discovered in production.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import threading
from pathlib import Path

from foundation.errors import Forbidden, InvalidInput, Unauthorized, WeakCredential
from foundation.layout import check_name

log = logging.getLogger(__name__)
MIN_TOKEN_CHARS = 32
MIN_DISTINCT_CHARS = 12
MAX_TOKENS_PER_PRINCIPAL = 2
PLACEHOLDERS = ("change", "placeholder", "example", "secret", "password", "default", "dummy", "xxxx", "1234")


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe, drawn again until :func:`check_strength` passes it.

    Random text now and then spells a placeholder word ("xxxx", "1234"): about one token in
    25,000 would otherwise be refused when the service holding it starts.
    """
    while True:
        token = secrets.token_urlsafe(32)
        try:
            check_strength(token, "a new token")
        except WeakCredential:
            continue
        return token


def check_strength(token: str, what: str) -> None:
    """Refuse a token an attacker could guess (the message names ``what``, never the token)."""
    lowered = token.lower()
    if len(token) < MIN_TOKEN_CHARS:
        raise WeakCredential(f"{what} is shorter than {MIN_TOKEN_CHARS} characters")
    if len(set(token)) < MIN_DISTINCT_CHARS:
        raise WeakCredential(f"{what} has fewer than {MIN_DISTINCT_CHARS} distinct characters")
    if any(word in lowered for word in PLACEHOLDERS):
        raise WeakCredential(f"{what} looks like a placeholder; issue one with `edgecore core enrol`")


def bearer(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()


class Credentials:
    """principal → its valid tokens (at most two), from settings and a JSON file read again on change."""

    def __init__(
        self, what: str, inline: dict[str, list[str]] | None = None, path: Path | None = None
    ) -> None:
        self.what = what
        self._inline = {k: list(v) for k, v in (inline or {}).items()}
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._tokens = self._load()

    @property
    def principals(self) -> list[str]:
        return sorted(self._current())

    def owner(self, token: str) -> str | None:
        """The principal holding ``token``, compared in constant time against every token."""
        try:
            given = token.encode()
        except UnicodeEncodeError:  # a lone surrogate from JSON: no token of ours
            return None
        found = None
        for principal, tokens in self._current().items():
            for candidate in tokens:
                if hmac.compare_digest(candidate.encode(), given):
                    found = principal
        return found

    def authenticate(self, authorization: str | None, where: str) -> str:
        """The principal an ``Authorization`` header proves, or :class:`Unauthorized` (logged)."""
        try:
            owner = self.owner(bearer(authorization))
            if owner is None:
                raise Unauthorized(f"unknown {self.what} token")
        except Unauthorized as exc:
            log.warning("refused %s: %s", where, exc)
            raise
        return owner

    def authenticate_edge(self, edge: str, authorization: str | None, what: str) -> None:
        """The caller holds ``edge``'s own token: an edge acts for itself alone (refusals logged,
        with the edge the token belongs to and ``what`` it tried, never the token)."""
        check_name(edge, "edge id")
        owner = self.authenticate(authorization, f"{what} of edge {edge}")
        if owner != edge:
            log.warning("refused edge %s: %s of edge %s", owner, what, edge)
            raise Forbidden(f"this token belongs to edge {owner}, not {edge}")

    def _current(self) -> dict[str, list[str]]:
        if self._path is None:
            return self._tokens
        try:
            stat = self._path.stat()
        except FileNotFoundError:  # removed on purpose (writes replace it atomically): nobody's tokens stay
            if self._stamp is not None:
                log.warning("%s tokens file %s removed: only inline tokens are valid", self.what, self._path)
                with self._lock:
                    self._tokens, self._stamp = {k: list(v) for k, v in self._inline.items()}, None
            return self._tokens
        except OSError:
            return self._tokens
        if _stamp(stat) != self._stamp:
            with self._lock:
                try:
                    self._tokens = self._load()
                except (InvalidInput, WeakCredential) as exc:  # keep serving with the tokens we had
                    self._stamp = _stamp(stat)
                    log.error("%s tokens file %s not reloaded: %s", self.what, self._path, exc)
        return self._tokens

    def _load(self) -> dict[str, list[str]]:
        tokens = {k: list(v) for k, v in self._inline.items()}
        if self._path is not None:
            stat = self._path.stat() if self._path.exists() else None
            for principal, listed in read_tokens_file(self._path).items():
                tokens[principal] = [*tokens.get(principal, []), *listed]
            self._stamp = _stamp(stat) if stat else None
        for principal, listed in tokens.items():
            check_name(principal, f"{self.what} id")
            if not 1 <= len(listed) <= MAX_TOKENS_PER_PRINCIPAL:
                raise InvalidInput(f"{self.what} {principal}: one or two tokens (two while rotating)")
            for token in listed:
                check_strength(token, f"a token of {self.what} {principal}")
        return tokens


def _stamp(stat: os.stat_result) -> tuple[int, int, int]:
    """A file's identity and version: a rewrite of the same size, or within one second, still shows."""
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def read_tokens_file(path: Path) -> dict[str, list[str]]:
    """``{principal: token | [token, token]}`` from a JSON file (a missing file holds none)."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"tokens file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"tokens file {path}: expected an object of principal -> token(s)")
    return {str(k): [str(t) for t in (v if isinstance(v, list) else [v])] for k, v in raw.items()}


def write_tokens_file(path: Path, tokens: dict[str, list[str]]) -> None:
    """Write a tokens file readable by its owner only (atomically: readers never see half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(tokens, indent=2, sort_keys=True))


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file that is never readable by others, not even for a moment."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)
