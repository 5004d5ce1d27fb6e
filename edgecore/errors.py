"""Errors that carry the decision a caller has to make.

Like kopf's ``TemporaryError``/``PermanentError``: a retryable error means "the same
call may succeed later" (a service is down, a timeout), a permanent one means
"retrying is pointless" (bad input, missing object, checksum mismatch).  Servers map
``InvalidInput`` to HTTP 400 the way KServe's ``errors.py`` maps ``InvalidInput``.
Third-party exceptions are wrapped once, at the boundary, with ``raise ... from exc``
and a message that names the dataset, model version, edge, bucket or key concerned.
"""

from __future__ import annotations


class EdgecoreError(Exception):
    """Base of every error edgecore raises on purpose."""

    retryable: bool = False


class RetryableError(EdgecoreError):
    """The operation may succeed if repeated later (service unreachable, timeout)."""

    retryable = True


class PermanentError(EdgecoreError):
    """Repeating the operation with the same input will fail the same way."""


class InvalidInput(PermanentError):
    """Input from outside (HTTP body, Kafka record, CLI argument) was rejected."""


class PayloadTooLarge(InvalidInput):
    """Input exceeded a configured size bound (mapped to HTTP 413)."""


class NotFound(PermanentError):
    """A named dataset, model version, bucket or object does not exist."""


class IntegrityError(PermanentError):
    """Stored bytes do not match their recorded sha256."""


class ServiceUnavailable(RetryableError):
    """A backing service (MinIO, Kafka) did not answer."""


class StackError(PermanentError):
    """The local stack cannot be installed or started; the message says what to do."""
