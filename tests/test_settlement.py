"""Net settlement cycles end to end over a real broker, once per state store.

Partners publish payments with a plain Kafka client; the gateway books them into the open
cycle; the injected clock passes the cut-off; the pacs.029 appears on the RTGS side's outbound
topic (officially valid), the reports on the reports topic (matching the obligations); the
RTGS's pacs.002 settles or fails the cycle. Caps: held payments are released in order when
credits arrive (also across a restart), or refused with a conformant pacs.002 AM04.

The cycle test runs on both stores; the cap and pacs.009 tests run end to end on SQLite only:
their store logic runs on both in tests/test_settlement_store.py (the suite has a time budget).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import UTC8
from gateway.config import Config, SettlementSection, StateSection, TranslationSection
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from gateway.messages.registry import profile_set
from gateway.state.base import CycleRecord
from gateway.topics import ensure_topics
from tests.conformance import assert_officially_valid
from tests.harness import Running, capped_directory, gateway_config, running_gateway, sample
from tests.kafka_io import publish as kafka_publish

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]
# Onshore: (BIC, CNAPS code); offshore: (BIC, HKNCC code). The samples pay HPCB -> VHBK.
CODES = {
    "HPCBCNSHXXX": ("313290012345", "901"),
    "JADBCNBJXXX": ("313100054321", "902"),
    "VHBKHKHHXXX": ("990000000391", "391"),
    "KLBKHKHHXXX": ("990000000392", "392"),
}
SIDE_OF = {"HPCBCNSHXXX": "onshore", "JADBCNBJXXX": "onshore"}


class Clock:
    """The one clock of the gateway under test, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def payment(n: int, payer: str, payee: str, amount: str) -> tuple[str, bytes]:
    """A pacs.008 from `payer`'s side to `payee`'s, with its own ids: (side, bytes)."""
    side = SIDE_OF.get(payer, "offshore")
    text = sample(side, "pacs.008.001.08").decode("utf-8")
    tag = "ON" if side == "onshore" else "OFF"
    which = 0 if side == "onshore" else 1
    first, second = (
        ("HPCBCNSHXXX", "VHBKHKHHXXX") if side == "onshore" else ("VHBKHKHHXXX", "HPCBCNSHXXX")
    )
    for old, new in ((first, payer), (second, payee)):
        text = text.replace(f">{CODES[old][which]}<", f">@{CODES[new][which]}<")
        text = text.replace(old, "@" + new)
    text = text.replace("@", "")
    uetr = str(uuid.UUID(int=n + (1 << 70), version=4))
    text = text.replace(
        "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"
        if side == "onshore"
        else "5e9d2a7b-3c84-4f1e-a6b2-8d0c4e7f1a22",
        uetr,
    )
    text = text.replace(f"{tag}-BIZ-P8-0001", f"{tag}-BIZ-S{n:06d}")
    text = text.replace(f"{tag}-MSG-P8-0001", f"{tag}-MSG-S{n:06d}")
    text = text.replace(">1250000.00<", f">{amount}<")
    return side, text.encode("utf-8")


