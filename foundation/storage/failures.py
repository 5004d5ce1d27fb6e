"""One error mapping for both transports: an S3 failure becomes the edgecore error that says what to do.

boto3 reports an S3 error answer as a ``ClientError`` and a transport failure as a
``BotoCoreError``; the wire reads the error answer itself (:class:`S3Failure`).  Both
end here, where a missing object or bucket is :class:`NotFound`, a busy or failing
server and an unreachable endpoint are retryable, and any other refusal is permanent,
each naming the action and the object.
"""

from __future__ import annotations

import http.client
import xml.etree.ElementTree as ET

from botocore.exceptions import ClientError, ConnectionError, EndpointConnectionError

from foundation.errors import EdgecoreError, Forbidden, NotFound, PermanentError, ServiceUnavailable
from foundation.layout import Location

MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound", "404"})
BUSY = frozenset(
    {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "XMinioServerNotInitialized"}
)
PRECONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})


class S3Failure(Exception):
    """An S3 error answer read off the wire: its status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code

    @property
    def retryable(self) -> bool:
        return self.status >= 500 or self.code in BUSY

    @classmethod
    def read(cls, resp: http.client.HTTPResponse) -> S3Failure:
        """The failure an error answer describes (its body is read, so the connection stays usable)."""
        body = resp.read()
        code, message = "", body[:200].decode(errors="replace")
        try:
            root = ET.fromstring(body)
            code, message = root.findtext("Code") or "", root.findtext("Message") or message
        except ET.ParseError:
            pass
        return cls(resp.status, code, message)


def answered(status: int, code: str, message: str, action: str, where: str) -> EdgecoreError:
    """The error for an S3 error answer (status and code)."""
    if code in MISSING or status == 404:
        return NotFound(f"{action} {where}: not found ({code or status})")
    if status >= 500 or code in BUSY:
        return ServiceUnavailable(f"{action} {where}: S3 answered {code or status}")
    if status == 403 or code == "AccessDenied":
        return Forbidden(f"{action} {where}: these credentials may not ({code or status})")
    return PermanentError(f"{action} {where}: S3 refused with {code or status}: {message[:200]}")


def s3_error(exc: Exception, action: str, loc: Location | str) -> EdgecoreError:
    """The error for anything an S3 call raised: botocore's exceptions or the wire's :class:`S3Failure`."""
    where = loc.uri if isinstance(loc, Location) else loc
    if isinstance(exc, S3Failure):
        return answered(exc.status, exc.code, str(exc), action, where)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return answered(status, str(error.get("Code", "")), str(error.get("Message", "")), action, where)
    if isinstance(exc, (EndpointConnectionError, ConnectionError)):
        return ServiceUnavailable(f"{action} {where}: S3 endpoint unreachable ({exc})")
    return ServiceUnavailable(f"{action} {where}: {exc}")


def client_error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
