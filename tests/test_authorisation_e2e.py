"""The trust boundary over Kafka, both stores, signatures required: the attacks that were
found, each refused with no effect, beside a genuine payment that goes through once.

- HPCB signs a payment whose instructing agent is JADB's CNAPS member id (no BIC): DS19.
- The genuine payment sent again with a comment inside its UETR and BizMsgIdr (the signature
  still verifies): the same message, so no second obligation and nothing published again.
- KLBK, a third party, signs a pacs.002 RJCT for HPCB's payment to VHBK: DS19, not voided.
- KLBK signs a return in VHBK's name (InstgAgt by member id 391): DS19, nothing booked.
- JADB asks to cancel HPCB's payment, naming itself by member id: AG01.
Each refusal is answered to its sender and copied to the DLQ; the one obligation stays open.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.config import StateSection
from tests.conftest import SAMPLES
from tests.harness import gateway_config, running_gateway
from tests.signing import directory_with, identity, signed, signing_config

pytestmark = pytest.mark.kafka

PAYMENT = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()
UETR = "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"


def _edited(data: bytes, *edits: tuple[bytes, bytes]) -> bytes:
    for old, new in edits:
        assert old in data, old
        data = data.replace(old, new)
    return data


def _member_only(data: bytes, element: str, system: str, member: str) -> bytes:
    """The first `element` (an agent) named by a member id alone."""
    root = etree.fromstring(data)
    (fin,) = root.xpath(f"//*[local-name()='{element}']//*[local-name()='FinInstnId']")[:1]
    ns = etree.QName(fin).namespace
    for child in list(fin):
        fin.remove(child)
    mmb = etree.SubElement(fin, f"{{{ns}}}ClrSysMmbId")
    etree.SubElement(etree.SubElement(mmb, f"{{{ns}}}ClrSysId"), f"{{{ns}}}Cd").text = system
    etree.SubElement(mmb, f"{{{ns}}}MmbId").text = member
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def reasons(records: list[Any]) -> list[str]:
    """The reject reasons among `records` (translations have none)."""
    found = (dict(r.headers).get("reject-reason") for r in records)
    return sorted(reason.decode() for reason in found if reason is not None)


def _sent_by(data: bytes, bic: bytes, biz: bytes) -> bytes:
    """AppHdr Fr and BizMsgIdr replaced (the first BICFI of the file is Fr's)."""
    fr = data.index(b"<BICFI>") + len(b"<BICFI>")
    data = data[:fr] + bic + data[data.index(b"</BICFI>", fr) :]
    start = data.index(b"<BizMsgIdr>") + len(b"<BizMsgIdr>")
    return data[:start] + biz + data[data.index(b"</BizMsgIdr>", start) :]


async def test_no_one_acts_in_anothers_name_and_a_respelled_payment_books_nothing(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path
) -> None:
    people = {
        bic: identity(bic) for bic in ("HPCBCNSHXXX", "JADBCNBJXXX", "VHBKHKHHXXX", "KLBKHKHHXXX")
    }
    directory = directory_with(tmp_path, {bic: [who] for bic, who in people.items()})
    base = signing_config(tmp_path, directory, identity("SHHKCNSHGWY"))
    genuine = signed(PAYMENT, people["HPCBCNSHXXX"])
    respelled = _edited(
        genuine,
        (b"0b7c3f2e-6d1a", b"0b7c3f2e-<!---->6d1a"),
        (b"<BizMsgIdr>ON-BIZ-P8-0001", b"<BizMsgIdr>ON-BIZ-<!---->P8-0001"),
    )
    in_jadbs_name = signed(
        _member_only(
            _edited(
                PAYMENT,
                (UETR.encode(), b"5d1e8c2a-9b7f-4e3d-8a6c-1f2e3d4c5b6a"),
                (b"ON-BIZ-P8-0001", b"ON-BIZ-P8-0666"),
                (b"ON-MSG-P8-0001", b"ON-MSG-P8-0666"),
            ),
            "InstgAgt",
            "CNAPS",
            "313100054321",
        ),
        people["HPCBCNSHXXX"],
    )
    status = (SAMPLES / "offshore" / "pacs.002.001.10.xml").read_bytes()
    third_party_reject = signed(
        _sent_by(_edited(status, (b"<TxSts>ACSC", b"<TxSts>RJCT")), b"KLBKHKHHXXX", b"KL-1"),
        people["KLBKHKHHXXX"],
    )
    ret = (SAMPLES / "offshore" / "pacs.004.001.09.xml").read_bytes()
    return_in_vhbks_name = signed(
        _member_only(_sent_by(ret, b"KLBKHKHHXXX", b"KL-2"), "InstgAgt", "HKNCC", "391"),
        people["KLBKHKHHXXX"],
    )
    request = (SAMPLES / "onshore" / "camt.056.001.08.xml").read_bytes()
    cancel_for_another = signed(
        _member_only(_sent_by(request, b"JADBCNBJXXX", b"JA-1"), "Assgnr", "CNAPS", "313100054321"),
        people["JADBCNBJXXX"],
    )

    config = gateway_config(f"a{uuid.uuid4().hex[:10]}", state, base=base)
    async with running_gateway(config, kafka_bootstrap) as gateway:
        await gateway.publish("onshore", genuine, in_jadbs_name)
        translated = await gateway.read(config.offshore.outbound_topic, 1)
        await gateway.publish("onshore", respelled, cancel_for_another)
        await gateway.publish("offshore", third_party_reject, return_in_vhbks_name)
        onshore = await gateway.read(config.onshore.outbound_topic, 2)
        offshore = await gateway.read(config.offshore.outbound_topic, 3)
        dead = await gateway.read(config.kafka.dlq_topic, 4)
        obligations = await gateway.store.obligations()

    assert reasons(onshore) == ["AG01", "DS19"]  # the cancellation, the payment in JADB's name
    assert reasons(offshore) == ["DS19", "DS19"]  # the third party's status and return
    assert len(dead) == 4
    # The genuine payment once: the respelled copy is the same message; nothing was voided.
    assert len(translated) == 1 and len(offshore) == 3
    assert [(o.payer, o.payee, o.reference, s) for o, s in obligations] == [
        ("HPCBCNSHXXX", "VHBKHKHHXXX", UETR, "open")
    ]
