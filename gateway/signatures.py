"""Who sent it: the XML signature in AppHdr Sgntr, checked against the participant directory;
and the gateway's own signature on everything it emits.

The one signature form accepted and written (as in the ISO 20022 business application header
guidelines, enveloped): one ds:Signature, in AppHdr/Sgntr, with one ds:Reference, URI="" (the
whole message: AppHdr and Document, the signature itself left out by the enveloped-signature
transform), exclusive C14N, SHA-256, and RSA-SHA256 or ECDSA-P256-SHA256. Since the reference
is the whole document, what is verified is exactly what the gateway processes: a signature over
one element while another is processed (wrapping) cannot pass, nor can a reference to anything
outside the message (refused by the form checks).

Because there is only that one form, it is computed here, not by a general XML-DSig engine:
the digest is SHA-256 over libxml2's exclusive C14N (lxml) of the message without its
signature, and the signature value is checked and made by `cryptography` (OpenSSL). Nothing
cryptographic is written here. xmlsec, which handles every form the standard allows, spends
most of its time evaluating the enveloped transform as a general node set: this does the same
work in a third of the time. The tests check every signature both ways against xmlsec: what
this signs xmlsec verifies, what xmlsec signs this verifies, what either refuses the other
refuses (tests/test_signatures.py).

Verification reads the tree as it was signed: the reader parses a message that may be signed
keeping its indentation and PIs (which the digest covers) and leaving comments out (the
digest's C14N leaves them out too, and a comment inside a signature's own values must not
change what is read there: docs/security.md); it hands that tree here before canonicalising
it, so a message is parsed once.

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
import binascii
import hashlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree

from gateway.certificates import Certificate, fingerprint_of_der, read_certificate
from gateway.config import SecuritySection
from gateway.directory import Directory
from gateway.iso20022 import errors
from gateway.iso20022.namespaces import HEAD, ns
from gateway.iso20022.reader import (
    DEFAULT_MAX_BYTES,
    BusinessMessage,
    hardened_parser,
    message_ids,
    read_message,
)
from gateway.iso20022.tree import clone

DS = "http://www.w3.org/2000/09/xmldsig#"
_HEAD = ns(HEAD)
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ALGORITHMS = frozenset({RSA_SHA256, ECDSA_SHA256})
_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_DIGEST = "http://www.w3.org/2001/04/xmlenc#sha256"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_TRANSFORMS = (_ENVELOPED, _C14N)
_SIGNATURE = f"{{{DS}}}Signature"


class LockedKey(ValueError):
    """An encrypted signing key, given without its pass phrase."""


class SignedAlready(ValueError):
    """A message to sign that holds a signature already (one is accepted, not two)."""


_SIGNED_INFO = f"{{{DS}}}SignedInfo"
_C14N_METHOD = f"{{{DS}}}CanonicalizationMethod"
_SIGNATURE_METHOD = f"{{{DS}}}SignatureMethod"
_REFERENCE = f"{{{DS}}}Reference"
_TRANSFORMS_TAG = f"{{{DS}}}Transforms"
_TRANSFORM = f"{{{DS}}}Transform"
_DIGEST_METHOD = f"{{{DS}}}DigestMethod"
# The children of SignedInfo and of its Reference, exactly, in the accepted form.
_SIGNED_INFO_FORM = [_C14N_METHOD, _SIGNATURE_METHOD, _REFERENCE]
_REFERENCE_FORM = [_TRANSFORMS_TAG, _DIGEST_METHOD, f"{{{DS}}}DigestValue"]
_P256_HALF = 32  # an ECDSA P-256 SignatureValue is r and s, 32 bytes each (XML-DSig 1.1)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _refuse(code: str, detail: str) -> errors.SignatureRefused:
    # The message's ids are added by whoever read it (gateway/iso20022/reader.py).
    return errors.SignatureRefused(detail, reason=code)


@lru_cache(maxsize=1024)
def _public_key(pem: bytes) -> PublicKey:
    """A certificate's public key, loaded once (its certificate was checked already)."""
    key = x509.load_pem_x509_certificate(pem).public_key()
    assert isinstance(key, PublicKey), "the directory holds RSA and EC keys only"
    return key


def _c14n(node: etree._Element | etree._ElementTree) -> bytes:
    return etree.tostring(node, method="c14n", exclusive=True, with_comments=False)


