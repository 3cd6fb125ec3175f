"""The profiles: samples validate, bad messages fail precisely, profiles restrict the official."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from gateway.iso20022 import errors
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from gateway.messages.registry import ALL_MESSAGES, DOCUMENT_MESSAGES
from tests.conformance import official_verdicts
from tests.conftest import SAMPLES, SHARED
from tests.restriction import RestrictionChecker

# Every profile in schemas/: the registered types' and those described for types the gateway
# does not accept yet (schemas/profiles.toml).
with open(SAMPLES.parent / "schemas" / "profiles.toml", "rb") as _fh:
    PROFILED = sorted(set(ALL_MESSAGES) | set(tomllib.load(_fh)["message"]))

SIDES = ("onshore", "offshore")
OFFICIAL = SHARED / "iso20022" / "xsd"
needs_shared = pytest.mark.skipif(not OFFICIAL.is_dir(), reason="../shared/iso20022 not present")


def sample(side: str, msg_def: str) -> bytes:
    return (SAMPLES / side / f"{msg_def}.xml").read_bytes()


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("msg_def", DOCUMENT_MESSAGES)
def test_every_sample_is_valid_in_its_dialect(
    profiles: dict[str, ProfileSet], side: str, msg_def: str
) -> None:
    msg = read_message(sample(side, msg_def))
    assert msg.msg_def == msg_def
    assert msg.header is not None
    profiles[side].validate(msg)


@pytest.mark.parametrize("msg_def", ["pacs.008.001.08", "pacs.009.001.08", "pacs.004.001.09"])
def test_a_sample_is_invalid_in_the_other_dialect(
    profiles: dict[str, ProfileSet], msg_def: str
) -> None:
    # Agents carry CNAPS member ids onshore and HKNCC bank codes offshore.
    with pytest.raises(errors.SchemaViolation) as caught:
        profiles["offshore"].validate(read_message(sample("onshore", msg_def)))
    assert "'CNAPS' is not an element of the set {'HKNCC'}" in caught.value.detail
    assert caught.value.location is not None
    assert caught.value.location.endswith("ClrSysMmbId/ClrSysId/Cd")


# (side, sample, replace this, with this, expected words in the error, expected location end)
BAD_CASES = [
    ("onshore", "pacs.008.001.08", b"<NbOfTxs>1<", b"<NbOfTxs>2<", "pattern", "GrpHdr/NbOfTxs"),
    (
        "onshore",
        "pacs.008.001.08",
        b'Ccy="CNY">1250000.00<',
        b'Ccy="CNY">1250000.001<',
        "fractionDigits",
        "CdtTrfTxInf/IntrBkSttlmAmt",
    ),
    (
        "onshore",
        "pacs.008.001.08",
        b'Ccy="CNY">1250000.00<',
        b'Ccy="EUR">1250000.00<',
        "EUR",
        "CdtTrfTxInf/IntrBkSttlmAmt",
    ),
    (
        "onshore",
        "pacs.008.001.08",
        b'Ccy="CNY">1250000.00<',
        b'Ccy="CNY">0.00<',
        "minInclusive",
        "CdtTrfTxInf/IntrBkSttlmAmt",
    ),
    (
        "offshore",
        "pacs.008.001.08",
        b"<UETR>5e9d2a7b-3c84-4f1e",
        b"<UETR>5E9D2A7B-3c84-4f1e",
        "pattern",
        "PmtId/UETR",
    ),
    (
        "offshore",
        "pacs.008.001.08",
        b"<Nm>ZHANG WEI</Nm>",
        "<Nm>张伟</Nm>".encode(),
        "pattern",
        "Cdtr/Nm",
    ),
    (
        "onshore",
        "pacs.008.001.08",
        b"<MmbId>313290012345</MmbId>",
        b"<MmbId>31329001234</MmbId>",
        "pattern",
        "ClrSysMmbId/MmbId",
    ),
    (
        "onshore",
        "pacs.008.001.08",
        b"<CreDt>2026-11-20T10:15:00+08:00</CreDt>",
        b"<CreDt>2026-11-20T10:15:00</CreDt>",
        "pattern",
        "AppHdr/CreDt",
    ),
    (
        "offshore",
        "pacs.009.001.08",
        b"<BICFI>KLBKHKHHXXX</BICFI>",
        b"<BICFI>KLBK1KHHXXX</BICFI>",
        "pattern",
        "BICFI",
    ),
    (
        "onshore",
        "sese.023.001.09",
        b"<Cd>TRAD</Cd>",
        b"<Cd>REPU</Cd>",
        "enumeration",
        "SctiesTxTp/Cd",
    ),
    (
        "offshore",
        "sese.023.001.09",
        b"<Pmt>APMT</Pmt>",
        b"<Pmnt>APMT</Pmnt>",
        "Pmnt",
        "SttlmTpAndAddtlParams/Pmnt",
    ),
    (
        "onshore",
        "admi.002.001.01",
        b"<RjctgPtyRsn>FF01</RjctgPtyRsn>",
        b"<RjctgPtyRsn>FF011</RjctgPtyRsn>",
        "pattern",
        "Rsn/RjctgPtyRsn",
    ),
    (
        "offshore",
        "pacs.029.001.01",
        b"<CdtDbt>DBIT</CdtDbt>",
        b"<CdtDbt>DEBIT</CdtDbt>",
        "enumeration",
        "Amt/CdtDbt",
    ),
]


@pytest.mark.parametrize(("side", "msg_def", "old", "new", "words", "where"), BAD_CASES)
def test_bad_message_fails_with_a_precise_error(
    profiles: dict[str, ProfileSet],
    side: str,
    msg_def: str,
    old: bytes,
    new: bytes,
    words: str,
    where: str,
) -> None:
    data = sample(side, msg_def)
    assert old in data, "the test's anchor must be in the sample"
    msg = read_message(data.replace(old, new, 1))
    with pytest.raises(errors.SchemaViolation) as caught:
        profiles[side].validate(msg)
    assert words in caught.value.detail
    assert caught.value.location and caught.value.location.endswith(where), caught.value.location
    # Where by path, not by line: a line is the spelling's, and every spelling of a message
    # gets the same reject (tests/test_spelling.py).
    assert "(line " not in caught.value.detail


@needs_shared
def test_samples_conform_to_the_official_schemas() -> None:
    files = sorted(SAMPLES.glob("*/*.xml"))
    assert len(files) == 2 * len(DOCUMENT_MESSAGES)
    verdicts = official_verdicts(files)
    assert all(v == "valid" for v in verdicts.values()), verdicts


@needs_shared
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("msg_def", PROFILED)
def test_profile_is_a_restriction_of_the_official_schema(side: str, msg_def: str) -> None:
    root = SAMPLES.parent / "schemas"
    problems = RestrictionChecker(
        str(root / side / f"{msg_def}.xsd"), str(OFFICIAL / f"{msg_def}.xsd")
    ).check()
    assert problems == []


OFFICIAL_TOY = """
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t" xmlns="urn:t"
           elementFormDefault="qualified">
  <xs:element name="Doc" type="DocT"/>
  <xs:complexType name="DocT"><xs:sequence>
    <xs:element name="Id" type="Max10"/>
    <xs:element name="Code" type="CodeT" minOccurs="0"/>
    <xs:choice minOccurs="0"><xs:element name="A" type="Max10"/><xs:element name="B" type="Max10"/></xs:choice>
    <xs:element name="Ref" type="RefT" minOccurs="0" maxOccurs="2"/>
  </xs:sequence></xs:complexType>
  <xs:simpleType name="Max10"><xs:restriction base="xs:string">
    <xs:minLength value="1"/><xs:maxLength value="10"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="CodeT"><xs:restriction base="xs:string">
    <xs:enumeration value="X"/><xs:enumeration value="Y"/></xs:restriction></xs:simpleType>
  <xs:simpleType name="RefT"><xs:restriction base="xs:string">
    <xs:pattern value="[A-Z]{3}"/></xs:restriction></xs:simpleType>
