"""Who sent it: every way a signature can fail to prove the sender is refused with its ISO
reason code, a good one passes, keys rotate by directory reload, and what the gateway emits
is signed with its own key. Over Kafka: tests/test_signatures_e2e.py."""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

import pytest
import xmlsec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.config import Config, SecuritySection, TranslationSection
from gateway.iso20022.reader import read_message
from gateway.signatures import DS, signer_for
from gateway.translation import Translator
from tests.conftest import SAMPLES
from tests.signing import Identity, directory_with, identity, signed, signed_by_hand

PAYMENT = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()  # Fr = InstgAgt = HPCB


@pytest.fixture(scope="module")
def people() -> dict[str, Identity]:
    return {
        "hpcb": identity("HPCBCNSHXXX"),
        "hpcb-rsa": identity("HPCBCNSHXXX", kind="rsa"),
        "hpcb-expired": identity("HPCBCNSHXXX", valid_from_days=-30, valid_to_days=-1),
        "hpcb-future": identity("HPCBCNSHXXX", valid_from_days=2, valid_to_days=30),
        "jadb": identity("JADBCNBJXXX"),
        "stranger": identity("HPCBCNSHXXX"),  # in no directory
        "gateway": identity("SHHKCNSHGWY"),
    }


def translator(
    folder: Path, people: dict[str, Identity], *, sends_for: bool = False, sign: bool = False
) -> Translator:
    directory = directory_with(
        folder,
        {
            "HPCBCNSHXXX": [
                people["hpcb"],
                people["hpcb-rsa"],
                people["hpcb-expired"],
                people["hpcb-future"],
            ],
            "JADBCNBJXXX": [people["jadb"]],
        },
        **({"JADBCNBJXXX": 'sends_for = ["HPCBCNSHXXX"]'} if sends_for else {}),
    )
    security = SecuritySection(require_signatures=True)
    if sign:
        (folder / "gw.key").write_bytes(people["gateway"].key_pem)
        (folder / "gw.pem").write_bytes(people["gateway"].cert_pem)
        security = dataclasses.replace(
            security,
            signing_key_file=str(folder / "gw.key"),
            signing_certificate_file=str(folder / "gw.pem"),
        )
    config = dataclasses.replace(
        Config(), translation=TranslationSection(directory=str(directory)), security=security
    )
    return Translator(config)


def refused(t: Translator, data: bytes) -> tuple[str, str]:
    out = t.process(data, "onshore")
    assert not out.accepted and out.error is not None, "expected a refusal"
    assert out.obligations == () and out.correlation is None
    return out.error.code, out.error.detail


def test_a_message_signed_by_its_sender_passes(tmp_path: Path, people: dict[str, Identity]) -> None:
    t = translator(tmp_path, people)
    for who in ("hpcb", "hpcb-rsa"):  # ECDSA-P256-SHA256 and RSA-SHA256
        out = t.process(signed(PAYMENT, people[who]), "onshore")
        assert out.accepted, out.error
        assert len(out.obligations) == 1


def tamper(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("unsigned", "DS21", "unsigned"),
        ("document-byte", "DS0A", "altered"),
        ("header-byte", "DS0A", "altered"),
        ("another-participant", "DS0E", "JADBCNBJXXX's certificate"),
        ("expired", "DS0D", "expired"),
        ("not-yet-valid", "DS0D", "not valid before"),
        ("unknown-key", "DS0E", "not in the directory"),
        ("rsa-sha1", "DS0B", "rsa-sha1"),
        ("wrapping", "DS0B", "URI"),
        ("external-uri", "DS0B", "http://attacker.example/doc"),
        ("two-signatures", "DS0B", "2 signatures"),
        ("outside-the-header", "DS0B", "AppHdr/Sgntr"),
    ],
)
def test_every_bad_signature_is_refused_with_its_reason(
    tmp_path: Path, people: dict[str, Identity], case: str, code: str, words: str
) -> None:
    t = translator(tmp_path, people)
    good = signed(PAYMENT, people["hpcb"])
    data = {
        "unsigned": PAYMENT,
        "document-byte": tamper(good, b">1250000.00<", b">1250000.01<"),
        "header-byte": tamper(good, b"ON-BIZ-P8-0001", b"ON-BIZ-P8-0002"),
        "another-participant": signed(PAYMENT, people["jadb"]),
        "expired": signed(PAYMENT, people["hpcb-expired"]),
        "not-yet-valid": signed(PAYMENT, people["hpcb-future"]),
        "unknown-key": signed(PAYMENT, people["stranger"]),
        "rsa-sha1": signed_by_hand(
            PAYMENT, people["hpcb-rsa"], algorithm=xmlsec.constants.TransformRsaSha1
        ),
        "wrapping": signed_by_hand(PAYMENT, people["hpcb"], uri="#doc", reference_id="doc"),
        "external-uri": signed_by_hand(PAYMENT, people["hpcb"], uri="http://attacker.example/doc"),
        "two-signatures": _with_a_second_signature(good),
        "outside-the-header": _moved_into_the_document(good),
    }[case]
    got, detail = refused(t, data)
    assert (got, words in detail) == (code, True), detail
    reject = read_message(t.process(data, "onshore").message)
    assert reject.doc_text("FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd") == code


def _with_a_second_signature(good: bytes) -> bytes:
    # Sgntr holds one element (the profile); a second signature can only hide elsewhere.
    root = etree.fromstring(good)
    signature = root.find(f".//{{{DS}}}Signature")
    tx = root.find(".//{*}CdtTrfTxInf")
    assert signature is not None and tx is not None
    block = etree.SubElement(tx, f"{{{tx.nsmap[None]}}}SplmtryData")
    etree.SubElement(block, f"{{{tx.nsmap[None]}}}Envlp").append(copy.deepcopy(signature))
    return bytes(etree.tostring(root))


