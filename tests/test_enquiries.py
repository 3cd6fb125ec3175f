"""Payment status enquiries (pacs.028) end to end over a real broker, on both stores: who may
ask, what the gateway answers from what it knows, and when it forwards the enquiry to the
receiver instead (docs/domain.md, "Status enquiries"). Every output is checked against its
side's profile and the official schemas."""

from __future__ import annotations

import uuid

import pytest

from gateway.config import StateSection
from gateway.correlations import PaymentFacts
from gateway.flows.enquiries import answer_for
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from tests.conformance import checked_output as checked
from tests.harness import gateway_config, running_gateway, sample

UETR = "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"  # the onshore sample payment's (HPCB -> VHBK)


def enquiry(n: int, side: str = "onshore", sender: str | None = None) -> bytes:
    """The side's sample enquiry with its own ids (n); offshore: by the receiver, VHBK, about
    the onshore payment; `sender`: another participant of the side in its place."""
    data = sample(side, "pacs.028.001.03").replace(b"-0001<", f"-{n:04d}<".encode())
    if side == "offshore":
        data = data.replace(b"5e9d2a7b-3c84-4f1e-a6b2-8d0c4e7f1a22", UETR.encode())
    if sender is not None:
        data = data.replace(b"HPCBCNSHXXX", sender.encode()).replace(
            b"313290012345", b"313100054321"
        )
    return data


@pytest.mark.kafka
async def test_who_may_ask_what_the_gateway_answers_and_when_it_forwards(
    kafka_bootstrap: str, state: StateSection, profiles: dict[str, ProfileSet]
) -> None:
    config = gateway_config(f"q{uuid.uuid4().hex[:10]}", state)
    status = "FIToFIPmtStsRpt/TxInfAndSts/"
    async with running_gateway(config, kafka_bootstrap) as gw:
        await gw.publish("onshore", sample("onshore", "pacs.008.001.08"))
        (payment,) = await gw.read(config.offshore.outbound_topic, 1)
        forwarded_id = read_message(payment.value).doc_text("FIToFICstmrCdtTrf/GrpHdr/MsgId")

        # The payer asks; the receiver has said nothing yet: the status is the receiver's to
        # give, and the enquiry goes to it, naming the payment as the receiver knows it.
        await gw.publish("onshore", enquiry(1))
        out = await gw.read(config.offshore.outbound_topic, 2)
        asked = checked(out[1], "offshore", profiles)
        assert asked.msg_def == "pacs.028.001.03"
        assert asked.header_text("To/FIId/FinInstnId/BICFI") == "VHBKHKHHXXX"
        assert asked.doc_text("FIToFIPmtStsReq/TxInf/OrgnlGrpInf/OrgnlMsgId") == forwarded_id
        assert asked.doc_text("FIToFIPmtStsReq/TxInf/OrgnlUETR") == UETR

        # The receiver answers (ACSC), back to the payer as any status.
        await gw.publish("offshore", sample("offshore", "pacs.002.001.10"))
        assert len(await gw.read(config.onshore.outbound_topic, 1)) == 1

        # Asked again, the gateway answers itself, as the payer knows the payment.
        await gw.publish("onshore", enquiry(2))
        back = await gw.read(config.onshore.outbound_topic, 2)
        answer = checked(back[1], "onshore", profiles)
        assert dict(back[1].headers)["message-type"] == b"pacs.002.001.10"
        assert dict(back[1].headers)["input-type"] == b"pacs.028.001.03"
        assert answer.header_text("To/FIId/FinInstnId/BICFI") == "HPCBCNSHXXX"
        assert answer.doc_text(status + "TxSts") == "ACSC"
        assert answer.doc_text(status + "OrgnlUETR") == UETR
        assert answer.doc_text(status + "OrgnlGrpInf/OrgnlMsgId") == "ON-MSG-P8-0001"
        assert "as its receiver reported" in (answer.doc_text(status + "StsRsnInf/AddtlInf") or "")

        # The receiver may ask too, from its side: told as it knows the payment.
        await gw.publish("offshore", enquiry(3, "offshore"))
        out = await gw.read(config.offshore.outbound_topic, 3)
        told = checked(out[2], "offshore", profiles)
        assert told.msg_def == "pacs.002.001.10"
        assert told.header_text("To/FIId/FinInstnId/BICFI") == "VHBKHKHHXXX"
        assert told.doc_text(status + "OrgnlGrpInf/OrgnlMsgId") == forwarded_id
        assert told.doc_text(status + "TxSts") == "ACSC"

        # Anyone else is refused, with no effect: another participant of the payer's side.
        await gw.publish("onshore", enquiry(4, sender="JADBCNBJXXX"))
        back = await gw.read(config.onshore.outbound_topic, 3)
        assert dict(back[2].headers)["reject-reason"] == b"AG01"
        refusal = checked(back[2], "onshore", profiles)
        group = "FIToFIPmtStsRpt/OrgnlGrpInfAndSts/"
        assert refusal.doc_text(group + "GrpSts") == "RJCT"
        assert refusal.doc_text(group + "OrgnlMsgNmId") == "pacs.028.001.03"
        dlq = await gw.read(config.kafka.dlq_topic, 1)
        assert b"JADBCNBJXXX" in dlq[0].value

        # Its cycle closed and instructed: being settled.
        assert gw.cycles is not None and await gw.cycles.close_now("CNY") == "CNY-000001"
        await gw.publish("onshore", enquiry(5))
        back = await gw.read(config.onshore.outbound_topic, 5)  # and the payer's camt.053
        answers = [r for r in back if dict(r.headers).get("idempotency-key", b"").endswith(b"5")]
        settling = checked(answers[-1], "onshore", profiles)
        assert settling.doc_text(status + "TxSts") == "ACSP"
        assert "CNY-000001" in (settling.doc_text(status + "StsRsnInf/AddtlInf") or "")

        # About a payment the gateway never saw: it waits on the retry topics (it may have
        # overtaken its payment), then is refused, and dead-lettered.
        unknown = enquiry(6).replace(UETR.encode(), str(uuid.uuid4()).encode())
        await gw.publish("onshore", unknown)
        dlq = await gw.read(config.kafka.dlq_topic, 2)
        (dead,) = [r for r in dlq if r.value == unknown]
        assert dict(dead.headers)["error-kind"] == b"uncorrelated"
        back = await gw.read(config.onshore.outbound_topic, 6)
        (refused,) = [r for r in back if dict(r.headers)["idempotency-key"].endswith(b"0006")]
        assert dict(refused.headers)["reject-reason"] == b"NARR"
        checked(refused, "onshore", profiles)


