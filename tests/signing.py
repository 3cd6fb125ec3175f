"""Throw-away keys, certificates and signed (or wrongly signed) messages for the tests.

Good signatures are made by the gateway's own `Signer` (what `connect-gateway sign` uses);
the wrong ones by hand with the xmlsec templates, each wrong in one way.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from gateway.config import Config, SecuritySection, TranslationSection
from gateway.signatures import Signer
from tests.conftest import ROOT

HEAD_NS = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
UTC = datetime.UTC


@dataclass(frozen=True)
class Identity:
    key_pem: bytes
    cert_pem: bytes

    @property
    def signer(self) -> Signer:
        return Signer.from_pem(self.key_pem, self.cert_pem)


def identity(
    name: str, *, kind: str = "ec", valid_from_days: int = -1, valid_to_days: int = 365
) -> Identity:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=valid_from_days))
        .not_valid_after(now + datetime.timedelta(days=valid_to_days))
        .sign(key, hashes.SHA256())
    )
    return Identity(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


def encrypted(who: Identity, phrase: bytes) -> bytes:
    """`who`'s key as PEM encrypted with `phrase` (PKCS#8)."""
    key = serialization.load_pem_private_key(who.key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(phrase),
    )


@functools.cache
def bystander() -> Identity:
    """The certificate of every entry a test does not name: with signatures required, each
    sender must have one enrolled; nobody in a test signs with this key."""
    return identity("BYSTANDER")


def directory_with(folder: Path, certificates: dict[str, list[Identity]], **extra: str) -> Path:
    """The sample directory, with these participants' certificates (written beside it) and
    any extra TOML lines per participant (e.g. sends_for). Every other entry enrols the
    bystander's certificate, inline, as signatures required demand."""
    text = (ROOT / "data" / "participants.toml").read_text()
    others = set(re.findall(r'^bic = "(\w+)"$', text, flags=re.M)) - set(certificates)
    inline = bystander().cert_pem.decode()
    for bic in others:
        text = re.sub(
            rf'^bic = "{bic}"$',
            f'bic = "{bic}"\ncertificates = ["""{inline}"""]',
            text,
            count=1,
            flags=re.M,
        )
    for bic, identities in certificates.items():
        names = []
        for i, ident in enumerate(identities):
            name = f"{bic}-{i}.pem"
            (folder / name).write_bytes(ident.cert_pem)
            names.append(f'"{name}"')
        line = f'bic = "{bic}"\ncertificates = [{", ".join(names)}]'
        if bic in extra:
            line += f"\n{extra[bic]}"
        text, count = re.subn(rf'^bic = "{bic}"$', line, text, count=1, flags=re.M)
        assert count == 1, bic
    path = folder / "participants.toml"
    path.write_text(text)
    return path


def signing_config(folder: Path, directory: Path, gateway: Identity) -> Config:
    """The built-in configuration with `directory`, signatures required, and `gateway`'s key
    (written into `folder`) signing what it emits."""
    (folder / "gw.key").write_bytes(gateway.key_pem)
    (folder / "gw.pem").write_bytes(gateway.cert_pem)
    return dataclasses.replace(
        Config(),
        translation=TranslationSection(directory=str(directory)),
        security=SecuritySection(
            require_signatures=True,
            signing_key_file=str(folder / "gw.key"),
            signing_certificate_file=str(folder / "gw.pem"),
        ),
    )


def signed(data: bytes, who: Identity) -> bytes:
    """The message as its sender signs it (the bytes as sent, indentation and all)."""
    root = etree.fromstring(data)
    who.signer.sign(root)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def signed_by_hand(
    data: bytes,
    who: Identity,
    *,
    algorithm: object = None,
    uri: str = "",
    reference_id: str | None = None,
    indented: bool = False,
) -> bytes:
    """A signature made by xmlsec: wrongly on purpose (another algorithm, another reference),
    or, with the defaults, in the accepted form. `indented`: the signature on its own line in
    Sgntr (the white space around it is signed: the enveloped transform takes out the
    element alone)."""
    root = etree.fromstring(data)
    header = root.find(f"{{{HEAD_NS}}}AppHdr")
    assert header is not None
    if reference_id is not None:
        # Wrapping: the signature covers a copy of the Document tucked into SplmtryData (which
        # every profile lets through), named by an Id; the Document processed is another.
        document = root[1]
        tx = document[0][1]
        ns = etree.QName(tx).namespace
        block = etree.SubElement(tx, f"{{{ns}}}SplmtryData")
        wrapper = etree.SubElement(
            etree.SubElement(block, f"{{{ns}}}Envlp"), "{urn:attacker}Signed", Id=reference_id
        )
        wrapper.append(copy.deepcopy(document))
        xmlsec.tree.add_ids(root, ["Id"])
    place = etree.SubElement(header, f"{{{HEAD_NS}}}Sgntr")
    signature = xmlsec.template.create(
        root,
        xmlsec.constants.TransformExclC14N,
        algorithm or xmlsec.constants.TransformEcdsaSha256,
    )
    place.append(signature)
    if indented:
        place.text, signature.tail = "\n        ", "\n      "
    reference = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256, uri=uri)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.add_x509_data(key_info)
    if uri and not uri.startswith("#"):
        # An external reference cannot be signed here (no I/O); the form alone is the attack.
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    ctx = xmlsec.SignatureContext()
    key = xmlsec.Key.from_memory(who.key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(who.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    ctx.key = key
    ctx.sign(signature)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
