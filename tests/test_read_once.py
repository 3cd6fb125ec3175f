"""Each record is read once: one parse, one validation and one signature check per inbound
record, for every registered type, from its reading (gateway/reading.py) to every decision
made on it (gateway/decisions.py): a translation, an answer correlated at decision time, a
clash refused DU01, a second cancellation request refused PDCR, a payment refused for its
payer's cap after its batch.

Counted where the work is done: lxml's parser on the record's bytes, the profile's
validation of the message read from them, the signature check of the tree parsed from them.
Signatures are required, so every record is checked."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

import gateway.signatures
from gateway.config import SettlementSection
from gateway.decisions import Decider, Prepared
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import BusinessMessage
from gateway.messages.registry import BY_DEF
from gateway.reading import read_records
from gateway.sides import Side
from gateway.translation import Translator
from tests.conftest import SAMPLES
from tests.harness import Record, with_caps
from tests.signing import Identity, directory_with, identity, signed, signing_config

HEAD_NS = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
# A participant sending one of these is refused (AG01).
GATEWAY_SENDS = tuple(t.msg_def for t in BY_DEF.values() if t.issued_by_gateway)
INSTRUCTIONS = ("pacs.008.001.08", "pacs.009.001.08", "sese.023.001.09")


def sender(data: bytes) -> str:
    root = etree.fromstring(data)
    bic = root.find(f"{{{HEAD_NS}}}AppHdr/{{{HEAD_NS}}}Fr/{{{HEAD_NS}}}FIId//{{{HEAD_NS}}}BICFI")
    assert bic is not None and bic.text
    return bic.text.strip()


def traffic() -> list[tuple[Side, bytes]]:
    """Every sample from both sides, instructions first (so that answers find their
    originals), each as its sender would send it; a participant in the gateway's place on the
    types only the gateway issues."""
    out: list[tuple[Side, bytes]] = []
    sides: tuple[Side, ...] = ("onshore", "offshore")
    order = sorted(BY_DEF, key=lambda d: (d not in INSTRUCTIONS, d))
    for msg_def in order:
        for side in sides:
            path = SAMPLES / side / f"{msg_def}.xml"
            data = path.read_bytes()
            if msg_def in GATEWAY_SENDS:
                data = data.replace(b"SHHKCNSHGWY", b"HPCBCNSHXXX", 1)
            out.append((side, data))
    return out


@dataclasses.dataclass
class Counts:
    parses: collections.Counter[bytes] = dataclasses.field(default_factory=collections.Counter)
    validations: collections.Counter[bytes] = dataclasses.field(default_factory=collections.Counter)
    checks: collections.Counter[bytes] = dataclasses.field(default_factory=collections.Counter)
    roots: dict[int, tuple[etree._Element, bytes]] = dataclasses.field(default_factory=dict)


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    c = Counts()
    parse, validate, check = etree.fromstring, ProfileSet.validate, gateway.signatures.verify

    def counted_parse(text: Any, *args: Any, **kwargs: Any) -> etree._Element:
        root = parse(text, *args, **kwargs)
        if isinstance(text, bytes):
            c.parses[text] += 1
            c.roots[id(root)] = (root, text)  # kept alive: its id stays its own
        return root

    def counted_validate(self: ProfileSet, msg: BusinessMessage) -> None:
        c.validations[msg.raw] += 1
        validate(self, msg)

    def counted_check(root: etree._Element, *args: Any) -> object:
        c.checks[c.roots[id(root)][1]] += 1
        return check(root, *args)

    monkeypatch.setattr(etree, "fromstring", counted_parse)
    monkeypatch.setattr(ProfileSet, "validate", counted_validate)
    monkeypatch.setattr(gateway.signatures, "verify", counted_check)
    return c


def test_every_record_is_parsed_validated_and_its_signature_checked_once(
    tmp_path: Path, counts: Counts
) -> None:
    plain = traffic()
    bics = {sender(d) for _, d in plain} | {"JADBCNBJXXX"}
    people: dict[str, Identity] = {bic: identity(bic) for bic in bics}
    directory = directory_with(tmp_path, {bic: [who] for bic, who in people.items()})
    # JADBCNBJXXX's cap refuses its payments (cap policy "reject"): refused after the batch.
    directory.write_text(with_caps(directory.read_text(), {"JADBCNBJXXX": "0.01"}))
    config = signing_config(tmp_path, directory, identity("SHHKCNSHGWY"))
    config = dataclasses.replace(
        config, settlement=dataclasses.replace(SettlementSection(), cap_policy="reject")
    )
    translator = Translator(config)

    records = [(side, signed(data, people[sender(data)])) for side, data in plain]
    # A payment of JADBCNBJXXX's (refused for its cap), a different message reusing a
    # payment's id (DU01) and a second cancellation request for the same payment (PDCR).
    payment = next(d for s, d in plain if s == "onshore" and b"pacs.008" in d[:2000])
    over_cap = (
        payment.replace(b"HPCBCNSHXXX", b"JADBCNBJXXX")
        .replace(b"313290012345", b"313100054321")
        .replace(b"0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01", b"5d0c1a7e-2b6f-4e8a-9c3d-7f1e2a4b6c80")
        .replace(b"ON-BIZ-P8-0001", b"ON-BIZ-P8-0002")
        .replace(b"ON-MSG-P8-0001", b"ON-MSG-P8-0002")
    )
    records.append(("onshore", signed(over_cap, people["JADBCNBJXXX"])))
    reused = payment.replace(b">1250000.00<", b">1250000.01<", 1)
    records.append(("onshore", signed(reused, people[sender(reused)])))
    request = next(d for s, d in plain if s == "onshore" and b"camt.056" in d[:2000])
    second = request.replace(b"ON-CXL-ASG-0001", b"ON-CXL-ASG-0002").replace(
        b"ON-BIZ-C56-0001", b"ON-BIZ-C56-0002"
    )
    records.append(("onshore", signed(second, people[sender(second)])))
    assert len({data for _, data in records}) == len(records)

    batch = [
        Prepared(Record(f"{side}.inbound", 0, n, data), side)
        for n, (side, data) in enumerate(records)
    ]
    readings = read_records(translator, [(data, side) for side, data in records])
    for p, reading in zip(batch, readings, strict=True):
        p.reading = reading
    # The payments as if committed in an earlier batch: what their answers correlate with.
    known = [r.outcome.correlation for r in readings if r.outcome and r.outcome.correlation]
    decider = Decider(config, translator)
    decided = decider.decide_batch(batch, {}, known, [], wall=0.0)
    refusals = [
        decider.cap_reject(e.source, e.value, "JADBCNBJXXX")
        for e in decided
        if e is not None and e.cap is not None and e.value
    ]

    outcomes = {str(e.reason or e.outcome) for e in decided if e is not None}
    assert {"DU01", "PDCR", "AG01", "translated"} <= outcomes, outcomes
    assert refusals and all(b"AM04" in rows[0].value for rows in refusals)
    read = {r.msg_def for r in readings if r.msg_def}
    assert read == set(BY_DEF), set(BY_DEF) - read  # every registered type was read
    for _, data in records:
        assert counts.parses[data] == 1, (sender(data), counts.parses[data])
        assert counts.validations[data] == 1, (sender(data), counts.validations[data])
        assert counts.checks[data] == 1, (sender(data), counts.checks[data])
