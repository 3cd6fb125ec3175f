"""Cancellations end to end over a real broker, on both stores: a participant's camt.056 for a
payment it instructed, the other side's camt.029, and the gateway's own camt.029 answers.

Every output is checked against its side's profile and the official schemas.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.config import Config, MqttSection, StateSection
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from gateway.sides import Side
from tests.conformance import assert_officially_valid
from tests.conftest import ROOT
from tests.harness import (
    as_capped_out,
    capped_directory,
    gateway_config,
    http_get,
    running_gateway,
    sample,
)
from tests.ops_io import Listener, scrape
from tests.servers import Mosquitto

pytestmark = pytest.mark.kafka

UETR = "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"  # the onshore samples' payment


def _variant(msg: bytes, n: int, uetr: str = UETR, amount: str = "1250000.00") -> bytes:
    """A sample with its own ids (suffix n), UETR and amount."""
    return (
        msg.replace(b"-0001<", f"-{n:04d}<".encode())
        .replace(UETR.encode(), uetr.encode())
        .replace(b">1250000.00<", f">{amount}<".encode())
    )


def _checked(records: list[Any], side: Side, profiles: dict[str, ProfileSet]) -> list[Any]:
    """Each record valid in `side`'s profile and against the official schemas."""
    for r in records:
        profiles[side].validate(read_message(r.value))
    assert_officially_valid(*(r.value for r in records))
    return [read_message(r.value) for r in records]


def _resolution(msg: Any) -> tuple[str | None, str | None]:
    """(Sts/Conf, reason code or proprietary) of a camt.029."""
    assert msg.msg_def == "camt.029.001.09"
    tx = "RsltnOfInvstgtn/CxlDtls/TxInfAndSts/CxlStsRsnInf/Rsn"
    reason = msg.doc_text(f"{tx}/Cd") or msg.doc_text(f"{tx}/Prtry")
    return msg.doc_text("RsltnOfInvstgtn/Sts/Conf"), reason


def _of(records: list[Any], msg_def: str) -> list[Any]:
    """The records of one type (the topics have several partitions: no order across them)."""
    return [r for r in records if dict(r.headers)["message-type"] == msg_def.encode()]


def _statuses(obligations: list[Any]) -> dict[str, str]:
    return {o.reference: status for o, status in obligations}