@contextmanager
def _enveloped(signature: etree._Element) -> Iterator[None]:
    """The message as the enveloped-signature transform sees it: without the ds:Signature
    element and what it holds, the text around it kept where it was. Put back after."""
    parent = signature.getparent()
    assert parent is not None
    index = parent.index(signature)
    tail, signature.tail = signature.tail, None
    before = signature.getprevious()
    parent.remove(signature)
    saved = before.tail if before is not None else parent.text
    if tail:
        if before is not None:
            before.tail = (before.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    try:
        yield
    finally:
        if before is not None:
            before.tail = saved
        else:
            parent.text = saved
        parent.insert(index, signature)
        signature.tail = tail


def _text(element: etree._Element) -> str:
    """All of an element's text: a PI (kept for the digest) may stand inside a value."""
    return "".join(str(t) for t in element.itertext())


def _base64(element: etree._Element | None, what: str) -> bytes:
    """A ds:DigestValue or ds:SignatureValue: base64, white space allowed between groups."""
    text = "".join(_text(element).split()) if element is not None else ""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("DS0B", f"the {what} is not base64") from None


def verify(root: etree._Element, directory: Directory, now: datetime) -> Certificate | None:
    """The certificate that signed the message `root` (parsed as signed: see the module
    docstring), after every check above; None when it holds no signature. Raises
    `errors.SignatureRefused`."""
    signatures = list(root.iter(_SIGNATURE))  # in C, not ElementPath
    if not signatures:
        return None
    if len(signatures) > 1:
        raise _refuse("DS0B", f"{len(signatures)} signatures: exactly one is accepted")
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
        raise _refuse("DS0B", "the signature must be in AppHdr/Sgntr")
    info, algorithm, digest = _check_form(signature)

    bic = header.find(f"{{{_HEAD}}}Fr/{{{_HEAD}}}FIId/{{{_HEAD}}}FinInstnId/{{{_HEAD}}}BICFI")
    sender = _text(bic).strip() if bic is not None else ""
    sender_participant = directory.signatory(sender)
    certificate = signature.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    embedded = _text(certificate) if certificate is not None else ""  # KeyInfo is unsigned
    if embedded:
        try:
            fingerprint = fingerprint_of_der(base64.b64decode(embedded, validate=False))
        except ValueError:
            raise _refuse("DS0E", "the signer's certificate is unreadable") from None
        found = directory.certificate(fingerprint)
        if found is None:
            raise _refuse("DS0E", "the signer's certificate is not in the directory")
        owner, cert = found
        if sender_participant is None or owner.bic != sender_participant.bic:
            raise _refuse(
                "DS0E", f"signed with {owner.bic}'s certificate, not the sender {sender}'s"
            )
        if not cert.valid_at(now):
            raise _refuse("DS0D", _validity(cert, now))
        candidates = [cert]
    else:
        if sender_participant is None or not sender_participant.certificates:
            raise _refuse("DS0E", f"no certificate of the sender {sender} in the directory")
        candidates = [c for c in sender_participant.certificates if c.valid_at(now)]
        if not candidates:
            raise _refuse("DS0D", f"none of {sender}'s certificates is valid at {now.isoformat()}")

    value = _base64(signature.find(f"{{{DS}}}SignatureValue"), "signature value")
    signed_info, message_digest = _digested(root, signature, info)
    if message_digest != digest:
        raise _refuse("DS0A", "the message does not match its digest (altered after signing)")
    for cert in candidates:
        if _checks(_public_key(cert.pem), algorithm, value, signed_info):
            return cert
    raise _refuse("DS0A", "the signature does not match the message (altered after signing)")


def read_signed(
    data: bytes,
    directory: Directory,
    now: datetime,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    known: Collection[str] | None = None,
) -> BusinessMessage:
    """`data` read (gateway/iso20022/reader.py), any signature in it checked on the tree as
    it was signed: its `signed_by` is the certificate, None when unsigned. Raises
    `MessageError`."""
    return read_message(
        data,
        max_bytes=max_bytes,
        check_signed=lambda root: verify(root, directory, now),
        known=known,
    )


def signed_with(data: bytes, certificate: Certificate) -> bool:
    """Whether `data` holds exactly one signature of the accepted form, made with
    `certificate`'s key over the whole message (what a partner's test checks of the gateway's
    own outputs, with the certificate the gateway gave it)."""
    try:
        root = etree.fromstring(data, hardened_parser(remove_comments=True))
    except etree.XMLSyntaxError:
        return False
    signatures = list(root.iter(_SIGNATURE))
    if len(signatures) != 1:
        return False
    signature = signatures[0]
    try:
        info, algorithm, digest = _check_form(signature)
        value = _base64(signature.find(f"{{{DS}}}SignatureValue"), "signature value")
    except errors.SignatureRefused:
        return False
    signed_info, message_digest = _digested(root, signature, info)
    return message_digest == digest and _checks(
        _public_key(certificate.pem), algorithm, value, signed_info
    )


def _digested(
    root: etree._Element, signature: etree._Element, info: etree._Element
) -> tuple[bytes, bytes]:
    """What a signature is checked against: its SignedInfo canonicalised, and the SHA-256 of
    the whole document as the enveloped transform sees it (PIs after the root included)."""
    signed_info = _c14n(info)  # before the signature is taken out below
    with _enveloped(signature):
        message = _c14n(root.getroottree())
    return signed_info, hashlib.sha256(message).digest()


def require_signed(msg: BusinessMessage) -> None:
    """Signatures are required: `msg` must have been signed (its signature was checked as it
    was read)."""
    if msg.signed_by is not None:
        return
    detail = (
        "unsigned: AppHdr/Sgntr must hold the sender's signature"
        if msg.header is not None
        else "unsigned: a business message needs an AppHdr and its Sgntr"
    )
    raise errors.SignatureRefused(detail, reason="DS21", ids=message_ids(msg))


def _checks(key: PublicKey, algorithm: str, value: bytes, signed: bytes) -> bool:
    try:
        if algorithm == ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePublicKey):
            if len(value) != 2 * _P256_HALF:
                return False
            r = int.from_bytes(value[:_P256_HALF], "big")
            s = int.from_bytes(value[_P256_HALF:], "big")
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
            return True
        if algorithm == RSA_SHA256 and isinstance(key, rsa.RSAPublicKey):
            key.verify(value, signed, padding.PKCS1v15(), hashes.SHA256())
            return True
    except InvalidSignature:
        return False
    return False  # the algorithm does not fit the key