</xs:schema>"""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("", ""), None),
        (('name="Id" type="Max10"/>', 'name="Id" type="Max10" minOccurs="0"/>'), "required"),
        (('<xs:maxLength value="10"/>', '<xs:maxLength value="11"/>'), "max_length"),
        (('<xs:enumeration value="Y"/>', '<xs:enumeration value="Z"/>'), "'Z'"),
        (('<xs:pattern value="[A-Z]{3}"/>', '<xs:pattern value="[A-Z0-9]{3}"/>'), "not officially"),
        (('maxOccurs="2"', 'maxOccurs="3"'), "up to 3"),
        (
            (
                '<xs:choice minOccurs="0"><xs:element name="A" type="Max10"/><xs:element name="B" type="Max10"/></xs:choice>',
                '<xs:element name="A" type="Max10"/><xs:element name="B" type="Max10"/>',
            ),
            "choice",
        ),
        (
            (
                '<xs:element name="Id" type="Max10"/>\n    <xs:element name="Code" type="CodeT" minOccurs="0"/>',
                '<xs:element name="Code" type="CodeT" minOccurs="0"/>\n    <xs:element name="Id" type="Max10"/>',
            ),
            "officially after",
        ),
        (
            (
                '<xs:element name="Code"',
                '<xs:element name="Extra" type="Max10" minOccurs="0"/><xs:element name="Code"',
            ),
            "not an official child",
        ),
    ],
)
def test_restriction_checker_catches_each_kind_of_widening(
    tmp_path: Path, change: tuple[str, str], expected: str | None
) -> None:
    official = textwrap.dedent(OFFICIAL_TOY)
    old, new = change
    assert old in official
    profile = official.replace(old, new, 1)
    (tmp_path / "official.xsd").write_text(official)
    (tmp_path / "profile.xsd").write_text(profile)
    problems = RestrictionChecker(
        str(tmp_path / "profile.xsd"), str(tmp_path / "official.xsd")
    ).check()
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


@needs_shared
def test_the_committed_profiles_are_what_the_generator_writes() -> None:
    # schemas/profiles.toml + the official schemas -> schemas/<dialect>/<id>.xsd; a hand edit
    # of a generated profile, or a description change not generated, fails here.
    done = subprocess.run(
        [sys.executable, str(SAMPLES.parent / "scripts" / "generate_profiles.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("side", SIDES)
def test_a_cbpr_element_the_old_profiles_refused_is_accepted(
    profiles: dict[str, ProfileSet], side: str
) -> None:
    # Structured addresses, payment type, instructed amount, intermediaries, ultimate parties.
    data = sample(side, "pacs.008.001.08")
    rich = data.replace(
        b"<ChrgBr>",
        b'<InstdAmt Ccy="EUR">160000.00</InstdAmt><XchgRate>7.8125</XchgRate><ChrgBr>',
        1,
    )
    assert rich != data
    profiles[side].validate(read_message(rich))


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("family", ["camt.052", "camt.054"])
def test_every_cbpr_report_and_notification_example_is_valid_in_the_profile(
    side: str, family: str
) -> None:
    """Market-practice scope: the CBPR+ corpus's camt.052 and camt.054 examples (minimal and
    maximal, both years) are valid in both dialects' profiles."""
    from lxml import etree

    examples = Path(str(resources.files("cbpr_rules").joinpath("examples")))
    msg_def = {"camt.052": "camt.052.001.08", "camt.054": "camt.054.001.08"}[family]
    schema = etree.XMLSchema(etree.parse(str(SAMPLES.parent / "schemas" / side / f"{msg_def}.xsd")))
    found = sorted(examples.rglob(f"{family}*.xml"))
    assert len(found) == 4
    for path in found:
        document = next(etree.parse(str(path)).getroot().iter("{*}Document"))
        assert schema.validate(etree.ElementTree(document)), (path, schema.error_log.last_error)
