"""What a Kubernetes API server's refusals mean to the targets that write through it."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from foundation.errors import (
    EdgecoreError,
    InvalidInput,
    NotFound,
    PermanentError,
    ResourceVersionConflict,
    ServiceUnavailable,
)


def api_error(exc: ApiException, where: str) -> EdgecoreError:
    """The project's error for an API server's answer: 409 is read again, 429 and 5xx retried later,
    422 an invalid write (a failed JSON patch ``test`` among them), the rest permanent."""
    reason = f"{where}: API server answered {exc.status} {exc.reason}"
    if exc.status == 404:
        return NotFound(reason)
    if exc.status == 409:
        return ResourceVersionConflict(reason)
    if exc.status == 422:
        return InvalidInput(f"{reason}: {(exc.body or '')[:500]}")
    if exc.status == 429 or (exc.status or 0) >= 500:
        return ServiceUnavailable(reason)
    return PermanentError(f"{reason}: {(exc.body or '')[:500]}")