def _moved_into_the_document(good: bytes) -> bytes:
    root = etree.fromstring(good)
    signature = root.find(f".//{{{DS}}}Signature")
    assert signature is not None
    place = signature.getparent()
    assert place is not None
    # Into the payment's own SplmtryData envelope, where the profile lets any XML through.
    tx = root.find(".//{*}CdtTrfTxInf")
    assert tx is not None
    block = etree.SubElement(tx, f"{{{tx.nsmap[None]}}}SplmtryData")
    envelope = etree.SubElement(block, f"{{{tx.nsmap[None]}}}Envlp")
    envelope.append(signature)
    place.getparent().remove(place)  # type: ignore[union-attr]
    return bytes(etree.tostring(root))


def test_a_sender_signs_for_another_instructing_agent_only_when_the_directory_allows_it(
    tmp_path: Path, people: dict[str, Identity]
) -> None:
    # JADB sends HPCB's payment: Fr is JADB, InstgAgt HPCB.
    as_jadb = PAYMENT.replace(
        b"<Fr>\n      <FIId>\n        <FinInstnId>\n          <BICFI>HPCBCNSHXXX",
        b"<Fr>\n      <FIId>\n        <FinInstnId>\n          <BICFI>JADBCNBJXXX",
    )
    assert as_jadb != PAYMENT
    data = signed(as_jadb, people["jadb"])
    code, detail = refused(translator(tmp_path / "a", people, sends_for=False), data)
    assert code == "DS19" and "may not sign for" in detail
    out = translator(tmp_path / "b", people, sends_for=True).process(data, "onshore")
    assert out.accepted, out.error


@pytest.fixture(autouse=True)
def _folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()


def test_keys_rotate_by_reloading_the_directory(
    tmp_path: Path, people: dict[str, Identity]
) -> None:
    new = identity("HPCBCNSHXXX")
    t = translator(tmp_path, people)
    assert refused(t, signed(PAYMENT, new))[0] == "DS0E"
    # The operator adds the new certificate beside the old (an overlap), then drops the old.
    path = directory_with(tmp_path, {"HPCBCNSHXXX": [people["hpcb"], new]})
    _touch_later(path)
    assert t.process(signed(PAYMENT, new), "onshore").accepted
    assert t.process(signed(PAYMENT, people["hpcb"]), "onshore").accepted
    path = directory_with(tmp_path, {"HPCBCNSHXXX": [new]})
    _touch_later(path)
    assert t.process(signed(PAYMENT, new), "onshore").accepted
    assert refused(t, signed(PAYMENT, people["hpcb"]))[0] == "DS0E"


def _touch_later(path: Path) -> None:
    """A new modification time, and past the reload check's interval (1 s)."""
    later = time.time() + 2
    os.utime(path, (later, later))
    time.sleep(1.1)


def test_everything_the_gateway_emits_is_signed_with_its_key(
    tmp_path: Path, people: dict[str, Identity]
) -> None:
    t = translator(tmp_path, people, sign=True)
    outputs = [
        t.process(signed(PAYMENT, people["hpcb"]), "onshore").message,  # a translation
        t.process(PAYMENT, "onshore").message,  # a reject (unsigned: DS21)
        t.process(b"<not-xml", "onshore").message,  # an admi.002
    ]
    key = xmlsec.Key.from_memory(people["gateway"].cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    for data in outputs:
        root = etree.fromstring(data)
        (signature,) = root.findall(f".//{{{DS}}}Signature")
        assert signature.getparent().tag.endswith("}Sgntr")  # type: ignore[union-attr]
        ctx = xmlsec.SignatureContext()
        ctx.key = key
        ctx.verify(signature)  # raises if not signed by the gateway's key over this message
        read_message(data)  # and still a valid message to its profile
    assert signer_for(t.config.security) is t.signer


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, people: dict[str, Identity]) -> Translator:
    return translator(tmp_path_factory.mktemp("strict"), people)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_change_to_a_signed_message_is_refused(
    strict: Translator, people: dict[str, Identity], data: st.DataObject
) -> None:
    # Property: change any one text of the header or the document after signing, to
    # anything; the message never goes through (DS0A, or FF01 if the change broke the
    # profile, which is checked first).
    root = etree.fromstring(signed(PAYMENT, people["hpcb"]))
    leaves = [
        el
        for el in root.iter()
        if isinstance(el.tag, str)
        and len(el) == 0
        and (el.text or "").strip()
        and not any(etree.QName(a).namespace == DS for a in el.iterancestors())
        and etree.QName(el).namespace != DS
    ]
    target = data.draw(st.sampled_from(leaves))
    new = data.draw(
        st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ .-", min_size=1, max_size=20)
    )
    assume(new.strip() != (target.text or "").strip())
    target.text = new
    tampered = etree.tostring(root)
    out = strict.process(tampered, "onshore")
    assert not out.accepted and out.error is not None and out.obligations == ()
    if out.error.code == "DS0E":  # another sender named: the certificate is not its own
        assert etree.QName(target).localname == "BICFI" and "Fr" in {
            etree.QName(a).localname for a in target.iterancestors()
        }, out.error
        return
    assert out.error.code in ("DS0A", "FF01"), out.error
    try:
        strict.profiles["onshore"].validate(read_message(tampered))
    except Exception:
        return
    assert out.error.code == "DS0A"
