"""Participants' signing certificates (X.509, PEM), as the participant directory lists them.

Each participant may have several at once, each with its own validity, so a key can be
rotated with an overlap: the directory lists the new certificate beside the old one, then
drops the old. A certificate that cannot be read refuses the directory version (the previous
one stays in force), like any other bad entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class CertificateError(ValueError):
    pass


@dataclass(frozen=True)
class Certificate:
    pem: bytes
    fingerprint: str  # SHA-256 of the DER form, hex: how a signature's certificate is found
    not_before: datetime  # UTC
    not_after: datetime
    subject: str

    def valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment <= self.not_after


def fingerprint_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def read_certificate(pem: bytes, where: str = "certificate") -> Certificate:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"{where}: not a PEM X.509 certificate ({exc})") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CertificateError(f"{where}: the key must be RSA or EC (P-256)")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name != "secp256r1":
        raise CertificateError(f"{where}: an EC key must be on P-256, not {key.curve.name}")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise CertificateError(f"{where}: an RSA key must have at least 2048 bits")
    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(
        pem=cert.public_bytes(serialization.Encoding.PEM),
        fingerprint=fingerprint_of_der(der),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
    )


def load_certificate(path: Path) -> Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"{path}: {exc.strerror}") from None
    return read_certificate(data, str(path))
