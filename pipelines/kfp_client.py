"""The one way edgecore connects to a Kubeflow Pipelines API: host, namespace, token and CA.

Multi-user Kubeflow answers only a caller with a token (a projected service-account
token for an in-cluster listener) and files runs under a profile's namespace; a KFP API
behind TLS is checked against a named CA bundle.  Listener, submit and upload all connect
here, so none of them forgets one of the three.
"""

from __future__ import annotations

from typing import Any

from foundation.errors import InvalidInput
from foundation.settings import KfpSettings


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
    return sdk.Client(
        host=host,
        namespace=kfp.namespace or "kubeflow",
        existing_token=token,
        ssl_ca_cert=str(kfp.ca_file) if kfp.ca_file else None,
    )
