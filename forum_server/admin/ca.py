"""The forum's certificate authority: server and member client certificates for mTLS.

TLS keys are ECDSA P-256 (what every gRPC TLS stack accepts); the log's signing keys are
Ed25519 and live elsewhere.  A member certificate names its member in a URI SAN
(``urn:forum:member:<id>``), which the server maps to the member on every call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from forum_server.auth import member_uri

CA_DAYS = 3650
SERVER_DAYS = 825
CLIENT_DAYS = 397
# A member certificate lives at least a day (0 would be born expired and lock the member
# out) and never outlives the CA.
MIN_CERT_DAYS = 1
MAX_CERT_DAYS = CA_DAYS


@dataclass(frozen=True)
class KeyAndCert:
    key_pem: bytes
    cert_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the certificate's DER: how the server's credential list names it."""
        return certificate_sha256(self.cert_pem)


def certificate_sha256(cert_pem: bytes) -> bytes:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(
    subject: str,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def create_ca(name: str, now: dt.datetime) -> KeyAndCert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} forum CA")])
    cert = (
        _builder(f"{name} forum CA", subject, key.public_key(), now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    ca: KeyAndCert,
    subject: str,
    san: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    now: dt.datetime,
    days: int,
) -> KeyAndCert:
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(subject, ca.cert.subject, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue_server_cert(
    ca: KeyAndCert, hosts: list[str], now: dt.datetime, days: int = SERVER_DAYS
) -> KeyAndCert:
    """A server certificate for ``localhost``, ``127.0.0.1`` and each of ``hosts``."""
    names: list[x509.GeneralName] = []
    for host in ["localhost", "127.0.0.1", *hosts]:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    unique = list(dict.fromkeys(names))
    return _issue(ca, "forum server", unique, ExtendedKeyUsageOID.SERVER_AUTH, now, days)


def issue_member_cert(
    ca: KeyAndCert, member_id: str, now: dt.datetime, days: int = CLIENT_DAYS
) -> KeyAndCert:
    """A client certificate naming ``member_id`` in its URI SAN."""
    san: list[x509.GeneralName] = [x509.UniformResourceIdentifier(member_uri(member_id))]
    return _issue(ca, member_id, san, ExtendedKeyUsageOID.CLIENT_AUTH, now, days)
