"""The local stack's own certificate authority and the core's server certificate.

Every edge-to-core path is TLS, on a laptop too: ``edgecore stack up`` makes a CA
(``ca.pem``, its key never leaves ``<state_dir>/tls``, readable by its owner only) and a
server certificate for the loopback names, which the front door and Kafka's edge
listener present and which edges check against ``ca.pem``.  Client certificates for
edges are issued the same way (``issue``) when the front door is set to require them.
A deployment names its own files in ``TlsSettings`` instead.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
LEAF_DAYS = 825


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca-key.pem"

    @property
    def server(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server-key.pem"

    def ensure(self, names: tuple[str, ...] = LOOPBACK_NAMES) -> bool:
        """The CA and the server certificate exist (made if missing); True when anything was made."""
        made = False
        if not (self.ca.is_file() and self.ca_key.is_file()):
            self.folder.mkdir(parents=True, exist_ok=True)
            self.folder.chmod(0o700)
            key = ec.generate_private_key(ec.SECP256R1())
            write_private_key(self.ca_key, key)
            self.ca.write_bytes(_ca_certificate(key).public_bytes(serialization.Encoding.PEM))
            made = True
        if made or not (self.server.is_file() and self.server_key.is_file()):
            self.issue("edgecore core", names, self.server, self.server_key, server=True)
            made = True
        return made

    def issue(
        self,
        common_name: str,
        names: tuple[str, ...],
        cert: Path,
        key: Path,
        server: bool,
        groups: tuple[str, ...] = (),
        client_too: bool = False,
    ) -> None:
        """A certificate signed by this CA: a server's for ``names`` (``client_too``: one that also
        connects, as an etcd member does to its peers), or a client's (``groups`` become its
        organisations, which Kubernetes reads as the user's groups)."""
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server and client_too:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
                    + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
                )
            )
            .issuer_name(ca_cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())
        write_private_key(key, leaf_key)
        cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgecore local CA")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _alt_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """``key`` as PKCS#8 PEM, readable by its owner only."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