async def test_a_forwarded_payment_is_cancelled_across_and_refusals_are_answered(
    kafka_bootstrap: str, state: StateSection, profiles: dict[str, ProfileSet]
) -> None:
    config = gateway_config(f"t{uuid.uuid4().hex[:10]}", state)
    request = sample("onshore", "camt.056.001.08")
    async with running_gateway(config, kafka_bootstrap) as gw:
        on_out, off_out = config.onshore.outbound_topic, config.offshore.outbound_topic
        await gw.publish("onshore", sample("onshore", "pacs.008.001.08"))
        assert len(await gw.read(off_out, 1)) == 1
        # The payer's request crosses over, naming the payment by the ids the gateway gave it.
        await gw.publish("onshore", request)
        out = await gw.read(off_out, 2)
        [forwarded] = _checked(_of(out, "camt.056.001.08"), "offshore", profiles)
        payment = read_message(_of(out, "pacs.008.001.08")[0].value)
        tx = "FIToFIPmtCxlReq/Undrlyg/TxInf"
        assert forwarded.doc_text(f"{tx}/OrgnlGrpInf/OrgnlMsgId") == payment.doc_text(
            "FIToFICstmrCdtTrf/GrpHdr/MsgId"
        )
        assert forwarded.doc_text(f"{tx}/OrgnlUETR") == UETR
        assert forwarded.doc_text(f"{tx}/CxlRsnInf/Rsn/Cd") == "DUPL"

        # Refused, never forwarded: a participant that did not instruct the payment, and a
        # request from the other side, each answered RJCR AG01 to its sender (not PDCR,
        # although a request for the payment is pending).
        other_bank = as_capped_out(_variant(request, 2))
        wrong_side = sample("offshore", "camt.056.001.08").replace(
            b"5e9d2a7b-3c84-4f1e-a6b2-8d0c4e7f1a22", UETR.encode()
        )
        await gw.publish("onshore", other_bank)
        await gw.publish("offshore", wrong_side)
        refused = _checked(await gw.read(on_out, 1), "onshore", profiles)
        assert _resolution(refused[0]) == ("RJCR", "AG01")
        out = await gw.read(off_out, 3)
        refused = _checked(_of(out, "camt.029.001.09"), "offshore", profiles)
        assert [_resolution(m) for m in refused] == [("RJCR", "AG01")]
        # The payer's second request while the first is being resolved: PDCR, not forwarded.
        await gw.publish("onshore", _variant(request, 3))
        answers = _checked(_of(await gw.read(on_out, 2), "camt.029.001.09"), "onshore", profiles)
        assert sorted(_resolution(m) for m in answers) == [("PDCR", None), ("RJCR", "AG01")]

        # The receiver cancels: its camt.029 goes back to the payer, naming the payment as the
        # payer knows it, and the obligation is void (its cycle is still open).
        await gw.publish("offshore", sample("offshore", "camt.029.001.09"))
        answers = _checked(_of(await gw.read(on_out, 3), "camt.029.001.09"), "onshore", profiles)
        [back] = [m for m in answers if _resolution(m) == ("CNCL", None)]
        assert (
            back.doc_text("RsltnOfInvstgtn/CxlDtls/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId")
            == "ON-MSG-P8-0001"
        )
        assert _statuses(await gw.store.obligations()) == {UETR: "void"}
        assert await gw.store.positions("CNY-000001") in ({}, {"HPCBCNSHXXX": 0, "VHBKHKHHXXX": 0})
        # Another request once it is resolved: answered with that resolution, again.
        await gw.publish("onshore", _variant(request, 6))
        again = _of(await gw.read(on_out, 4), "camt.029.001.09")
        assert [r.value for r in again].count(
            next(r.value for r in again if b"<Conf>CNCL</Conf>" in r.value)
        ) == 2

        # A request for a payment never received: retried, then RJCR NOOR. A resolution of a
        # request never sent: retried, then admi.002, as any uncorrelated answer.
        unknown = str(uuid.uuid4())
        await gw.publish("onshore", _variant(request, 4, uetr=unknown))
        await gw.publish(
            "offshore", _variant(sample("offshore", "camt.029.001.09"), 5, uetr=unknown)
        )
        answers = _checked(_of(await gw.read(on_out, 5), "camt.029.001.09"), "onshore", profiles)
        assert ("RJCR", "NOOR") in [_resolution(m) for m in answers]
        assert len(_of(await gw.read(off_out, 4), "admi.002.001.01")) == 1
        # Dead letters: the refused requests (AG01 twice, PDCR, NOOR) and the uncorrelated
        # resolution; the accepted request and resolution, and the one answered again, are
        # not among them.
        dead = await gw.read(config.kafka.dlq_topic, 5)
        kinds = sorted(dict(r.headers)["message-type"] for r in dead)
        assert kinds == [b"camt.029.001.09"] + [b"camt.056.001.08"] * 4

        # The cycle's report shows the cancelled payment: voided, not netted.
        assert gw.cycles is not None
        assert await gw.cycles.close_now("CNY") == "CNY-000001"
        (closed, _) = await gw.store.cycles("CNY")
        report = json.loads(closed.summary or "{}")
        assert report["voided"] == {"obligations": 1, "gross": "1250000.00"}
        assert report["obligations"] == 0 and report["gross"] == "0.00"


def _capped_config(state: StateSection, tmp: Path, cap: str) -> Config:
    """JADBCNBJXXX's net debit cap set to `cap` (policy queue)."""
    directory = capped_directory(tmp, {"JADBCNBJXXX": cap})
    base = Config()
    base = dataclasses.replace(
        base, translation=dataclasses.replace(base.translation, directory=directory)
    )
    return gateway_config(f"t{uuid.uuid4().hex[:10]}", state, base=base)


