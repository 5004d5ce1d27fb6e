"""A real Kubernetes control plane in the local stack: etcd and kube-apiserver, no container runtime.

The sync controller's KServe target, the manifests and the fleet benchmark need the
semantics of a real API server (watches, selectors, RBAC, server-side apply, admission)
that no hand-written double has.  Nothing here runs pods: there is no kubelet, scheduler
or controller manager, so objects are stored, validated, authorised and watched, and
whatever a controller would report in ``status`` is written by the caller.

* kube-apiserver and etcd are built from the Go module proxy (``k8s.io/kubernetes`` and
  ``go.etcd.io/etcd/server/v3``, through wrapper modules whose sibling modules point at
  their published builds: ``gobuild``) and cached beside MinIO.
* etcd serves TLS and takes only clients with a certificate of the stack's CA (the API
  server's); both bind ``kube_host``, loopback by default.
* TLS with the stack's CA; clients authenticate with certificates (the stack's admin is
  in ``system:masters``) or service-account tokens (``TokenRequest``); RBAC authorises.
* The upstream CRDs in ``../shared/crds`` are installed at start (server-side apply) when
  that folder exists beside the checkout.
"""

from __future__ import annotations

import os
import shutil
import ssl
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgecore.stack import gobuild
from edgecore.stack.apiclient import (
    kubeconfig,
    namespaced_collections,
    server_side_apply,
    wait_established,
)
from edgecore.stack.certificates import Pki, write_private_key
from edgecore.stack.process import ManagedProcess, wait_until
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, port_open, require
from foundation.settings import Settings