@pytest.mark.parametrize(
    ("facts", "held", "told"),
    [
        (PaymentFacts(UETR, held="queued"), True, "PDNG"),
        (PaymentFacts(UETR, held="refused"), False, "RJCT"),
        (PaymentFacts(UETR, held="cancelled"), False, "CANC"),
        (PaymentFacts(UETR, returned=True, statuses=("ACSC",), cycle="C"), False, "ACSC"),
        (PaymentFacts(UETR, resolutions=("CNCL",), obligation="void"), False, "CANC"),
        (PaymentFacts(UETR, statuses=("RJCT",), obligation="void"), False, "RJCT"),
        (PaymentFacts(UETR, cycle="C", cycle_status="settled"), False, "ACSC"),
        (PaymentFacts(UETR, cycle="C", cycle_status="instructed"), False, "ACSP"),
        (PaymentFacts(UETR, cycle="C", cycle_status="failed"), False, "PDNG"),
        (
            PaymentFacts(UETR, statuses=("ACSP", "ACCC"), cycle="C", cycle_status="open"),
            False,
            "ACCC",
        ),
        (PaymentFacts(UETR, cycle="C", cycle_status="open"), False, None),
    ],
)
def test_what_the_gateway_tells_of_a_payment(
    facts: PaymentFacts, held: bool, told: str | None
) -> None:
    known = answer_for(facts, held)
    assert (known.status if known else None) == told
    if known is not None:
        assert len(known.info) <= 105  # it fits AddtlInf whole
        assert known.reason in (None, "AM04")
