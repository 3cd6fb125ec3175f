"""Who sent it: the XML signature in AppHdr Sgntr, checked against the participant directory;
and the gateway's own signature on everything it emits.

The one signature form accepted and written (as in the ISO 20022 business application header
guidelines, enveloped): one ds:Signature, in AppHdr/Sgntr, with one ds:Reference, URI="" (the
whole message: AppHdr and Document, the signature itself left out by the enveloped-signature
transform), exclusive C14N, SHA-256, and RSA-SHA256 or ECDSA-P256-SHA256. Since the reference
is the whole document, what is verified is exactly what the gateway processes: a signature over
one element while another is processed (wrapping) cannot pass, nor can a reference to anything
outside the message (refused before the library sees it; the library's I/O callbacks are
removed too).

Refusals use the ISO external status reason codes for signatures:
  DS21 unsigned where signatures are required
  DS0B a form not accepted: several signatures, misplaced, a reference other than URI="",
       other transforms or algorithms
  DS0E the signer's certificate is unknown, or another participant's than AppHdr Fr's
  DS0D the signer's certificate is not valid at the time of receipt (expired, not yet valid)
  DS0A the signature does not match the message (altered after signing)
Whether Fr may send the message at all (for the party its role entitles, itself or one in its
`sends_for`: DS19 when signed) is decided with the message's meaning, by role, for every type:
gateway/authorisation.py.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree

from gateway.certificates import Certificate, fingerprint_of_der, read_certificate
from gateway.config import SecuritySection
from gateway.directory import Directory
from gateway.iso20022 import errors
from gateway.iso20022.namespaces import HEAD, ns
from gateway.iso20022.reader import BusinessMessage, hardened_parser, message_ids

DS = "http://www.w3.org/2000/09/xmldsig#"
_HEAD = ns(HEAD)
ALGORITHMS = frozenset(
    {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    }
)
_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_DIGEST = "http://www.w3.org/2001/04/xmlenc#sha256"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_TRANSFORMS = (_ENVELOPED, _C14N)

# No I/O for the library, ever: a reference can only be to this message.
xmlsec.cleanup_callbacks()

# Verification parses the bytes as they were signed: the reader drops indentation, which the
# signature's digest covers. Comments are left out: the digest's C14N leaves them out too, and
# a comment inside the signature's own values (a certificate, a digest) must not change what
# is read there (docs/security.md). Processing instructions stay: C14N signs them. Same
# hardening as the reader otherwise.
_PARSER = hardened_parser(remove_comments=True)


def _refuse(msg: BusinessMessage, code: str, detail: str) -> errors.SignatureRefused:
    return errors.SignatureRefused(detail, reason=code, ids=message_ids(msg))


@lru_cache(maxsize=1024)
def _public_key(pem: bytes) -> xmlsec.Key:
    """The certificate's public key alone: its certificate was checked already, and a key
    that carries one is copied with it into every signature context (X509_dup, a tenth of
    the signed path's time)."""
    public = x509.load_pem_x509_certificate(pem).public_key()
    spki = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return xmlsec.Key.from_memory(spki, xmlsec.constants.KeyDataFormatPem)


def verify(
    msg: BusinessMessage, directory: Directory, now: datetime, *, required: bool
) -> Certificate | None:
    """The certificate that signed `msg`, after every check above; None when unsigned and
    not required. Raises `errors.SignatureRefused`."""
    if msg.header is None:
        if required:
            raise _refuse(msg, "DS21", "unsigned: a business message needs an AppHdr and its Sgntr")
        return None
    if b"Signature" not in msg.raw:  # no signature element anywhere: nothing to parse again
        if required:
            raise _refuse(msg, "DS21", "unsigned: AppHdr/Sgntr must hold the sender's signature")
        return None
    sender = msg.header_text("Fr/FIId/FinInstnId/BICFI") or ""
    root = etree.fromstring(msg.raw, _PARSER)
    signatures = list(root.iter(f"{{{DS}}}Signature"))  # in C, not ElementPath
    if not signatures:
        if required:
            raise _refuse(msg, "DS21", "unsigned: AppHdr/Sgntr must hold the sender's signature")
        return None
    if len(signatures) > 1:
        raise _refuse(msg, "DS0B", f"{len(signatures)} signatures: exactly one is accepted")
    signature = signatures[0]
    place = signature.getparent()
    header = place.getparent() if place is not None else None
    if (
        place is None
        or place.tag != f"{{{_HEAD}}}Sgntr"
        or header is None
        or header.tag != f"{{{_HEAD}}}AppHdr"
        or header.getparent() is not root
    ):
        raise _refuse(msg, "DS0B", "the signature must be in AppHdr/Sgntr")
    _check_form(msg, signature)

    sender_participant = directory.signatory(sender)
    certificate = signature.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    # Its whole text: a PI (kept for the digest) may stand inside it, and KeyInfo is unsigned.
    embedded = "".join(certificate.itertext()) if certificate is not None else ""
    if embedded:
        try:
            fingerprint = fingerprint_of_der(base64.b64decode(embedded, validate=False))
        except ValueError:
            raise _refuse(msg, "DS0E", "the signer's certificate is unreadable") from None
        found = directory.certificate(fingerprint)
        if found is None:
            raise _refuse(msg, "DS0E", "the signer's certificate is not in the directory")
        owner, cert = found
        if sender_participant is None or owner.bic != sender_participant.bic:
            raise _refuse(
                msg, "DS0E", f"signed with {owner.bic}'s certificate, not the sender {sender}'s"
            )
        if not cert.valid_at(now):
            raise _refuse(msg, "DS0D", _validity(cert, now))
        candidates = [cert]
    else:
        if sender_participant is None or not sender_participant.certificates:
            raise _refuse(msg, "DS0E", f"no certificate of the sender {sender} in the directory")
        candidates = [c for c in sender_participant.certificates if c.valid_at(now)]
        if not candidates:
            raise _refuse(
                msg, "DS0D", f"none of {sender}'s certificates is valid at {now.isoformat()}"
            )

    for cert in candidates:
        ctx = xmlsec.SignatureContext()
        ctx.key = _public_key(cert.pem)
        try:
            ctx.verify(signature)
        except xmlsec.Error:
            continue
        return cert
    raise _refuse(msg, "DS0A", "the signature does not match the message (altered after signing)")


def _check_form(msg: BusinessMessage, signature: etree._Element) -> None:
    info = signature.find(f"{{{DS}}}SignedInfo")
    if info is None:
        raise _refuse(msg, "DS0B", "a signature without SignedInfo")
    c14n = info.find(f"{{{DS}}}CanonicalizationMethod")
    method = info.find(f"{{{DS}}}SignatureMethod")
    if c14n is None or c14n.get("Algorithm") != _C14N:
        raise _refuse(msg, "DS0B", "canonicalization must be exclusive C14N")
    if method is None or method.get("Algorithm") not in ALGORITHMS:
        got = method.get("Algorithm") if method is not None else "none"
        raise _refuse(
            msg, "DS0B", f"signature algorithm {got} is not accepted (RSA-SHA256, ECDSA-SHA256)"
        )
    references = info.findall(f"{{{DS}}}Reference")
    if len(references) != 1:
        raise _refuse(msg, "DS0B", f"{len(references)} references: exactly one is accepted")
    reference = references[0]
    uri = reference.get("URI")
    if uri != "":
        raise _refuse(msg, "DS0B", f'the reference must be URI="" (the whole message), not {uri!r}')
    transforms = tuple(
        t.get("Algorithm") for t in reference.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
    )
    if transforms != _TRANSFORMS:
        raise _refuse(msg, "DS0B", "the transforms must be enveloped-signature, exclusive C14N")
    digest = reference.find(f"{{{DS}}}DigestMethod")
    if digest is None or digest.get("Algorithm") != _DIGEST:
        raise _refuse(msg, "DS0B", "the digest must be SHA-256")


def _validity(cert: Certificate, now: datetime) -> str:
    if now < cert.not_before:
        return f"the signer's certificate is not valid before {cert.not_before.isoformat()}"
    return f"the signer's certificate expired at {cert.not_after.isoformat()}"


@dataclass(frozen=True)
class Signer:
    """The gateway's signing key and certificate."""

    key: xmlsec.Key  # the private key alone (see `_public_key`: no certificate to copy)
    certificate: Certificate
    algorithm: Any  # xmlsec.constants.TransformEcdsaSha256 or TransformRsaSha256
    certificate_b64: str  # its DER form, as KeyInfo/X509Data/X509Certificate carries it

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes) -> Signer:
        certificate = read_certificate(cert_pem, "gateway certificate")
        key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
        algorithm = (
            xmlsec.constants.TransformEcdsaSha256
            if _is_ec(key_pem)
            else xmlsec.constants.TransformRsaSha256
        )
        der = x509.load_pem_x509_certificate(certificate.pem).public_bytes(Encoding.DER)
        return cls(key, certificate, algorithm, base64.b64encode(der).decode("ascii"))

    def sign(self, root: etree._Element) -> None:
        """Sign the message `root` (AppHdr + Document) in place: AppHdr/Sgntr, enveloped."""
        header = next(iter(root), None)
        assert header is not None and header.tag == f"{{{_HEAD}}}AppHdr", "no AppHdr to sign"
        place = etree.Element(f"{{{_HEAD}}}Sgntr")
        # Sgntr's place in the header's sequence: after Prty, before Rltd.
        rltd = header.find(f"{{{_HEAD}}}Rltd")
        if rltd is not None:
            rltd.addprevious(place)
        else:
            header.append(place)
        signature = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N, self.algorithm)
        place.append(signature)
        reference = xmlsec.template.add_reference(
            signature, xmlsec.constants.TransformSha256, uri=""
        )
        xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
        xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
        key_info = xmlsec.template.ensure_key_info(signature)
        x509_data = xmlsec.template.add_x509_data(key_info)
        # Written here, not by xmlsec from a key holding the certificate (see `key`).
        etree.SubElement(x509_data, f"{{{DS}}}X509Certificate").text = self.certificate_b64
        ctx = xmlsec.SignatureContext()
        ctx.key = self.key
        ctx.sign(signature)


def _is_ec(key_pem: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return isinstance(load_pem_private_key(key_pem, password=None), ec.EllipticCurvePrivateKey)


@lru_cache(maxsize=4)
def signer_for(security: SecuritySection) -> Signer | None:
    """The gateway's signer from its configuration (the key from a file or the environment),
    or None when none is configured. Loaded once per process and configuration."""
    if not (security.signing_key_file or security.signing_key):
        return None
    key = (
        security.signing_key.encode()
        if security.signing_key
        else Path(security.signing_key_file).read_bytes()
    )
    return Signer.from_pem(key, Path(security.signing_certificate_file).read_bytes())
