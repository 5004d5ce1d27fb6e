"""The one error vocabulary: each error carries its decision and its HTTP answer.

As in kopf, an error says whether repeating the call can help (``retryable``: a service
is down, a timeout, a write lost to a concurrent one) or not (bad input, a missing
object, a checksum mismatch).  As in KServe's ``errors.py``, the HTTP status of each
error lives beside it, so every server, and the MQTT intake that answers like one,
maps an error the same way (:func:`http_status`).  Third-party exceptions are wrapped
once, at the boundary, with ``raise ... from exc`` and a message that names what is
concerned (dataset, version, edge, bucket, key), never the payload itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ValidationError


class EdgecoreError(Exception):
    """Base of every error raised on purpose; ``status`` is its HTTP answer."""

    retryable: bool = False
    status: int = 500


class RetryableError(EdgecoreError):
    """The operation may succeed if repeated later (service unreachable, timeout)."""

    retryable = True
    status = 503


class PermanentError(EdgecoreError):
    """Repeating the operation with the same input will fail the same way."""


# -- input from outside ----------------------------------------------------------------
class InvalidInput(PermanentError):
    """Input from outside (HTTP body, Kafka record, MQTT message, CLI argument) was refused."""

    status = 400


class InvalidImage(InvalidInput):
    """The bytes are not a decodable, sane JPEG or PNG image."""


class MalformedEvent(InvalidInput):
    """A record that is not a valid edgecore event; the message is the dead-letter reason."""


class SetDigestMismatch(InvalidInput):
    """The images received do not make the set digest the edge declared.

    Either an image changed on the edge after its set was completed, or bytes were
    damaged on the way; the shipper tells the two apart by checking its images.
    """


class Unauthorized(InvalidInput):
    """No credential, or one nobody issued."""

    status = 401


class Forbidden(InvalidInput):
    """A valid credential used for what it does not cover (another edge's data)."""

    status = 403


class Conflict(InvalidInput):
    """The request is valid, but there is nothing to do in this state."""

    status = 409


class PayloadTooLarge(InvalidInput):
    """Input exceeded a configured size bound."""

    status = 413


class TooManyRequests(InvalidInput):
    """A caller went over a rate bound (failed logins from one address); it may try again later."""

    status = 429
    retryable = True


class UnsupportedMedia(InvalidInput):
    """Not a JPEG or PNG image where one is expected (a body, a set member)."""

    status = 415


# -- stored things ---------------------------------------------------------------------
class NotFound(PermanentError):
    """A named dataset, model version, bucket, object or Kubernetes object does not exist."""

    status = 404


class IntegrityError(PermanentError):
    """Stored bytes do not match their recorded sha256 or size, or a manifest is invalid."""


class WeakCredential(PermanentError):
    """A configured secret is a placeholder or too weak to guard an edge's data: refused at start-up."""


class RolloutFailed(PermanentError):
    """A new model version did not become healthy; its target was put back on the previous one."""


# -- services --------------------------------------------------------------------------
class ServiceUnavailable(RetryableError):
    """A backing service (MinIO, Kafka, the core, an API server) did not answer."""


class ResourceVersionConflict(RetryableError):
    """A Kubernetes object changed since it was read (409 on its resourceVersion): read again."""


def http_status(exc: EdgecoreError) -> int:
    """The HTTP status a server answers ``exc`` with."""
    return exc.status


def validation_reason(exc: ValidationError, models: Iterable[type[BaseModel]]) -> str:
    """Where and why pydantic refused a payload, never what it held.

    A refusal's location can hold the payload's own words (a dict key, an extra field's
    name): only the field names ``models`` declare and list positions are kept, anything
    else reads ``<key>``, so a reason cannot repeat or forge what was sent.
    """
    known = {name for model in models for name in model.model_fields}
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
    parts = [str(p) if isinstance(p, int) or p in known else "<key>" for p in first["loc"]]
    return f"{'.'.join(parts) or 'body'}: {first['msg']}"
