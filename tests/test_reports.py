"""Account reporting requests (camt.060) end to end over a real broker, on both stores: a
participant's intraday camt.052 of the open cycle (position, totals, held payments, headroom),
the camt.053 of a closed cycle it names, and the refusals of anything but its own account.
Every output is checked against its side's profile and the official schemas."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.config import StateSection, TranslationSection
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from tests.conformance import checked_output as checked
from tests.harness import capped_directory, gateway_config, running_gateway, sample

pytestmark = pytest.mark.kafka

UETR = "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"


def payment(n: int, amount: str) -> bytes:
    uetr = str(uuid.UUID(int=n, version=4)) if n > 1 else UETR
    return (
        sample("onshore", "pacs.008.001.08")
        .replace(b"-0001<", f"-{n:04d}<".encode())
        .replace(UETR.encode(), uetr.encode())
        .replace(b">1250000.00<", f">{amount}<".encode())
    )


def request(n: int, side: str, **changes: str) -> bytes:
    data = sample(side, "camt.060.001.05").replace(b"-0001<", f"-{n:04d}<".encode())
    for old, new in changes.items():
        data = data.replace(old.encode(), new.encode())
    return data


def typed(records: list[Any], msg_def: str) -> list[Any]:
    return [r for r in records if dict(r.headers).get("message-type") == msg_def.encode()]


async def test_own_account_reports_on_request(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path, profiles: dict[str, ProfileSet]
) -> None:
    config = gateway_config(f"r{uuid.uuid4().hex[:10]}", state)
    directory = capped_directory(tmp_path, {"HPCBCNSHXXX": "2000000.00"})
    config = dataclasses.replace(config, translation=TranslationSection(directory=directory))
    second = str(uuid.UUID(int=2, version=4))
    async with running_gateway(config, kafka_bootstrap) as gw:
        await gw.publish("onshore", payment(1, "1250000.00"), key=b"HPCB")
        await gw.publish("onshore", payment(2, "900000.00"), key=b"HPCB")  # over the cap: held
        assert len(await gw.read(config.offshore.outbound_topic, 1)) == 1

        # The payer's intraday report: its position, what it paid, its held payment, headroom.
        await gw.publish("onshore", request(1, "onshore"))
        (report,) = typed(await gw.read(config.onshore.outbound_topic, 1), "camt.052.001.08")
        msg = checked(report, "onshore", profiles)
        rpt = "BkToCstmrAcctRpt/Rpt/"
        assert msg.header_text("To/FIId/FinInstnId/BICFI") == "HPCBCNSHXXX"
        assert msg.doc_text("BkToCstmrAcctRpt/GrpHdr/OrgnlBizQry/MsgId") == "ON-MSG-C60-0001"
        balances = {
            b.findtext("{*}Tp/{*}CdOrPrtry/{*}Cd"): (
                b.findtext("{*}Amt"),
                b.findtext("{*}CdtDbtInd"),
            )
            for b in msg.document.iter("{*}Bal")
        }
        assert balances == {"ITBD": ("1250000.00", "DBIT"), "ITAV": ("750000.00", "CRDT")}
        assert msg.doc_text(rpt + "TxsSummry/TtlDbtNtries/NbOfNtries") == "1"
        assert msg.doc_text(rpt + "TxsSummry/TtlDbtNtries/Sum") == "1250000.00"
        assert msg.doc_text(rpt + "TxsSummry/TtlCdtNtries/NbOfNtries") == "0"
        assert msg.doc_text(rpt + "Ntry/Amt") == "900000.00"
        assert msg.doc_text(rpt + "Ntry/Sts/Cd") == "PDNG"
        assert msg.doc_text(rpt + "Ntry/NtryDtls/TxDtls/Refs/UETR") == second
        assert "CNY-000001" in (msg.doc_text(rpt + "AddtlRptInf") or "")

        # A statement of a cycle not closed yet: refused, with the reason.
        await gw.publish("offshore", request(2, "offshore"))
        out = await gw.read(config.offshore.outbound_topic, 2)
        assert dict(out[-1].headers)["reject-reason"] == b"NARR"
        assert b"no closed cycle CNY-000001" in out[-1].value

        # Closed: the receiver's statement, as the close issued it.
        assert gw.cycles is not None and await gw.cycles.close_now("CNY") == "CNY-000001"
        issued = typed(await gw.read(config.offshore.outbound_topic, 4), "camt.053.001.08")
        await gw.publish("offshore", request(3, "offshore"))
        statements = typed(await gw.read(config.offshore.outbound_topic, 5), "camt.053.001.08")
        assert len(issued) == 1 and len(statements) == 2
        again = checked(statements[1], "offshore", profiles)
        first = read_message(issued[0].value)
        stmt = "BkToCstmrStmt/Stmt/"
        for path in ("Id", "Bal/Amt", "Bal/CdtDbtInd", "TxsSummry/TtlCdtNtries/Sum"):
            assert again.doc_text(stmt + path) == first.doc_text(stmt + path), path
        assert again.doc_text(stmt + "Bal/Amt") == "1250000.00"

        # Not its own account: another participant's, or for another participant.
        await gw.publish("onshore", request(4, "onshore", **{"SETTLE-HPCB-CNY": "SETTLE-JADB-CNY"}))
        await gw.publish(
            "onshore",
            request(5, "onshore").replace(
                b"<BICFI>HPCBCNSHXXX</BICFI>\n        </FinInstnId>\n      </FIId>\n    </Fr>",
                b"<BICFI>JADBCNBJXXX</BICFI>\n        </FinInstnId>\n      </FIId>\n    </Fr>",
            ),
        )
        # An account of the other side's participant; a report the gateway does not give.
        other_side = (
            request(6, "onshore", **{"SETTLE-HPCB-CNY": "SETTLE-VHBK-CNY"})
            .replace(
                b"<BICFI>HPCBCNSHXXX</BICFI>\n              <ClrSysMmbId>",
                b"<BICFI>VHBKHKHHXXX</BICFI>\n              <ClrSysMmbId>",
            )
            .replace(
                b"<ClrSysMmbId>\n                <ClrSysId>\n                  <Cd>CNAPS</Cd>\n"
                b"                </ClrSysId>\n                <MmbId>313290012345</MmbId>\n"
                b"              </ClrSysMmbId>\n",
                b"",
            )
        )
        assert b"VHBKHKHHXXX" in other_side and other_side.count(b"<ClrSysMmbId>") == 0
        await gw.publish("onshore", other_side)
        await gw.publish("onshore", request(7, "onshore", **{"camt.052.001.08": "camt.054.001.08"}))
        out = await gw.read(config.onshore.outbound_topic, 6)  # + the payer's camt.053
        refused = sorted(dict(r.headers).get("reject-reason") or b"" for r in out)
        assert refused.count(b"AG01") == 2 and b"RC01" in refused and b"NARR" in refused, refused
        assert len(await gw.read(config.kafka.dlq_topic, 5)) == 5