def rtgs_answer(
    n: int,
    instruction_id: str,
    status: str,
    reason: str | None = None,
    msg_def: str = "pacs.029.001.01",
) -> bytes:
    """The RTGS's group-level pacs.002 on a settlement instruction."""
    rsn = (
        f"<StsRsnInf><Rsn><Cd>{reason}</Cd></Rsn><AddtlInf>insufficient liquidity"
        "</AddtlInf></StsRsnInf>"
        if reason
        else ""
    )
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<BizMsg xmlns="urn:connect-gateway:envelope:1">
<AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">
<Fr><FIId><FinInstnId><BICFI>HKICHKHHXXX</BICFI></FinInstnId></FIId></Fr>
<To><FIId><FinInstnId><BICFI>SHHKCNSHGWY</BICFI></FinInstnId></FIId></To>
<BizMsgIdr>RTGS-BIZ-{n:06d}</BizMsgIdr><MsgDefIdr>pacs.002.001.10</MsgDefIdr>
<BizSvc>rmbchats.connect.01</BizSvc><CreDt>2026-11-23T10:05:00+08:00</CreDt></AppHdr>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"><FIToFIPmtStsRpt>
<GrpHdr><MsgId>RTGS-STS-{n:06d}</MsgId><CreDtTm>2026-11-23T10:05:00+08:00</CreDtTm></GrpHdr>
<OrgnlGrpInfAndSts><OrgnlMsgId>{instruction_id}</OrgnlMsgId>
<OrgnlMsgNmId>{msg_def}</OrgnlMsgNmId><GrpSts>{status}</GrpSts>{rsn}
</OrgnlGrpInfAndSts></FIToFIPmtStsRpt></Document></BizMsg>""".encode()


@pytest.fixture
def sqlite_state(tmp_path: Path) -> StateSection:
    return StateSection(sqlite_path=str(tmp_path / "state.sqlite3"))


def configured(
    state: StateSection, tmp_path: Path, settlement: SettlementSection, caps: dict[str, str]
) -> Config:
    config = gateway_config(f"s{uuid.uuid4().hex[:10]}", state, settlement)
    return dataclasses.replace(
        config, translation=TranslationSection(directory=capped_directory(tmp_path, caps))
    )


async def publish(gw: Running, *payments: tuple[str, bytes]) -> None:
    """Keyed by the paying agent, as a partner keeps one payer's payments in order (one
    partition): the order the cap queue keeps is the order they were accepted in."""
    for side, value in payments:
        payer = read_message(value).doc_text(
            "FIToFICstmrCdtTrf/CdtTrfTxInf/InstgAgt/FinInstnId/BICFI"
        )
        await gw.publish(side, value, key=(payer or "").encode())


async def cycle_state(gw: Running, cycle: str, want: str, wait: float = 30) -> CycleRecord:
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        found = [c for c in await gw.store.cycles() if c.id == cycle]
        if found and found[0].status == want:
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{cycle} is {found[0].status if found else 'unknown'}")
        await asyncio.sleep(0.1)


def by_type(records: list[Any], msg_def: str) -> list[Any]:
    return [r for r in records if dict(r.headers).get("message-type") == msg_def.encode()]


async def test_a_cycle_closes_at_its_cut_off_settles_on_confirmation_and_reports_its_obligations(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path, profiles: dict[str, ProfileSet]
) -> None:
    monday = datetime(2026, 11, 23, 9, 59, tzinfo=UTC8)  # a business day on both sides
    clock = Clock(monday)
    settlement = SettlementSection(cut_offs=("10:00", "14:00"), tick_ms=100)
    # Room for the largest amount the profiles allow.
    config = configured(state, tmp_path, settlement, {"KLBKHKHHXXX": "1000000000000.00"})
    flows = [
        ("HPCBCNSHXXX", "VHBKHKHHXXX", "1000.00"),
        ("JADBCNBJXXX", "KLBKHKHHXXX", "250.50"),
        ("HPCBCNSHXXX", "KLBKHKHHXXX", "0.01"),
        ("VHBKHKHHXXX", "HPCBCNSHXXX", "400.00"),
        ("KLBKHKHHXXX", "JADBCNBJXXX", "999999999999.99"),
        ("VHBKHKHHXXX", "JADBCNBJXXX", "75.25"),
    ]
    async with running_gateway(config, kafka_bootstrap, clock) as gw:
        await publish(gw, *(payment(n, *f) for n, f in enumerate(flows)))
        out = await gw.read(config.offshore.outbound_topic, 3)
        assert len(out) == 3 and len(await gw.read(config.onshore.outbound_topic, 3)) == 3
        (cycle,) = await gw.store.cycles()
        assert (cycle.id, cycle.status, cycle.due_at) == (
            "CNY-000001",
            "open",
            "2026-11-23T10:00:00+08:00",
        )

        clock.now = monday + timedelta(minutes=1)  # 10:00: the cut-off
        closed = await cycle_state(gw, "CNY-000001", "instructed")
        assert closed.cut_off == "2026-11-23T10:00:00+08:00"
        # Published with no further traffic (the relay does not wait for a batch): the
        # instruction to the RTGS side, a statement to each participant on its own side.
        out = await gw.read(config.offshore.outbound_topic, 6)
        onshore_out = await gw.read(config.onshore.outbound_topic, 5)
        (instruction,) = by_type(out, "pacs.029.001.01")
        statements = by_type(out, "camt.053.001.08") + by_type(onshore_out, "camt.053.001.08")
        assert instruction.key == b"CNY-000001"
        assert_officially_valid(instruction.value)
        profiles["offshore"].validate(read_message(instruction.value))
        doc = read_message(instruction.value)
        assert doc.doc_text("MulSttlmReq/SttlmReq/SttlmCycl") == "CNY-000001"
        assert doc.doc_text("MulSttlmReq/GrpHdr/MsgId") == closed.instruction_id

        # The report: each participant's received and paid are its obligations'.
        expected: dict[str, list[Decimal]] = {}
        for payer, payee, amount in flows:
            expected.setdefault(payer, [Decimal(0), Decimal(0)])[1] += Decimal(amount)
            expected.setdefault(payee, [Decimal(0), Decimal(0)])[0] += Decimal(amount)
        reports = await gw.read(config.settlement.reports_topic, 5)
        summaries = [json.loads(r.value) for r in reports if r.key == b"CNY-000001"]
        assert len(summaries) == 1 and summaries[0] == json.loads(closed.summary or "")
        report = summaries[0]
        assert report["obligations"] == len(flows)
        assert Decimal(report["gross"]) == sum(Decimal(a) for *_, a in flows)
        for row in report["participants"]:
            received, paid = expected[row["participant"]]
            assert (Decimal(row["received"]), Decimal(row["paid"])) == (received, paid)
            assert Decimal(row["position"]) == received - paid
        assert sum(Decimal(r["position"]) for r in report["participants"]) == 0
        assert Decimal(report["net"]) < Decimal(report["gross"])
        assert report["efficiency"] == pytest.approx(
            1 - float(Decimal(report["net"]) / Decimal(report["gross"])), abs=1e-6
        )
        per_participant = [r for r in reports if r.key.startswith(b"CNY-000001:")]
        assert len(per_participant) == len(expected)
        # Each participant's camt.053: officially valid, in its dialect, matching the report.
        assert_officially_valid(*(r.value for r in statements))
        rows = {row["participant"]: row for row in report["participants"]}
        assert sorted(r.key.decode().split(":")[1] for r in statements) == sorted(rows)
        for record in statements:
            bic = record.key.decode().split(":")[1]
            stmt = read_message(record.value)
            side = "onshore" if bic in SIDE_OF else "offshore"
            assert record in (onshore_out if side == "onshore" else out)
            profiles[side].validate(stmt)
            base = "BkToCstmrStmt/Stmt/"
            position = Decimal(rows[bic]["position"])
            assert stmt.doc_text(base + "Acct/Ownr/Id/OrgId/AnyBIC") == bic
            assert Decimal(stmt.doc_text(base + "Bal/Amt") or "") == abs(position)
            assert stmt.doc_text(base + "Bal/CdtDbtInd") == ("DBIT" if position < 0 else "CRDT")
            assert Decimal(stmt.doc_text(base + "TxsSummry/TtlCdtNtries/Sum") or "") == Decimal(
                rows[bic]["received"]
            )
            assert Decimal(stmt.doc_text(base + "TxsSummry/TtlDbtNtries/Sum") or "") == Decimal(
                rows[bic]["paid"]
            )
            assert stmt.header_text("To/FIId/FinInstnId/BICFI") == bic

        # Accepted after the cut-off: the next cycle.
        await publish(gw, payment(99, "HPCBCNSHXXX", "VHBKHKHHXXX", "5.00"))
        assert len(await gw.read(config.offshore.outbound_topic, 7)) == 7

        # No participant is told of a booking before the RTGS makes it.
        assert not by_type(out + onshore_out, "camt.054.001.08")

        # The RTGS confirms: settled. A copy of the confirmation changes nothing.
        answer = rtgs_answer(1, closed.instruction_id or "", "ACSC")
        await gw.publish("offshore", answer, answer)
        settled = await cycle_state(gw, "CNY-000001", "settled")
        assert settled.reason == "ACSC"
        # Each participant whose position moved is notified (camt.054) on its own side, in
        # its dialect: the net entry, booked, referencing the cycle and the instruction.
        out = await gw.read(config.offshore.outbound_topic, 9)
        onshore_out = await gw.read(config.onshore.outbound_topic, 7)
        notices = by_type(out, "camt.054.001.08") + by_type(onshore_out, "camt.054.001.08")
        assert len(notices) == 4, [dict(r.headers) for r in out + onshore_out]
        assert_officially_valid(*(r.value for r in notices))
        for record in notices:
            bic = record.key.decode().split(":")[1]
            side = "onshore" if bic in SIDE_OF else "offshore"
            assert record in (onshore_out if side == "onshore" else out)
            notice = read_message(record.value)
            profiles[side].validate(notice)
            entry = "BkToCstmrDbtCdtNtfctn/Ntfctn/Ntry/"
            position = Decimal(rows[bic]["position"])
            assert notice.doc_text("BkToCstmrDbtCdtNtfctn/Ntfctn/Acct/Ownr/Id/OrgId/AnyBIC") == bic
            assert Decimal(notice.doc_text(entry + "Amt") or "") == abs(position)
            assert notice.doc_text(entry + "CdtDbtInd") == ("DBIT" if position < 0 else "CRDT")
            assert notice.doc_text(entry + "Sts/Cd") == "BOOK"
            assert notice.doc_text(entry + "NtryRef") == "CNY-000001"
            assert notice.doc_text(entry + "AcctSvcrRef") == closed.instruction_id
            assert notice.header_text("To/FIId/FinInstnId/BICFI") == bic

        # The next cycle: closed by the operator, refused by the RTGS: failed, not reopened.
        second = await gw.cycles.close_now("CNY") if gw.cycles else None
        assert second == "CNY-000002"
        instructed = await cycle_state(gw, "CNY-000002", "instructed")
        assert json.loads(instructed.summary or "")["obligations"] == 1
        await gw.publish(
            "offshore", rtgs_answer(2, instructed.instruction_id or "", "RJCT", "AM04")
        )
        failed = await cycle_state(gw, "CNY-000002", "failed")
        assert failed.reason == "RJCT: AM04 insufficient liquidity"
        assert [c.status for c in await gw.store.cycles()] == ["settled", "failed", "open"]
        # A confirmation from the wrong side is refused, and nothing changes.
        await gw.publish("onshore", rtgs_answer(3, instructed.instruction_id or "", "ACSC"))
        onshore_out = await gw.read(config.onshore.outbound_topic, 9)
        reasons = [dict(r.headers).get("reject-reason") for r in onshore_out]
        assert reasons.count(b"AG01") == 1
        assert (await cycle_state(gw, "CNY-000002", "failed")).reason == failed.reason
        # A failed cycle books nothing: nobody is notified of it.
        out = await gw.read(config.offshore.outbound_topic, 11)
        notified = {r.key.split(b":")[0] for r in by_type(out + onshore_out, "camt.054.001.08")}
        assert notified == {b"CNY-000001"}


async def test_a_held_payment_waits_through_a_restart_and_is_released_in_order(
    kafka_bootstrap: str, sqlite_state: StateSection, tmp_path: Path
) -> None:
    config = configured(
        sqlite_state, tmp_path, SettlementSection(cut_offs=()), {"HPCBCNSHXXX": "2000000.00"}
    )
    first = payment(1, "HPCBCNSHXXX", "VHBKHKHHXXX", "1500000.00")
    held = payment(2, "HPCBCNSHXXX", "KLBKHKHHXXX", "1000000.00")  # over the cap
    behind = payment(3, "HPCBCNSHXXX", "VHBKHKHHXXX", "100000.00")  # fits, but queues behind
    credit = payment(4, "VHBKHKHHXXX", "HPCBCNSHXXX", "1200000.00")
    async with running_gateway(config, kafka_bootstrap) as gw:
        await publish(gw, first, held, behind)
        out = await gw.read(config.offshore.outbound_topic, 1, settle=2.5)
        assert len(out) == 1  # only the first crossed
        assert [h.status for h in await gw.store.held()] == ["queued", "queued"]
    # The queue is in the store: a new instance finds it.
    async with running_gateway(config, kafka_bootstrap) as gw:
        await publish(gw, credit)
        out = await gw.read(config.offshore.outbound_topic, 3)
        uetrs = [read_message(r.value).doc_text("CdtTrfTxInf/PmtId/UETR") for r in out]
        sent = [
            read_message(v).doc_text("CdtTrfTxInf/PmtId/UETR") for _, v in (first, held, behind)
        ]
        assert uetrs == sent  # released in order, after the credit
        assert [h.status for h in await gw.store.held()] == ["released", "released"]
        (cycle,) = await gw.store.cycles()
        positions = await gw.store.positions(cycle.id)
        assert positions["HPCBCNSHXXX"] == -(1500000 + 1000000 + 100000 - 1200000) * 100
        assert len(await gw.store.obligations()) == 4


async def test_a_payment_over_the_cap_is_refused_with_a_conformant_am04_by_policy(
    kafka_bootstrap: str, sqlite_state: StateSection, tmp_path: Path
) -> None:
    config = configured(
        sqlite_state,
        tmp_path,
        SettlementSection(cut_offs=(), cap_policy="reject"),
        {"HPCBCNSHXXX": "2000000.00"},
    )
    async with running_gateway(config, kafka_bootstrap) as gw:
        await publish(
            gw,
            payment(1, "HPCBCNSHXXX", "VHBKHKHHXXX", "1500000.00"),
            payment(2, "HPCBCNSHXXX", "KLBKHKHHXXX", "1000000.00"),
            payment(3, "HPCBCNSHXXX", "VHBKHKHHXXX", "500000.00"),  # exactly at the cap
        )
        crossed = await gw.read(config.offshore.outbound_topic, 2)
        (reject,) = await gw.read(config.onshore.outbound_topic, 1)
        assert len(crossed) == 2
        assert dict(reject.headers)["reject-reason"] == b"AM04"
        assert_officially_valid(reject.value)
        msg = read_message(reject.value)
        assert msg.doc_text("FIToFIPmtStsRpt/TxInfAndSts/TxSts") == "RJCT"
        assert msg.doc_text("FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd") == "AM04"
        assert msg.doc_text("FIToFIPmtStsRpt/TxInfAndSts/OrgnlUETR") == str(
            uuid.UUID(int=2 + (1 << 70), version=4)
        )
        assert len(await gw.store.obligations()) == 2
        assert [h.status for h in await gw.store.held()] == ["refused"]


async def test_a_cycle_can_settle_as_one_pacs009_per_net_position(
    kafka_bootstrap: str, sqlite_state: StateSection, tmp_path: Path
) -> None:
    settlement = SettlementSection(cut_offs=(), instruction="pacs.009", tick_ms=100)
    config = configured(sqlite_state, tmp_path, settlement, {})
    flows = [
        ("HPCBCNSHXXX", "VHBKHKHHXXX", "300.00"),
        ("VHBKHKHHXXX", "JADBCNBJXXX", "120.00"),
        ("KLBKHKHHXXX", "HPCBCNSHXXX", "100.00"),
    ]
    agent = config.settlement.agent_bic
    async with running_gateway(config, kafka_bootstrap) as gw:
        await publish(gw, *(payment(n, *f) for n, f in enumerate(flows)))
        assert len(await gw.read(config.onshore.outbound_topic, 2)) == 2
        assert gw.cycles is not None and await gw.cycles.close_now("CNY") == "CNY-000001"
        # One payment, four transfers, the statements of the two offshore participants.
        out = await gw.read(config.offshore.outbound_topic, 1 + 4 + 2)
        transfers = by_type(out, "pacs.009.001.08")
        # Positions: HPCB -200, VHBK +180, JADB +120, KLBK -100: four transfers.
        assert_officially_valid(*(t.value for t in transfers))
        moves = {}
        for t in transfers:
            m = read_message(t.value)
            tx = "FICdtTrf/CdtTrfTxInf/"
            debtor = m.doc_text(tx + "Dbtr/FinInstnId/BICFI")
            creditor = m.doc_text(tx + "Cdtr/FinInstnId/BICFI")
            amount = Decimal(m.doc_text(tx + "IntrBkSttlmAmt") or "")
            moves[debtor if creditor == agent else creditor] = (
                amount if debtor == agent else -amount
            )
        assert moves == {
            "HPCBCNSHXXX": Decimal("-200.00"),
            "VHBKHKHHXXX": Decimal("180.00"),
            "JADBCNBJXXX": Decimal("120.00"),
            "KLBKHKHHXXX": Decimal("-100.00"),
        }
        ids = [read_message(t.value).doc_text("FICdtTrf/GrpHdr/MsgId") or "" for t in transfers]
        for n, msg_id in enumerate(ids[:-1]):
            await gw.publish(
                "offshore", rtgs_answer(10 + n, msg_id, "ACSC", msg_def="pacs.009.001.08")
            )
        await asyncio.sleep(1.5)
        assert (await cycle_state(gw, "CNY-000001", "instructed")).status == "instructed"
        await gw.publish("offshore", rtgs_answer(20, ids[-1], "ACSC", msg_def="pacs.009.001.08"))
        await cycle_state(gw, "CNY-000001", "settled")


async def test_the_pacs029_goes_to_the_configured_rtgs_side(
    kafka_bootstrap: str, sqlite_state: StateSection, tmp_path: Path
) -> None:
    """settlement.rtgs_side = "onshore": the cycle's pacs.029 is addressed to the onshore
    system in the onshore dialect, published on onshore.outbound, and the onshore side's
    confirmation settles the cycle (it went to the offshore RTGS whatever was configured)."""
    settlement = SettlementSection(cut_offs=(), rtgs_side="onshore", tick_ms=100)
    config = configured(sqlite_state, tmp_path, settlement, {})
    onshore = config.onshore
    async with running_gateway(config, kafka_bootstrap) as gw:
        await publish(gw, payment(1, "HPCBCNSHXXX", "VHBKHKHHXXX", "300.00"))
        assert len(await gw.read(config.offshore.outbound_topic, 1)) == 1
        assert gw.cycles is not None and await gw.cycles.close_now("CNY") == "CNY-000001"
        out = await gw.read(onshore.outbound_topic, 2)  # the pacs.029 and HPCB's statement
        (request,) = by_type(out, "pacs.029.001.01")
        msg = read_message(request.value)
        assert msg.header_text("To/FIId/FinInstnId/BICFI") == onshore.system_bic
        assert msg.header_text("BizSvc") == onshore.biz_svc
        profile_set("onshore").validate(msg)
        assert_officially_valid(request.value)
        offshore_out = await gw.read(config.offshore.outbound_topic, 2, settle=0.5)
        assert by_type(offshore_out, "pacs.029.001.01") == []
        # Whatever the close emits carries the documented headers: its type, its key as
        # idempotency key (the instruction: its correlation), the cycle as correlation id.
        reports = await gw.read(config.settlement.reports_topic, 3)  # summary + HPCB, VHBK
        emitted = [*out, *by_type(offshore_out, "camt.053.001.08"), *reports]
        for record in emitted:
            headers = dict(record.headers)
            assert headers.get("correlation-id") == b"CNY-000001", headers
            assert headers.get("message-type") and headers.get("idempotency-key"), headers
        statements = [*by_type(out, "camt.053.001.08"), *reports]
        assert all(dict(r.headers)["idempotency-key"] == r.key for r in statements)
        answer = (
            rtgs_answer(1, msg.doc_text("MulSttlmReq/GrpHdr/MsgId") or "", "ACSC")
            .replace(b"HKICHKHHXXX", onshore.system_bic.encode())
            .replace(b"rmbchats.connect.01", onshore.biz_svc.encode())
        )
        await gw.publish("onshore", answer)
        await cycle_state(gw, "CNY-000001", "settled")


async def test_an_answer_in_the_batch_of_a_payment_refused_for_its_cap_is_not_forwarded(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path
) -> None:
    """A payment refused for its cap never reaches the other side, so nothing may answer it:
    a return (or status) of it in the same batch, published before the gateway joins, is
    refused as an answer to nothing the gateway sent, and books nothing."""
    config = configured(
        state,
        tmp_path,
        SettlementSection(cut_offs=(), cap_policy="reject"),
        {"HPCBCNSHXXX": "1000000.00"},  # the sample payment is 1,250,000.00
    )
    config = dataclasses.replace(
        config, kafka=dataclasses.replace(config.kafka, retry_delays_ms=(300, 600))
    )
    await ensure_topics(kafka_bootstrap, config.topics())
    for side, value in (
        ("onshore", sample("onshore", "pacs.008.001.08")),
        ("offshore", sample("offshore", "pacs.004.001.09")),  # returns that payment
    ):
        await kafka_publish(kafka_bootstrap, config.side(side).inbound_topic, [(b"k", value)])
    async with running_gateway(config, kafka_bootstrap) as gw:
        # The payment and the return's first attempt processed (the return then waits on the
        # retry topics: its original is not committed as accepted, and never will be).
        async with asyncio.timeout(60):
            while gw.pipeline.processed < 2:  # noqa: ASYNC110  # a count, not an event
                await asyncio.sleep(0.05)
        onshore = await gw.read(config.onshore.outbound_topic, 1, settle=3)
        assert [dict(r.headers)["reject-reason"] for r in onshore] == [b"AM04"]  # no return
        assert dict(onshore[0].headers)["message-type"] == b"pacs.002.001.10"
        assert await gw.store.obligations() == []
        assert [h.status for h in await gw.store.held()] == ["refused"]
