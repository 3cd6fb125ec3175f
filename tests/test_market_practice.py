"""What the market-practice profiles and whole-document translation decide, one rule each:
how scheme participants may be named, which agents pass through, the business refusals
(SttlmMtd COVE, unstructured-only addresses by policy), and pacs.009 advices."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from lxml import etree

from gateway.config import Config, TranslationSection
from gateway.iso20022.reader import read_message
from gateway.translation import Translator
from tests.conftest import ROOT, SAMPLES

AGENT = (
    b"<InstgAgt>\n          <FinInstnId>\n            <BICFI>HPCBCNSHXXX</BICFI>\n"
    b"            <ClrSysMmbId>\n              <ClrSysId>\n                <Cd>CNAPS</Cd>\n"
    b"              </ClrSysId>\n              <MmbId>313290012345</MmbId>\n"
    b"            </ClrSysMmbId>\n          </FinInstnId>\n        </InstgAgt>"
)


def onshore_payment() -> bytes:
    data = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()
    assert AGENT in data, "the test's anchor must be in the sample"
    return data


def instructing(fin: bytes) -> bytes:
    return onshore_payment().replace(
        AGENT, b"<InstgAgt><FinInstnId>" + fin + b"</FinInstnId></InstgAgt>"
    )


def sent_agent(message: bytes, role: str) -> tuple[str | None, str | None, str | None]:
    fin = etree.fromstring(message).find(f".//{{*}}CdtTrfTxInf/{{*}}{role}/{{*}}FinInstnId")
    assert fin is not None
    return (
        fin.findtext("{*}BICFI"),
        fin.findtext("{*}ClrSysMmbId/{*}ClrSysId/{*}Cd"),
        fin.findtext("{*}ClrSysMmbId/{*}MmbId"),
    )


@pytest.mark.parametrize(
    "fin",
    [
        b"<BICFI>HPCBCNSHXXX</BICFI>",
        b"<ClrSysMmbId><ClrSysId><Cd>CNAPS</Cd></ClrSysId><MmbId>313290012345</MmbId></ClrSysMmbId>",
        b"<BICFI>HPCBCNSH</BICFI><LEI>5493001KJTIIGC8Y1R12</LEI><Nm>Huangpu Commercial Bank</Nm>",
    ],
    ids=["bic-alone", "member-id-alone", "bic8-lei-name"],
)
def test_a_participant_named_by_bic_or_member_id_alone_is_sent_with_the_targets_ids(
    config: Config, fin: bytes
) -> None:
    out = Translator(config).process(instructing(fin), "onshore")
    assert out.accepted, out.error
    assert sent_agent(out.message, "InstgAgt") == ("HPCBCNSHXXX", "HKNCC", "901")
    assert out.obligations[0].payer == "HPCBCNSHXXX"


@pytest.mark.parametrize(
    ("fin", "words"),
    [
        (b"<BICFI>DEUTDEFFXXX</BICFI>", "DEUTDEFFXXX is not a participant"),
        (
            b"<BICFI>HPCBCNSHXXX</BICFI><ClrSysMmbId><ClrSysId><Cd>CNAPS</Cd></ClrSysId>"
            b"<MmbId>313100054321</MmbId></ClrSysMmbId>",
            "does not belong to it",
        ),
        (
            b"<ClrSysMmbId><ClrSysId><Cd>CNAPS</Cd></ClrSysId><MmbId>313999999999</MmbId>"
            b"</ClrSysMmbId>",
            "313999999999 is not a participant",
        ),
        (b"<LEI>5493001KJTIIGC8Y1R12</LEI>", "a BIC or a member id is required"),
    ],
    ids=["foreign-bic", "bic-and-member-disagree", "unknown-member", "lei-alone"],
)
def test_a_scheme_agent_that_names_no_participant_is_refused_rc01(
    config: Config, fin: bytes, words: str
) -> None:
    out = Translator(config).process(instructing(fin), "onshore")
    assert not out.accepted and out.error is not None
    assert out.error.code == "RC01" and words in out.error.detail
    assert out.obligations == ()


def test_a_scheme_agent_in_the_other_clearing_system_is_a_profile_error(config: Config) -> None:
    fin = b"<ClrSysMmbId><ClrSysId><Cd>HKNCC</Cd></ClrSysId><MmbId>901</MmbId></ClrSysMmbId>"
    out = Translator(config).process(instructing(fin), "onshore")
    assert not out.accepted and out.error is not None and out.error.code == "FF01"
    assert "HKNCC" in out.error.detail


def test_agents_outside_the_scheme_pass_through_unchanged(config: Config) -> None:
    foreign = (
        b"<IntrmyAgt1><FinInstnId><ClrSysMmbId><ClrSysId><Cd>USABA</Cd></ClrSysId>"
        b"<MmbId>021000021</MmbId></ClrSysMmbId><LEI>7H6GLXDRUGQFU57RNE97</LEI>"
        b"<Nm>JPMorgan Chase Bank</Nm></FinInstnId></IntrmyAgt1><Dbtr>"
    )
    data = onshore_payment().replace(b"<Dbtr>", foreign, 1)
    out = Translator(config).process(data, "onshore")
    assert out.accepted, out.error
    sent = etree.fromstring(out.message).find(".//{*}IntrmyAgt1")
    given = etree.fromstring(data).find(".//{*}IntrmyAgt1")
    assert sent is not None and given is not None

    def content(el: etree._Element) -> list[tuple[str, str | None]]:
        return [(etree.QName(e).localname, e.text) for e in el.iter()]

    assert content(sent) == content(given)


def test_a_customer_transfer_with_cover_method_is_a_business_reject(config: Config) -> None:
    data = onshore_payment().replace(b"<SttlmMtd>CLRG</SttlmMtd>", b"<SttlmMtd>COVE</SttlmMtd>")
    out = Translator(config).process(data, "onshore")
    assert not out.accepted and out.error is not None
    assert out.error.code == "NARR" and "COVE" in out.error.detail
    assert out.reject_def == "pacs.002.001.10" and out.obligations == ()
    reject = read_message(out.message)
    assert reject.doc_text("FIToFIPmtStsRpt/TxInfAndSts/TxSts") == "RJCT"


def test_an_institution_transfer_with_cover_method_is_an_advice_without_obligation(
    config: Config,
) -> None:
    data = (SAMPLES / "onshore" / "pacs.009.001.08.xml").read_bytes()
    assert b"<SttlmMtd>CLRG</SttlmMtd>" in data
    data = data.replace(b"<SttlmMtd>CLRG</SttlmMtd>", b"<SttlmMtd>COVE</SttlmMtd>")
    out = Translator(config).process(data, "onshore")
    assert out.accepted, out.error
    assert out.obligations == () and any("advice" in n for n in out.notes)


UNSTRUCTURED = (
    b"<PstlAdr>\n            <TwnNm>\xe4\xb8\x8a\xe6\xb5\xb7</TwnNm>\n            <Ctry>CN</Ctry>\n"
)


@pytest.mark.parametrize("policy", ["accept", "refuse"])
def test_an_unstructured_only_address_follows_the_policy(config: Config, policy: str) -> None:
    data = onshore_payment()
    assert UNSTRUCTURED in data
    data = data.replace(UNSTRUCTURED, b"<PstlAdr>\n")
    config = dataclasses.replace(
        config, translation=TranslationSection(unstructured_address=policy)
    )
    out = Translator(config).process(data, "onshore")
    if policy == "accept":
        assert out.accepted, out.error
        return
    assert not out.accepted and out.error is not None and out.error.code == "NARR"
    assert "Dbtr/PstlAdr" in out.error.detail and "unstructured" in out.error.detail
    assert read_message(out.message).doc_text("FIToFIPmtStsRpt/TxInfAndSts/TxSts") == "RJCT"


def test_a_hybrid_address_is_accepted_under_the_refuse_policy(config: Config) -> None:
    config = dataclasses.replace(
        config, translation=TranslationSection(unstructured_address="refuse")
    )
    out = Translator(config).process(onshore_payment(), "onshore")  # TwnNm + Ctry + AdrLine
    assert out.accepted, out.error


def _narrower_offshore_profile(tmp_path: Path) -> Path:
    """The shipped profiles, with an offshore pacs.008 that does not carry RgltryRptg (an
    operator's own, narrower dialect)."""
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    profile = schemas / "offshore" / "pacs.008.001.08.xsd"
    text = profile.read_text()
    line = (
        '<xs:element maxOccurs="10" minOccurs="0" name="RgltryRptg" type="RegulatoryReporting3"/>'
    )
    assert text.count(line) == 1
    profile.write_text(text.replace(line, ""))
    return schemas


@pytest.mark.parametrize("policy", ["refuse", "supplementary"])
def test_an_element_the_target_cannot_carry_is_refused_or_kept_aside_by_policy(
    config: Config, tmp_path: Path, policy: str
) -> None:
    schemas = _narrower_offshore_profile(tmp_path)
    config = dataclasses.replace(
        config,
        gateway=dataclasses.replace(config.gateway, schemas_dir=str(schemas)),
        translation=TranslationSection(uncarried=policy),
    )
    rich = (ROOT / "samples/onshore/rich/pacs.008.001.08-structured-chinese.xml").read_bytes()
    out = Translator(config).process(rich, "onshore")
    if policy == "refuse":
        assert not out.accepted and out.error is not None and out.error.code == "NARR"
        assert "RgltryRptg" in out.error.detail
        return
    assert out.accepted, out.error
    root = etree.fromstring(out.message)
    assert root.find(".//{*}CdtTrfTxInf/{*}RgltryRptg") is None
    (aside,) = root.iter("{urn:connect-gateway:supplementary:1}Uncarried")
    assert aside.get("path", "").endswith("CdtTrfTxInf/RgltryRptg")
    assert aside[0].findtext(".//{*}Cd") == "121010"  # whole, as it came
    assert any("RgltryRptg: not carried" in n for n in out.notes)
