"""TLS for every path between an edge and the core: one place that builds the SSL contexts.

Servers present a certificate and, where asked, require one from their clients; clients
trust a named CA bundle (the local stack's own CA, or a company's), never "any
certificate".  Hostnames are checked.  The local stack makes its CA and certificates
(``edgecore.stack.certificates``); a deployment names its own files in ``TlsSettings``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from foundation.errors import InvalidInput
from foundation.settings import Settings

MIN_VERSION = ssl.TLSVersion.TLSv1_2


def server_context(cert_file: Path, key_file: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server's context; with ``client_ca``, clients must present a certificate it signed."""
    _exists(cert_file, "certificate")
    _exists(key_file, "private key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MIN_VERSION
    context.load_cert_chain(cert_file, key_file)
    if client_ca is not None:
        _exists(client_ca, "client CA bundle")
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A client's context trusting ``ca_file`` (the system's CAs when None), with an optional certificate."""
    if ca_file is not None:
        _exists(ca_file, "CA bundle")
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = MIN_VERSION
    if cert_file is not None and key_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def edge_context(settings: Settings) -> ssl.SSLContext:
    """What an edge trusts at the core (the configured CA), with its own certificate where it has one."""
    return client_context(settings.ca_file, settings.tls.client_cert_file, settings.tls.client_key_file)


def require_https(url: str, what: str) -> str:
    """Edge-to-core paths are encrypted: refuse a plain-HTTP address instead of using it."""
    if not url.startswith("https://"):
        raise InvalidInput(f"{what} {url!r} is not https://: every path from an edge to the core is TLS")
    return url


def _exists(path: Path, what: str) -> None:
    if not path.is_file():
        raise InvalidInput(f"TLS {what} {path} does not exist (edgecore stack up makes the local ones)")
