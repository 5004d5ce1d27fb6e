"""The one way edgecore connects to a Kubeflow Pipelines API: host, namespace, token and CA.

Multi-user Kubeflow answers only a caller with a token (a projected service-account
token for an in-cluster listener) and files runs under a profile's namespace; a KFP API
behind TLS is checked against a named CA bundle.  Listener, submit and upload all connect
here, so none of them forgets one of the three.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from foundation.errors import InvalidInput, PermanentError, ServiceUnavailable, Unauthorized
from foundation.settings import KfpSettings


@contextmanager
def kfp_errors(host: str) -> Iterator[None]:
    """The SDK's failures as edgecore's: an unreachable API is retryable, a refusal is not.

    The SDK raises urllib3's errors (a 30-line chain for a closed port) and its API's
    exceptions, whose text holds the whole response; one line says what to fix instead.
    """
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        if exc.status in (401, 403):
            raise Unauthorized(
                f"the KFP API at {host} refused the request ({exc.status}): check its token"
            ) from exc
        if exc.status is not None and exc.status >= 500:
            raise ServiceUnavailable(f"the KFP API at {host} answered {exc.status} {exc.reason}") from exc
        raise PermanentError(f"the KFP API at {host} answered {exc.status} {exc.reason}") from exc
    except HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ServiceUnavailable(
            f"cannot reach the KFP API at {host} ({type(reason).__name__}): check the host given"
        ) from exc


def connect(host: str, kfp: KfpSettings) -> Any:
    """A ``kfp.Client`` of ``host`` in the configured namespace, with the token file read now.

    Callers also pass ``kfp.namespace`` to each call: the SDK keeps a namespace of exactly
    ``kubeflow`` (its default) only after asking the API, and may take another from a context file.
    """
    import kfp as sdk

    token = None
    if kfp.token_file is not None:
        try:
            token = kfp.token_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"KFP token file {kfp.token_file}: {exc.strerror}") from exc
        if not token:
            raise InvalidInput(f"KFP token file {kfp.token_file} is empty")
    if kfp.ca_file is not None and not kfp.ca_file.is_file():
        raise InvalidInput(f"KFP CA bundle {kfp.ca_file} does not exist")
    with warnings.catch_warnings():  # "only works with KFP v2.0.0-beta.2 and later", on every connection
        warnings.simplefilter("ignore", FutureWarning)
        return sdk.Client(
            host=host,
            namespace=kfp.namespace or "kubeflow",
            existing_token=token,
            ssl_ca_cert=str(kfp.ca_file) if kfp.ca_file else None,
        )
