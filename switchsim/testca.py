"""``switchsim tls make-test-ca DIR``: a throw-away CA and the certificates a TLS test set-up
needs, so that nobody has to remember openssl's options.

Writes, in DIR: ``ca.pem`` (the CA certificate: ``--tls-ca`` of the clients, ``--tls-client-ca``
of a mutual-TLS server), ``server.pem`` + ``server.key`` (``--tls-cert``/``--tls-key`` of
``serve`` and ``hsm serve``) and ``client.pem`` + ``client.key`` (a client certificate for
mutual TLS). The server certificate names 127.0.0.1, ::1 and localhost, and every ``--name``
given (an IP address or a DNS name), because clients verify the name they dial. Keys are
EC P-256, unencrypted, readable by their owner only; the CA's own key is not kept (make a new
CA rather than sign more with an old one). Test material only: never a production PKI.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DAYS = 365
DEFAULT_NAMES = ("127.0.0.1", "::1", "localhost")
FILES = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")


@dataclass(frozen=True, slots=True)
class MadeCa:
    directory: Path
    names: tuple[str, ...]  # what the server certificate names
    not_after: dt.datetime

    def path(self, name: str) -> Path:
        return self.directory / name


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not name or any(c.isspace() for c in name) or not name.isascii():
        raise ValueError(f"--name must be an IP address or a DNS name, got {name!r}")
    return x509.DNSName(name)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )


def make_test_ca(
    directory: Path, names: Sequence[str] = (), *, days: int = DEFAULT_DAYS, force: bool = False
) -> MadeCa:
    """Write the test CA and its certificates into ``directory`` (made if missing). Raises
    ValueError for a bad name or day count, FileExistsError when a file would be replaced
    without ``force``, OSError when the directory cannot be written."""
    if days < 1:
        raise ValueError(f"--days must be at least 1, got {days}")
    all_names = tuple(dict.fromkeys((*DEFAULT_NAMES, *names)))
    sans = [_san(name) for name in all_names]
    if not force:
        for name in FILES:
            if (directory / name).exists():
                raise FileExistsError(f"{directory / name} exists (--force replaces it)")
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"switchsim test CA {now:%Y-%m-%d %H:%M:%S}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, usage: x509.ObjectIdentifier, alt: list[x509.GeneralName]) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), pem_key

    server_cert, server_key = leaf("switchsim test server", ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client_cert, client_key = leaf("switchsim test client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    _write(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM), secret=False)
    _write(directory / "server.pem", server_cert, secret=False)
    _write(directory / "server.key", server_key, secret=True)
    _write(directory / "client.pem", client_cert, secret=False)
    _write(directory / "client.key", client_key, secret=True)
    return MadeCa(directory, all_names, end)


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # an existing file (--force) keeps its old mode through os.open
