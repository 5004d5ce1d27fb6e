"""The stack's OCI registry: CNCF Distribution, built with ``go install``, on 127.0.0.1 over TLS.

``make images`` pushes there, and the compiled pipeline and the overlays are pinned to
the digests it answers.  It serves the core's certificate and takes only clients whose
certificate the local CA signed (``require-and-verify-client-cert``): podman is given
one in its certificate folder (``client_certs``).  That CA also signs the stores' client
certificates, so any holder of one may pull and push; nobody may delete.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import ssl
from pathlib import Path

import yaml

from edgecore.stack.certificates import Pki
from edgecore.stack.gobuild import go_install, installed_version
from edgecore.stack.process import ManagedProcess, wait_until
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, port_open
from foundation.settings import Settings

MODULE = "github.com/distribution/distribution/v3/cmd/registry"


class RegistryService:
    name = "registry"

    def __init__(self, settings: Settings, stack: StackSettings, pki: Pki) -> None:
        self.settings = settings
        self.stack = stack
        self.pki = pki
        self.binary = stack.bin_dir / "registry"
        self.folder = settings.state_dir / "registry"
        self.process = ManagedProcess("registry", settings.state_dir / "run", marker=str(self.folder))

    @property
    def address(self) -> str:
        return f"{self.stack.registry_host}:{self.stack.registry_port}"

    def install(self) -> bool:
        """Build the pinned registry unless that exact version is built; True if built."""
        wanted = self.stack.registry_module_version
        return go_install(self.stack, MODULE, wanted, "registry", "the OCI registry")

    def client_certs(self) -> Path:
        """A podman certificate folder for this registry: the CA, and a client certificate."""
        folder = self.folder / "client"
        cert, key = folder / "client.cert", folder / "client.key"
        if not (cert.is_file() and key.is_file()):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
            self.pki.issue("edgecore image builder", (), cert, key, server=False)
        shutil.copyfile(self.pki.ca, folder / "ca.crt")
        return folder

    def healthy(self) -> bool:
        """The registry answers ``/v2/`` to a client holding our certificate."""
        if not port_open(self.stack.registry_host, self.stack.registry_port):
            return False
        certs = self.client_certs()
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(certs / "client.cert", certs / "client.key")
        connection = http.client.HTTPSConnection(
            self.stack.registry_host, self.stack.registry_port, timeout=2, context=context
        )
        try:
            connection.request("GET", "/v2/")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def start(self, timeout_s: float = 30.0) -> bool:
        """Start the registry unless ours runs; True if it was started."""
        if self.process.pid() is not None:
            wait_until(self.healthy, timeout_s, "the OCI registry", self.process)
            return False
        if port_open(self.stack.registry_host, self.stack.registry_port):
            raise StackError(
                f"port {self.address} is taken by a process edgecore did not start; "
                "stop it or set EDGECORE_REGISTRY_PORT"
            )
        config = self._config()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
        self.process.start([str(self.binary), "serve", str(config)], env)
        wait_until(self.healthy, timeout_s, "the OCI registry", self.process)
        return True

    def _config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.folder / "data")},
                "delete": {"enabled": False},
            },
            "http": {
                "addr": self.address,
                "secret": secrets.token_hex(32),
                "tls": {
                    "certificate": str(self.pki.server),
                    "key": str(self.pki.server_key),
                    "clientcas": [str(self.pki.ca)],
                    "clientauth": "require-and-verify-client-cert",
                },
            },
        }
        path = self.folder / "config.yml"
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def version(self) -> str:
        return installed_version(self.stack, "registry") or "not installed"
