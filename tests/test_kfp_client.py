"""The KFP connection: a profile's namespace, a token read from its file, the API's CA checked."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from edgecore.stack.certificates import Pki
from foundation.errors import InvalidInput
from foundation.settings import KfpSettings
from pipelines.kfp_client import connect


class KfpApi(BaseHTTPRequestHandler):
    """Answers the KFP v2beta1 run listing over HTTPS and records what each request carried."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        KfpApi.seen.append(
            {"path": url.path, "query": parse_qs(url.query), "auth": self.headers["Authorization"]}
        )
        body = {"runs": [{"run_id": "run-1", "display_name": "edge@v000001"}], "total_size": 1}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def kfp_api(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS endpoint with a certificate for 127.0.0.1 from a CA of its own; its URL and the CA."""
    pki = Pki(tmp_path / "pki")
    pki.ensure()
    server = ThreadingHTTPServer(("127.0.0.1", 0), KfpApi)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server, pki.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    KfpApi.seen = []
    yield f"https://127.0.0.1:{server.server_address[1]}", pki.ca
    server.shutdown()
    server.server_close()


def test_runs_are_listed_in_the_profile_s_namespace_with_the_token_from_its_file(
    kfp_api: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca = kfp_api
    token = tmp_path / "token"
    token.write_text("projected-service-account-token\n")
    client = connect(url, KfpSettings(namespace="team-a", token_file=token, ca_file=ca))

    runs = client.list_runs(namespace="team-a").runs

    assert [r.run_id for r in runs] == ["run-1"]
    request = KfpApi.seen[-1]
    assert request["path"] == "/apis/v2beta1/runs" and request["query"]["namespace"] == ["team-a"]
    assert request["auth"] == "Bearer projected-service-account-token"


def test_an_api_whose_certificate_the_ca_did_not_sign_is_refused(
    kfp_api: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = kfp_api
    other = Pki(tmp_path / "other-ca")
    other.ensure()
    client = connect(url, KfpSettings(namespace="team-a", ca_file=other.ca))

    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        client.list_runs(namespace="team-a")
    assert KfpApi.seen == []


def test_a_missing_token_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="KFP token file"):
        connect("https://127.0.0.1:1", KfpSettings(namespace="team-a", token_file=tmp_path / "absent"))


def test_an_empty_token_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    with pytest.raises(InvalidInput, match="is empty"):
        connect("https://127.0.0.1:1", KfpSettings(namespace="team-a", token_file=tmp_path / "token"))
