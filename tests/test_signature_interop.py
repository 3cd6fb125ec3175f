"""The one signature form, computed by the gateway on lxml's C14N and `cryptography`
(gateway/signatures.py), checked both ways against xmlsec, the reference XML-DSig engine:

- what either signs, both verify, however the sender spelt the message (indented, a PI or a
  comment inside a value, character references);
- what either refuses after any change (a value, the white space between elements, a PI
  after the root), the other refuses too.

Every registered type's samples from both sides, ECDSA P-256 and RSA keys."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import xmlsec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.config import Config
from gateway.directory import Directory, load_directory
from gateway.iso20022 import errors
from gateway.signatures import DS, read_signed
from tests.conftest import SAMPLES
from tests.signing import Identity, directory_with, identity, signed, signed_by_hand

HEAD_NS = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
_KEEP = etree.XMLParser(remove_blank_text=False, resolve_entities=False)
GATEWAY = Config().gateway.bic


def _sender(data: bytes) -> str | None:
    root = etree.fromstring(data)
    bic = root.find(f"{{{HEAD_NS}}}AppHdr/{{{HEAD_NS}}}Fr/{{{HEAD_NS}}}FIId//{{{HEAD_NS}}}BICFI")
    return bic.text.strip() if bic is not None and bic.text else None


# Partners' samples (a bare Document has no header to sign; the gateway's own are signed by
# its key, which no directory lists).
SIGNED_SAMPLES = sorted(
    p for p in SAMPLES.glob("*/*.xml") if _sender(p.read_bytes()) not in (None, GATEWAY)
)


def sender_of(data: bytes) -> str:
    sender = _sender(data)
    assert sender is not None
    return sender


@cache
def senders() -> tuple[str, ...]:
    return tuple(sorted({sender_of(p.read_bytes()) for p in SIGNED_SAMPLES}))


@dataclass(frozen=True)
class Keys:
    made: dict[tuple[str, str], Identity]  # (BIC, "ec" | "rsa") -> its identity
    directory: Directory  # listing every one of them

    def __repr__(self) -> str:
        return f"Keys({len(self.made)} identities)"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    made = {(bic, kind): identity(bic, kind=kind) for bic in senders() for kind in ("ec", "rsa")}
    by_bic: dict[str, list[Identity]] = {}
    for (bic, _), ident in made.items():
        by_bic.setdefault(bic, []).append(ident)
    path = directory_with(tmp_path_factory.mktemp("interop"), by_bic)
    return Keys(made, load_directory(path))


def xmlsec_accepts(data: bytes, who: Identity) -> bool:
    root = etree.fromstring(data, _KEEP)
    signatures = root.findall(f".//{{{DS}}}Signature")
    assert len(signatures) == 1
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(who.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    try:
        ctx.verify(signatures[0])
    except xmlsec.Error:
        return False
    return True


def gateway_accepts(data: bytes, directory: Directory) -> bool:
    now = datetime.datetime.now(datetime.UTC)
    try:
        msg = read_signed(data, directory, now)
    except errors.SignatureRefused as exc:
        # The form is right: the digest or the value fails, or the change named another sender.
        assert exc.code == "DS0A" or (exc.code == "DS0E" and "sender" in exc.detail), exc
        return False
    assert msg.signed_by is not None
    return True


def spelt(data: bytes, how: str) -> bytes:
    """The sample as a sender may spell it before signing."""
    if how == "compact":
        root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    if how == "indented":
        return data
    leaf = b"</BizMsgIdr>"
    assert leaf in data
    i = data.index(leaf)
    j = data.rindex(b">", 0, i) + 1
    mark = {"pi": b"<?note x?>", "comment": b"<!-- x -->", "charref": b"&#x2D;"}[how]
    return data[:j] + data[j : j + 2] + mark + data[j + 2 :]


def changed(data: bytes, how: str, pick: int) -> bytes:
    """`data` changed after signing, in one way."""
    root = etree.fromstring(data, _KEEP)
    if how == "pi-after-root":
        return bytes(etree.tostring(root, encoding="UTF-8")) + b"<?after signing?>"
    outside = [
        el
        for el in root.iter(tag=etree.Element)
        if not any(etree.QName(a).namespace == DS for a in el.iterancestors())
        and etree.QName(el).namespace != DS
    ]
    if how == "value":
        leaves = [el for el in outside if len(el) == 0 and (el.text or "").strip()]
        el = leaves[pick % len(leaves)]
        el.text = (el.text or "") + "0"
    else:  # white space between two elements
        parents = [el for el in outside if len(el)]
        el = parents[pick % len(parents)][0]
        el.tail = (el.tail or "") + " "
    return bytes(etree.tostring(root, encoding="UTF-8"))


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    sample=st.sampled_from(SIGNED_SAMPLES),
    spelling=st.sampled_from(["compact", "indented", "pi", "comment", "charref"]),
    kind=st.sampled_from(["ec", "rsa"]),
    signer=st.sampled_from(["gateway", "xmlsec", "xmlsec-indented"]),
    change=st.sampled_from(["none", "value", "blank", "pi-after-root"]),
    pick=st.integers(min_value=0, max_value=500),
)
def test_the_gateway_and_xmlsec_agree_on_every_signature(
    keys: Keys,
    sample: Path,
    spelling: str,
    kind: str,
    signer: str,
    change: str,
    pick: int,
) -> None:
    data = spelt(sample.read_bytes(), spelling)
    who = keys.made[(sender_of(data), kind)]
    if signer == "gateway":
        sent = signed(data, who)
    else:
        rsa = xmlsec.constants.TransformRsaSha256 if kind == "rsa" else None
        sent = signed_by_hand(data, who, algorithm=rsa, indented=signer == "xmlsec-indented")
    if change != "none":
        sent = changed(sent, change, pick)
    theirs, ours = xmlsec_accepts(sent, who), gateway_accepts(sent, keys.directory)
    assert theirs == ours, (theirs, ours)
    assert ours == (change == "none")