def _check_form(signature: etree._Element) -> tuple[etree._Element, str, bytes]:
    """The signature's SignedInfo, algorithm and digest, once its form is the one accepted:
    each element where the form puts it, nothing else (no InclusiveNamespaces, no second
    Reference, no other transform). Read from each element's children in one pass, not by
    ElementPath searches (a tenth of the verification's time)."""
    info = next(signature.iterchildren(_SIGNED_INFO), None)
    if info is None:
        raise _refuse("DS0B", "a signature without SignedInfo")
    kids = _elements(info)
    c14n = _first(kids, _C14N_METHOD)
    method = _first(kids, _SIGNATURE_METHOD)
    if c14n is None or c14n.get("Algorithm") != _C14N or len(c14n):
        raise _refuse("DS0B", "canonicalization must be exclusive C14N")
    algorithm = method.get("Algorithm") if method is not None else None
    if method is None or algorithm not in ALGORITHMS or len(method):
        raise _refuse(
            "DS0B",
            f"signature algorithm {algorithm or 'none'} is not accepted (RSA-SHA256, ECDSA-SHA256)",
        )
    references = [k for k in kids if k.tag == _REFERENCE]
    if len(references) != 1:
        raise _refuse("DS0B", f"{len(references)} references: exactly one is accepted")
    reference = references[0]
    uri = reference.get("URI")
    if uri != "":
        raise _refuse("DS0B", f'the reference must be URI="" (the whole message), not {uri!r}')
    parts = _elements(reference)
    holder = _first(parts, _TRANSFORMS_TAG)
    transforms = _elements(holder) if holder is not None else []
    if (
        [t.tag for t in transforms] != [_TRANSFORM] * len(_TRANSFORMS)
        or tuple(t.get("Algorithm") for t in transforms) != _TRANSFORMS
        or any(len(t) for t in transforms)
    ):
        raise _refuse("DS0B", "the transforms must be enveloped-signature, exclusive C14N")
    digest = _first(parts, _DIGEST_METHOD)
    if digest is None or digest.get("Algorithm") != _DIGEST or len(digest):
        raise _refuse("DS0B", "the digest must be SHA-256")
    if [p.tag for p in parts] != _REFERENCE_FORM or [k.tag for k in kids] != _SIGNED_INFO_FORM:
        raise _refuse("DS0B", "SignedInfo holds elements outside the accepted form")
    assert algorithm is not None
    return info, algorithm, _base64(parts[2], "digest value")


def _first(elements: list[etree._Element], tag: str) -> etree._Element | None:
    return next((e for e in elements if e.tag == tag), None)


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _validity(cert: Certificate, now: datetime) -> str:
    if now < cert.not_before:
        return f"the signer's certificate is not valid before {cert.not_before.isoformat()}"
    return f"the signer's certificate expired at {cert.not_after.isoformat()}"