@pytest.mark.mqtt
async def test_a_held_payment_is_cancelled_by_the_gateway_and_those_behind_it_move_up(
    kafka_bootstrap: str,
    state: StateSection,
    tmp_path: Path,
    profiles: dict[str, ProfileSet],
    mosquitto: Mosquitto,
) -> None:
    """Cap 15.00: payment 1 (10.00) is booked; 2 (10.00) would exceed the cap and is held; 3
    (3.00) waits behind it. The payer cancels 2: the gateway answers CNCL itself, nothing goes
    to the other side for it, and 3 now fits: it is released and forwarded. The outcome is an
    MQTT event and a metric."""
    prefix = f"cgw/{uuid.uuid4().hex[:8]}"
    config = dataclasses.replace(
        _capped_config(state, tmp_path, "15.00"),
        mqtt=MqttSection(mosquitto.host, mosquitto.port, f"gw-{prefix[4:]}", prefix=prefix),
    )
    uetrs = [str(uuid.uuid4()) for _ in range(3)]
    payment = as_capped_out(sample("onshore", "pacs.008.001.08"))
    payments = [
        _variant(payment, n + 1, uetrs[n], amount)
        for n, amount in enumerate(["10.00", "10.00", "3.00"])
    ]
    async with (
        Listener(mosquitto, prefix, "dashboard") as seen,
        running_gateway(config, kafka_bootstrap, operated=True) as gw,
    ):
        on_out, off_out = config.onshore.outbound_topic, config.offshore.outbound_topic
        await gw.publish("onshore", *payments, key=b"jadb")
        assert len(await gw.read(off_out, 1)) == 1
        for _ in range(300):  # 2 and 3 are held (maybe in a batch after 1's)
            if len(await gw.store.held()) == 2:
                break
            await asyncio.sleep(0.1)
        assert [h.status for h in await gw.store.held()] == ["queued", "queued"]
        request = _variant(
            as_capped_out(sample("onshore", "camt.056.001.08")), 2, uetrs[1], "10.00"
        )
        await gw.publish("onshore", request, key=b"jadb")
        [answer] = _checked(await gw.read(on_out, 1), "onshore", profiles)
        assert _resolution(answer) == ("CNCL", None)
        assert answer.doc_text("RsltnOfInvstgtn/CxlDtls/TxInfAndSts/OrgnlUETR") == uetrs[1]
        out = _checked(await gw.read(off_out, 2), "offshore", profiles)
        assert [m.msg_def for m in out] == ["pacs.008.001.08"] * 2  # 3, released; no camt.056
        assert out[1].doc_text("FIToFICstmrCdtTrf/CdtTrfTxInf/PmtId/UETR") == uetrs[2]
        assert [h.status for h in await gw.store.held()] == ["cancelled", "released"]
        assert _statuses(await gw.store.obligations()) == {uetrs[0]: "open", uetrs[2]: "open"}
        # Another request for it: the gateway's CNCL again, byte for byte.
        second = as_capped_out(sample("onshore", "camt.056.001.08"))
        await gw.publish("onshore", _variant(second, 7, uetrs[1], "10.00"), key=b"jadb")
        again = await gw.read(on_out, 2)
        assert len(again) == 2 and again[0].value == again[1].value
        # The other side cannot resolve a request it never got: refused after the retries.
        resolution = _variant(sample("offshore", "camt.029.001.09"), 2, uetrs[1])
        await gw.publish("offshore", as_capped_out(resolution))
        assert len(_of(await gw.read(off_out, 3), "admi.002.001.01")) == 1
        assert len(await gw.read(on_out, 2, settle=1.0)) == 2  # nothing more to the payer

        event = await seen.wait_for(f"{prefix}/message/onshore", status="cancelled")
        assert event["message_type"] == "camt.056.001.08" and event["reason"] is None
        assert gw.ops is not None
        _, body = await http_get(gw.ops.http_port, "/metrics")
        on = (("outcome", "cancelled"), ("side", "onshore"))
        assert scrape(body)[("connect_gateway_messages_processed_total", on)] == 1
    schema = json.loads(
        (ROOT / "docs" / "events.md").read_text().split("```json\n")[1].split("```")[0]
    )
    for _, payload, _ in seen.got:
        jsonschema.validate(payload, schema)


