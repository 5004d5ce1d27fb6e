"""Which addresses a service may be told to call out to."""

from __future__ import annotations

from urllib.parse import urlsplit

from foundation.errors import InvalidInput

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def require_https_or_loopback(url: str, what: str) -> str:
    """https, or plain http to this host only (a relay beside the service).  The URL is not
    repeated in the refusal: a webhook's may hold its secret."""
    parts = urlsplit(url)
    if (parts.scheme == "https" and parts.hostname) or (
        parts.scheme == "http" and parts.hostname in LOOPBACK
    ):
        return url
    raise InvalidInput(f"{what} must be https:// (plain http only to a loopback address)")