@dataclass(frozen=True)
class Signer:
    """The gateway's signing key and certificate, loaded once."""

    key: PrivateKey
    certificate: Certificate
    algorithm: str  # ECDSA_SHA256 or RSA_SHA256, as the key is
    certificate_b64: str  # its DER form, as KeyInfo/X509Data/X509Certificate carries it

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes, passphrase: bytes | None = None) -> Signer:
        """`passphrase`: an encrypted key's (PKCS#8 or traditional PEM); never prompted for."""
        certificate = read_certificate(cert_pem, "gateway certificate")
        try:
            key = serialization.load_pem_private_key(key_pem, password=passphrase)
        except TypeError:  # cryptography: encrypted without a pass phrase, or the reverse
            if passphrase is None:
                raise LockedKey("the key is encrypted: give its pass phrase") from None
            raise ValueError("the key is not encrypted: give no pass phrase") from None
        if not isinstance(key, PrivateKey):
            raise ValueError("the signing key must be RSA or EC (P-256)")
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name != "secp256r1":
            raise ValueError(f"an EC signing key must be on P-256, not {key.curve.name}")
        if key.public_key().public_numbers() != _public_key(certificate.pem).public_numbers():
            raise ValueError("the signing key is not the certificate's")
        der = x509.load_pem_x509_certificate(certificate.pem).public_bytes(
            serialization.Encoding.DER
        )
        algorithm = ECDSA_SHA256 if isinstance(key, ec.EllipticCurvePrivateKey) else RSA_SHA256
        return cls(key, certificate, algorithm, base64.b64encode(der).decode("ascii"))

    @staticmethod
    def unsign(root: etree._Element) -> bool:
        """Remove the message's AppHdr/Sgntr (to sign it anew); whether there was one."""
        header = next(iter(root), None)
        found = [] if header is None else header.findall(f"{{{_HEAD}}}Sgntr")
        for place in found:
            header.remove(place)  # type: ignore[union-attr]
        return bool(found)

    def sign(self, root: etree._Element) -> None:
        """Sign the message `root` (AppHdr + Document) in place: AppHdr/Sgntr, enveloped."""
        header = next(iter(root), None)
        assert header is not None and header.tag == f"{{{_HEAD}}}AppHdr", "no AppHdr to sign"
        if next(root.iter(_SIGNATURE), None) is not None:
            raise SignedAlready("it is signed already: one signature is accepted, not two")
        place = etree.Element(f"{{{_HEAD}}}Sgntr")
        # Sgntr's place in the header's sequence: after Prty, before Rltd.
        rltd = header.find(f"{{{_HEAD}}}Rltd")
        if rltd is not None:
            rltd.addprevious(place)
        else:
            header.append(place)
        # The digest is of the message as the enveloped transform will see it: Sgntr empty.
        digest = base64.b64encode(hashlib.sha256(_c14n(root.getroottree())).digest())
        signature = clone(self.template)
        place.append(signature)
        info, value = signature[0], signature[1]
        info[2][2].text = digest.decode("ascii")  # SignedInfo/Reference/DigestValue
        value.text = base64.b64encode(self._sign(_c14n(info))).decode("ascii")

    @cached_property
    def template(self) -> etree._Element:
        """The ds:Signature this signer writes, but for its digest and value: built once
        (building it costs a fifth of a signature), copied for each message."""
        d = f"{{{DS}}}"
        signature = etree.Element(f"{d}Signature", nsmap={"ds": DS})
        info = etree.SubElement(signature, f"{d}SignedInfo")
        etree.SubElement(info, f"{d}CanonicalizationMethod", Algorithm=_C14N)
        etree.SubElement(info, f"{d}SignatureMethod", Algorithm=self.algorithm)
        reference = etree.SubElement(info, f"{d}Reference", URI="")
        transforms = etree.SubElement(reference, f"{d}Transforms")
        for algorithm in _TRANSFORMS:
            etree.SubElement(transforms, f"{d}Transform", Algorithm=algorithm)
        etree.SubElement(reference, f"{d}DigestMethod", Algorithm=_DIGEST)
        etree.SubElement(reference, f"{d}DigestValue")
        etree.SubElement(signature, f"{d}SignatureValue")
        key_info = etree.SubElement(signature, f"{d}KeyInfo")
        x509_data = etree.SubElement(key_info, f"{d}X509Data")
        etree.SubElement(x509_data, f"{d}X509Certificate").text = self.certificate_b64
        return signature

    def _sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(_P256_HALF, "big") + s.to_bytes(_P256_HALF, "big")
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


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
    passphrase = security.signing_key_passphrase.encode() or None
    return Signer.from_pem(key, Path(security.signing_certificate_file).read_bytes(), passphrase)