async def test_a_cancellation_accepted_once_netted_waits_for_the_return(
    kafka_bootstrap: str, state: StateSection, profiles: dict[str, ProfileSet]
) -> None:
    """Accepted after its cycle was frozen, a cancellation changes nothing: the payment stays
    netted, and the pacs.004 that follows reverses it in the open cycle, once."""
    config = gateway_config(f"t{uuid.uuid4().hex[:10]}", state)
    async with running_gateway(config, kafka_bootstrap) as gw:
        on_out, off_out = config.onshore.outbound_topic, config.offshore.outbound_topic
        await gw.publish("onshore", sample("onshore", "pacs.008.001.08"))
        await gw.publish("onshore", sample("onshore", "camt.056.001.08"))
        assert len(await gw.read(off_out, 2)) == 2
        assert gw.cycles is not None
        assert await gw.cycles.close_now("CNY") == "CNY-000001"
        await gw.publish("offshore", sample("offshore", "camt.029.001.09"))
        out = await gw.read(on_out, 2)  # and the payer's camt.053 for the closed cycle
        [back] = _checked(_of(out, "camt.029.001.09"), "onshore", profiles)
        assert _resolution(back) == ("CNCL", None)
        assert _statuses(await gw.store.obligations()) == {UETR: "open"}
        await gw.publish("offshore", sample("offshore", "pacs.004.001.09"))
        assert len(_of(await gw.read(on_out, 3), "pacs.004.001.09")) == 1
        obligations = await gw.store.obligations()
        assert _statuses(obligations) == {UETR: "open", f"return:{UETR}": "open"}
        assert await gw.store.positions("CNY-000002") == {
            "HPCBCNSHXXX": 125000000,
            "VHBKHKHHXXX": -125000000,
        }


async def test_a_refused_cancellation_goes_back_and_changes_nothing(
    kafka_bootstrap: str, state: StateSection, profiles: dict[str, ProfileSet]
) -> None:
    """Offshore asks; onshore refuses (RJCR, with its reason): the refusal is carried back to
    the offshore payer, and the payment stays booked."""
    config = gateway_config(f"t{uuid.uuid4().hex[:10]}", state)
    offshore_uetr = "5e9d2a7b-3c84-4f1e-a6b2-8d0c4e7f1a22"  # the offshore samples' payment
    refusal = (
        sample("onshore", "camt.029.001.09")
        .replace(b"<Conf>CNCL</Conf>", b"<Conf>RJCR</Conf>")
        .replace(
            b"<TxCxlSts>ACCR</TxCxlSts>",
            (
                "<TxCxlSts>RJCR</TxCxlSts><CxlStsRsnInf><Rsn><Cd>CUST</Cd></Rsn>"
                "<AddtlInf>收款人拒绝 beneficiary declines</AddtlInf></CxlStsRsnInf>"
            ).encode(),
        )
    )
    async with running_gateway(config, kafka_bootstrap) as gw:
        on_out, off_out = config.onshore.outbound_topic, config.offshore.outbound_topic
        await gw.publish("offshore", sample("offshore", "pacs.008.001.08"))
        await gw.publish("offshore", sample("offshore", "camt.056.001.08"))
        assert len(_of(await gw.read(on_out, 2), "camt.056.001.08")) == 1
        await gw.publish("onshore", refusal)
        [back] = _checked(_of(await gw.read(off_out, 1), "camt.029.001.09"), "offshore", profiles)
        assert _resolution(back) == ("RJCR", "CUST")
        assert (
            back.doc_text("RsltnOfInvstgtn/CxlDtls/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId")
            == "OFF-MSG-P8-0001"
        )
        assert _statuses(await gw.store.obligations()) == {offshore_uetr: "open"}