API_NAMES = ("localhost", "127.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
SERVICE_RANGE = "10.96.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN = "edgecore-admin"
PACKAGE = "k8s.io/kubernetes/cmd/kube-apiserver"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
VERSION_FLAG = "-X k8s.io/component-base/version.gitVersion"
CRD_FOLDER = Path(__file__).resolve().parents[2].parent / "shared" / "crds"
"""The upstream CRD schemas beside the checkout (never copied into it)."""


class ControlPlane:
    """etcd and kube-apiserver on ``stack.kube_host``, with the stack's PKI and an admin kubeconfig."""

    name = "kubernetes"

    def __init__(self, settings: Settings, stack: StackSettings) -> None:
        self.stack = stack
        self.root = settings.state_dir / "kubernetes"
        self.pki = Pki(settings.tls_dir)
        self.apiserver_binary = stack.bin_dir / "kube-apiserver"
        self.version_file = stack.bin_dir / "kube-apiserver.version"
        self.etcd_root = stack.cache_dir / "etcd"
        run_dir = settings.state_dir / "run"
        self.etcd = ManagedProcess("etcd", run_dir, marker=str(self.root / "etcd"))
        self.process = ManagedProcess("kube-apiserver", run_dir, marker=str(self.root / "apiserver"))

    # -- where things are ----------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.stack.kube_host}:{self.stack.kube_apiserver_port}"

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    def _file(self, name: str) -> Path:
        return self.root / "apiserver" / name

    def _pair(self, name: str) -> tuple[Path, Path]:
        return self._file(f"{name}.pem"), self._file(f"{name}-key.pem")

    # -- installing ------------------------------------------------------------------------
    def installed_version(self) -> str | None:
        if not self.apiserver_binary.exists() or not self.version_file.exists():
            return None
        return self.version_file.read_text().strip()

    def etcd_binary(self) -> Path:
        return self.etcd_root / "usr" / "bin" / "etcd"

    def install(self) -> bool:
        """Build etcd and kube-apiserver unless both are there; True if anything was built."""
        done = False
        if self._etcd_version() != self.stack.etcd_module_version:
            self._build_etcd()
            done = True
        if self.installed_version() != self.stack.kubernetes_version:
            self._build_apiserver()
            done = True
        return done

    def _etcd_version(self) -> str | None:
        stamp = self.etcd_root / "version"
        return stamp.read_text().strip() if stamp.is_file() and self.etcd_binary().exists() else None

    def _build_etcd(self) -> None:
        """The pinned etcd, built from the Go module proxy: distributions ship ones older than the
        API server needs (Debian's 3.4 lacks the watch progress requests it makes)."""
        staging = self.etcd_root.with_name("etcd.partial")
        shutil.rmtree(staging, ignore_errors=True)
        version = self.stack.etcd_module_version
        gobuild.build(
            require("go"),
            ETCD_MODULE,
            version,
            version,
            ETCD_MODULE,
            staging / "usr" / "bin" / "etcd",
            self.stack.cache_dir / "etcd-src",
            self.stack.cache_dir / "logs" / "etcd-build.log",
        )
        (staging / "version").write_text(version + "\n")
        shutil.rmtree(self.etcd_root, ignore_errors=True)
        staging.rename(self.etcd_root)

    def _build_apiserver(self) -> None:
        version = self.stack.kubernetes_version
        gobuild.build(
            require("go"),
            "k8s.io/kubernetes",
            version,
            "v0." + version.removeprefix("v").split(".", 1)[1],  # staging modules: v1.34.4 -> v0.34.4
            PACKAGE,
            self.apiserver_binary,
            self.stack.cache_dir / "kube-apiserver-src",
            self.stack.cache_dir / "logs" / "kube-apiserver-build.log",
            ldflags=f"{VERSION_FLAG}={version}",
        )
        self.version_file.write_text(version + "\n")

    # -- running -----------------------------------------------------------------------------
    def healthy(self) -> bool:
        try:
            with self.http(timeout=2.0) as http:
                return http.get("/readyz").status_code == 200
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False

    def start(self, timeout_s: float = 120.0) -> bool:
        """Start etcd and the API server unless ours run; install the CRDs; True if started."""
        if self.process.pid() is not None and self.etcd.pid() is not None:
            wait_until(self.healthy, timeout_s, "kube-apiserver", self.process)
            return False
        if self.installed_version() is None or self._etcd_version() is None:
            raise StackError("the Kubernetes control plane is not installed: run `edgecore stack install`")
        self._credentials()
        self._start_etcd(timeout_s)
        if self.process.pid() is None:
            self._free(self.stack.kube_apiserver_port, "EDGECORE_KUBE_APISERVER_PORT")
            self.process.start(self._apiserver_argv(), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        wait_until(self.healthy, timeout_s, "kube-apiserver", self.process)
        self.install_crds()
        return True

    def stop(self) -> bool:
        """The API server, then etcd; data stays."""
        stopped = self.process.stop()
        return self.etcd.stop() or stopped

    def _free(self, port: int, setting: str) -> None:
        if port_open(self.stack.kube_host, port):
            raise StackError(
                f"port {self.stack.kube_host}:{port} is taken by a process edgecore did not start; "
                f"stop it or set {setting}"
            )

    def _start_etcd(self, timeout_s: float) -> None:
        if self.etcd.pid() is not None:
            return
        self._free(self.stack.etcd_port, "EDGECORE_ETCD_PORT")
        host, client, peer = self.stack.kube_host, self.stack.etcd_port, self.stack.etcd_peer_port
        data = self.root / f"etcd-{self.stack.etcd_module_version}"  # a newer etcd starts afresh
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        cert, key, ca = self._file("etcd.pem"), self._file("etcd-key.pem"), self.pki.ca
        argv = [
            str(self.etcd_binary()),
            "--name=edgecore",
            f"--data-dir={data}",
            f"--listen-client-urls=https://{host}:{client}",
            f"--advertise-client-urls=https://{host}:{client}",
            f"--listen-peer-urls=https://{host}:{peer}",
            f"--initial-advertise-peer-urls=https://{host}:{peer}",
            f"--initial-cluster=edgecore=https://{host}:{peer}",
            f"--cert-file={cert}",
            f"--key-file={key}",
            f"--trusted-ca-file={ca}",
            "--client-cert-auth",  # only the API server (a certificate this CA signed) may connect
            f"--peer-cert-file={cert}",
            f"--peer-key-file={key}",
            f"--peer-trusted-ca-file={ca}",
            "--peer-client-cert-auth",
            "--log-level=warn",
        ]
        self.etcd.start(argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        wait_until(lambda: port_open(host, client), timeout_s, "etcd", self.etcd)

    def _apiserver_argv(self) -> list[str]:
        s = self.stack
        return [
            str(self.apiserver_binary),
            f"--etcd-servers=https://{s.kube_host}:{s.etcd_port}",
            f"--etcd-cafile={self.pki.ca}",
            f"--etcd-certfile={self._file('etcd-client.pem')}",
            f"--etcd-keyfile={self._file('etcd-client-key.pem')}",
            f"--bind-address={s.kube_host}",
            f"--advertise-address={s.kube_host}",
            f"--secure-port={s.kube_apiserver_port}",
            f"--tls-cert-file={self._file('serving.pem')}",
            f"--tls-private-key-file={self._file('serving-key.pem')}",
            f"--client-ca-file={self.pki.ca}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={self._file('sa.pub')}",
            f"--service-account-signing-key-file={self._file('sa-key.pem')}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--profiling=false",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",  # a loopback address is no Endpoints entry
        ]

    def _credentials(self) -> None:
        """Certificates (the API server's, etcd's, the admin's), the token signing key, the kubeconfig;
        all made again when the CA was, or when the host they name changed."""
        remade = self.pki.ensure()
        folder = self._file("")
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        host = self.stack.kube_host
        names = tuple(dict.fromkeys((*API_NAMES, host)))
        stamp = self._file("issued-for")
        if remade or not stamp.is_file() or stamp.read_text() != host:
            issue = self.pki.issue
            issue("kube-apiserver", names, self._file("serving.pem"), self._file("serving-key.pem"), True)
            etcd_names = tuple(dict.fromkeys(("localhost", "127.0.0.1", host)))
            issue(
                "etcd", etcd_names, self._file("etcd.pem"), self._file("etcd-key.pem"), True, client_too=True
            )
            issue("kube-apiserver-etcd-client", (), *self._pair("etcd-client"), False)
            issue(ADMIN, (), *self._pair("admin"), False, ("system:masters",))
            stamp.write_text(host)
        if not self._file("sa-key.pem").is_file():
            key = ec.generate_private_key(ec.SECP256R1())
            write_private_key(self._file("sa-key.pem"), key)
            self._file("sa.pub").write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        self.kubeconfig.write_text(yaml.safe_dump(self.admin_kubeconfig()))
        self.kubeconfig.chmod(0o600)

    def admin_kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig for the stack's admin: the CA, the server, the admin's certificate."""
        return kubeconfig(
            self.url,
            self.pki.ca,
            {
                "client-certificate": str(self._file("admin.pem")),
                "client-key": str(self._file("admin-key.pem")),
            },
        )

    # -- talking to it -----------------------------------------------------------------------
    def http(self, timeout: float = 30.0, token: str | None = None) -> httpx.Client:
        """An HTTPS client of the API server: as the admin, or as whoever ``token`` names."""
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        headers = {}
        if token is None:
            context.load_cert_chain(self._file("admin.pem"), self._file("admin-key.pem"))
        else:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, verify=context, headers=headers, timeout=timeout)

    def remove_namespace(self, name: str) -> None:
        """Delete a namespace and everything in it: the work of the namespace controller, which
        does not run here (without it a deleted namespace would stay Terminating)."""
        with self.http() as http:
            for path in namespaced_collections(http):
                http.delete(path.replace("{namespace}", name), params={"propagationPolicy": "Background"})
            http.delete(f"/api/v1/namespaces/{name}")
            found = http.get(f"/api/v1/namespaces/{name}")
            if found.status_code == 200:
                namespace = found.json()
                namespace["spec"]["finalizers"] = []
                http.put(f"/api/v1/namespaces/{name}/finalize", json=namespace)

    def install_crds(self, folder: Path = CRD_FOLDER) -> list[str]:
        """Server-side apply every CRD under ``folder`` and wait until each is established."""
        if not folder.is_dir():
            return []
        names = []
        with self.http() as http:
            for path in sorted(folder.rglob("*.yaml")):
                for doc in yaml.safe_load_all(path.read_text()):
                    if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                        names.append(str(server_side_apply(http, doc)["metadata"]["name"]))
            for name in names:
                wait_established(http, name)
        return names

    def version(self) -> str:
        return self.installed_version() or "not installed"
