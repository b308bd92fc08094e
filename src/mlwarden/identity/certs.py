"""A development CA and SPIFFE client certificates (``cryptography``); not for production PKI."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlwarden.errors import ConfigError, InvalidInput
from mlwarden.identity.policy import SPIFFE_PREFIX

VALID_DAYS_CA = 3650
VALID_DAYS_LEAF = 90


@dataclass(frozen=True, slots=True)
class CertPaths:
    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def init_ca(keys: Path, name: str = "mlwarden development CA") -> dict[str, str]:
    """Create ``ca.pem``/``ca.key`` and a localhost server certificate; keep existing ones."""
    try:
        return _init_ca(keys, name)
    except OSError as exc:
        raise ConfigError(f"cannot write the development CA to {keys}: {exc.strerror or exc}") from exc


def _init_ca(keys: Path, name: str) -> dict[str, str]:
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert, ca_key = keys / "ca.pem", keys / "ca.key"
    if not ca_cert.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(name, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key(), VALID_DAYS_CA)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        _write_key(ca_key, key)
        ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server = keys / "server.pem"
    if not server.exists():
        issue(keys, "server", out=keys, server=True)
    return {
        "ca_cert": str(ca_cert),
        "ca_key": str(ca_key),
        "server_cert": str(server),
        "server_key": str(keys / "server.key"),
    }


def _load_ca(keys: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((keys / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((keys / "ca.key").read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise ConfigError("no development CA: run `mlwarden certs init` first") from exc
    except ValueError as exc:
        raise ConfigError(f"development CA files are damaged: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("development CA key is not an EC key")
    return cert, key


def issue(keys: Path, name: str, *, out: Path, spiffe_id: str | None = None, server: bool = False) -> CertPaths:
    """Issue a client certificate whose URI SAN is ``spiffe_id`` (or a localhost server certificate)."""
    if not name or "/" in name or name.startswith("."):
        raise InvalidInput(f"certificate name {name!r} must be a plain file name")
    if spiffe_id is not None and (not spiffe_id.startswith(SPIFFE_PREFIX) or len(spiffe_id) <= len(SPIFFE_PREFIX)):
        raise InvalidInput(f"{spiffe_id!r} is not a SPIFFE ID (spiffe://trust-domain/path)")
    ca_cert, ca_key = _load_ca(keys)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(name, ca_cert.subject, key.public_key(), VALID_DAYS_LEAF).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if server:
        san = x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        builder = builder.add_extension(san, critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    else:
        if spiffe_id is None:
            raise InvalidInput("a client certificate needs --spiffe-id")
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    paths = CertPaths(out / f"{name}.pem", out / f"{name}.key")
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(paths.key, key)
    except OSError as exc:
        raise InvalidInput(f"cannot write the certificate to {out}: {exc.strerror or exc}") from exc
    return paths


def spiffe_id_of(der: bytes) -> str | None:
    """The SPIFFE URI SAN of a DER certificate (the first one), if any."""
    try:
        cert = x509.load_der_x509_certificate(der)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    for uri in sans.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(SPIFFE_PREFIX):
            return str(uri)
    return None
