"""admi.002 message reject, pacs.029 multilateral settlement request, camt.053 cycle statement,
camt.054 cycle notification."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal, cast

from gateway.canonical import (
    AccountReport,
    CycleNotification,
    CycleStatement,
    HeldEntry,
    MessageReject,
    Money,
    MovementRecord,
    NetSettlement,
    NotifiedObligation,
    ReportRequest,
)
from gateway.codec.context import DecodeContext, EncodeContext, amount_leaf, decode_amount
from gateway.iso20022.ids import derive_id
from gateway.iso20022.tree import Map, Spec, leaf, many, one, txt


def decode_reject(ctx: DecodeContext) -> MessageReject:
    root = one(ctx.msg.doc_map, "admi.002.001.01")
    rsn = one(root, "Rsn")
    return MessageReject(
        reference=txt(root, "RltdRef", "Ref") or "",
        reason=txt(rsn, "RjctgPtyRsn") or "",
        rejected_at=txt(rsn, "RjctnDtTm") or "",
        location=txt(rsn, "ErrLctn"),
        description=txt(rsn, "RsnDesc") or "",
    )


def encode_reject(ctx: EncodeContext, r: MessageReject) -> tuple[str, Spec]:
    return "admi.002.001.01", [
        ("RltdRef", [("Ref", r.reference)]),
        (
            "Rsn",
            [
                ("RjctgPtyRsn", r.reason),
                ("RjctnDtTm", r.rejected_at),
                ("ErrLctn", ctx.text("reject.text", r.location, 350)),
                ("RsnDesc", ctx.text("reject.text", r.description, 350)),
            ],
        ),
    ]


def decode_net_settlement(ctx: DecodeContext) -> NetSettlement:
    root = one(ctx.msg.doc_map, "MulSttlmReq")
    grp, req = one(root, "GrpHdr"), one(root, "SttlmReq")
    records = []
    for rec in many(req, "MvmntRcrd"):
        if not isinstance(rec, dict):
            continue
        money: Money = decode_amount(leaf(rec, "Amt", "Amt"))
        records.append(
            MovementRecord(
                id=txt(rec, "Id") or "",
                # xs:decimal with no fraction digits: "2.0" and "+02" are 2 as well.
                sequence=int(Decimal(txt(rec, "SeqNb") or "0")),
                amount=money,
                direction=cast(Literal["CRDT", "DBIT"], txt(rec, "Amt", "CdtDbt")),
                participant=txt(rec, "Ptcpt", "Id", "OrgId", "AnyBIC") or "",
                account=txt(rec, "PtcptAcct", "Id", "Othr", "Id"),
            )
        )
    ctrl = txt(grp, "CtrlSum")
    return NetSettlement(
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        instruction_id=txt(req, "InstrId") or "",
        cycle=txt(req, "SttlmCycl") or "",
        records=tuple(records),
        control_sum=Decimal(ctrl) if ctrl else None,
    )


def encode_net_settlement(
    ctx: EncodeContext, n: NetSettlement, msg_id: str, created: str
) -> tuple[str, Spec]:
    return "MulSttlmReq", [
        (
            "GrpHdr",
            [
                ("MsgId", msg_id),
                ("CreDtTm", created),
                ("NbOfSttlmReqs", "1"),
                ("CtrlSum", None if n.control_sum is None else str(n.control_sum)),
            ],
        ),
        (
            "SttlmReq",
            [
                ("InstrId", n.instruction_id),
                ("SttlmCycl", n.cycle),
                ("NbOfMvmntRcrds", str(len(n.records))),
                *(
                    (
                        "MvmntRcrd",
                        [
                            ("Id", r.id),
                            ("SeqNb", str(r.sequence)),
                            ("Amt", [("Amt", amount_leaf(r.amount)), ("CdtDbt", r.direction)]),
                            ("Ptcpt", [("Id", [("OrgId", [("AnyBIC", r.participant)])])]),
                            (
                                "PtcptAcct",
                                None
                                if r.account is None
                                else [("Id", [("Othr", [("Id", r.account)])])],
                            ),
                        ],
                    )
                    for r in n.records
                ),
            ],
        ),
    ]


def decode_statement(ctx: DecodeContext) -> CycleStatement:
    root = one(ctx.msg.doc_map, "BkToCstmrStmt")
    grp, stmt = one(root, "GrpHdr"), one(root, "Stmt")
    bal = one(stmt, "Bal")
    received, paid = _totals_of(one(stmt, "TxsSummry"))
    participant, name, account = _owner_of(stmt)
    return CycleStatement(
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        statement_id=txt(stmt, "Id") or "",
        cycle=txt(stmt, "AddtlStmtInf") or "",
        participant=participant,
        name=name,
        account=account,
        position=decode_amount(leaf(bal, "Amt")),
        direction=cast(Literal["CRDT", "DBIT"], txt(bal, "CdtDbtInd")),
        cut_off_date=txt(bal, "Dt", "Dt") or "",
        received=received,
        paid=paid,
        info=txt(stmt, "AddtlStmtInf") or "",
        opened=txt(stmt, "FrToDt", "FrDtTm"),
        cut_off=txt(stmt, "FrToDt", "ToDtTm"),
    )


def encode_statement(
    ctx: EncodeContext, s: CycleStatement, msg_id: str, created: str
) -> tuple[str, Spec]:
    period = None
    if s.opened is not None and s.cut_off is not None:
        period = [("FrDtTm", s.opened), ("ToDtTm", s.cut_off)]
    return "BkToCstmrStmt", [
        ("GrpHdr", [("MsgId", msg_id), ("CreDtTm", created)]),
        (
            "Stmt",
            [
                ("Id", s.statement_id),
                ("CreDtTm", created),
                ("FrToDt", period),
                _account(ctx, s.account, s.position.currency, s.name, s.participant),
                (
                    "Bal",
                    [
                        ("Tp", [("CdOrPrtry", [("Cd", "CLBD")])]),
                        ("Amt", amount_leaf(s.position)),
                        ("CdtDbtInd", s.direction),
                        ("Dt", [("Dt", s.cut_off_date)]),
                    ],
                ),
                _totals(s.received, s.paid),
                ("AddtlStmtInf", s.info),
            ],
        ),
    ]


# The bank transaction code of a net settlement entry: a payments (PMNT) credit received
# (RCDT) or issued (ICDT), subfamily "other" (OTHR): ISO's codes for a clearing's net movement.
_FAMILY = {"CRDT": "RCDT", "DBIT": "ICDT"}


def _bank_code(direction: str) -> tuple[str, object]:
    family = [("Cd", _FAMILY[direction]), ("SubFmlyCd", "OTHR")]
    return "BkTxCd", [("Domn", [("Cd", "PMNT"), ("Fmly", family)])]


def _account(
    ctx: EncodeContext, account: str, currency: str, name: str | None, bic: str
) -> tuple[str, object]:
    """A participant's settlement account, as the gateway's statements, notifications and
    reports name it: its id, currency, owner's name and BIC."""
    owner = [("Nm", ctx.text("statement_owner", name, 140)), ("Id", [("OrgId", [("AnyBIC", bic)])])]
    return "Acct", [("Id", [("Othr", [("Id", account)])]), ("Ccy", currency), ("Ownr", owner)]


def _totals(received: tuple[int, Decimal], paid: tuple[int, Decimal]) -> tuple[str, object]:
    """TxsSummry: what the account received (credits) and paid (debits), count and sum."""
    return "TxsSummry", [
        ("TtlCdtNtries", [("NbOfNtries", str(received[0])), ("Sum", str(received[1]))]),
        ("TtlDbtNtries", [("NbOfNtries", str(paid[0])), ("Sum", str(paid[1]))]),
    ]


def _totals_of(m: Map | None) -> tuple[tuple[int, Decimal], tuple[int, Decimal]]:
    """(received, paid) read back from a TxsSummry."""

    def total(name: str) -> tuple[int, Decimal]:
        return int(Decimal(txt(m, name, "NbOfNtries") or "0")), Decimal(txt(m, name, "Sum") or "0")

    return total("TtlCdtNtries"), total("TtlDbtNtries")


def _owner_of(m: Map | None) -> tuple[str, str | None, str]:
    """(BIC, name, account id) read back from an Acct."""
    return (
        txt(m, "Acct", "Ownr", "Id", "OrgId", "AnyBIC") or "",
        txt(m, "Acct", "Ownr", "Nm"),
        txt(m, "Acct", "Id", "Othr", "Id") or "",
    )


_UETR = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}")


def _obligation_reference(reference: str) -> Spec:
    """An obligation's reference as a notification's TxDtls/Refs gives it: a payment or a
    return by its UETR, a securities settlement by its TxId, anything else as the gateway's
    own reference (whole in AddtlTxInf)."""
    if reference.startswith("sese:"):
        return [("TxId", reference.removeprefix("sese:")[:35])]
    uetr = reference.removeprefix("return:")
    if _UETR.fullmatch(uetr):
        return [("UETR", uetr)]
    return [("AcctSvcrRef", reference if len(reference) <= 35 else derive_id("OB", reference))]


def _detail(o: NotifiedObligation) -> Spec:
    agent = "DbtrAgt" if o.direction == "CRDT" else "CdtrAgt"  # the other participant
    kind = "Return" if o.reference.startswith("return:") else "Obligation"
    return [
        ("Refs", _obligation_reference(o.reference)),
        ("Amt", amount_leaf(o.amount)),
        ("CdtDbtInd", o.direction),
        ("RltdAgts", [(agent, [("FinInstnId", [("BICFI", o.counterparty)])])]),
        ("AddtlTxInf", f"{kind} {o.reference} netted in this entry"),
    ]


def encode_notification(
    ctx: EncodeContext, n: CycleNotification, msg_id: str, created: str
) -> tuple[str, Spec]:
    details = [("NtryDtls", [("TxDtls", _detail(o)) for o in n.details])] if n.details else []
    return "BkToCstmrDbtCdtNtfctn", [
        ("GrpHdr", [("MsgId", msg_id), ("CreDtTm", created)]),
        (
            "Ntfctn",
            [
                ("Id", n.notification_id),
                ("CreDtTm", created),
                _account(ctx, n.account, n.amount.currency, n.name, n.participant),
                (
                    "Ntry",
                    [
                        ("NtryRef", n.cycle),
                        ("Amt", amount_leaf(n.amount)),
                        ("CdtDbtInd", n.direction),
                        ("Sts", [("Cd", "BOOK")]),
                        ("BookgDt", [("Dt", n.booked)]),
                        ("ValDt", [("Dt", n.booked)]),
                        ("AcctSvcrRef", n.reference),
                        _bank_code(n.direction),
                        *details,
                        ("AddtlNtryInf", n.info),
                    ],
                ),
            ],
        ),
    ]


def decode_notification(ctx: DecodeContext) -> CycleNotification:
    root = one(ctx.msg.doc_map, "BkToCstmrDbtCdtNtfctn")
    grp, ntfctn = one(root, "GrpHdr"), one(root, "Ntfctn")
    entry = one(ntfctn, "Ntry")
    participant, name, account = _owner_of(ntfctn)
    details = []
    for tx in many(one(entry, "NtryDtls"), "TxDtls"):
        assert isinstance(tx, dict)
        agents = one(tx, "RltdAgts")
        direction = cast(Literal["CRDT", "DBIT"], txt(tx, "CdtDbtInd"))
        agent = "DbtrAgt" if direction == "CRDT" else "CdtrAgt"
        refs = one(tx, "Refs")
        tx_id = txt(refs, "TxId")
        reference = txt(refs, "UETR") or (f"sese:{tx_id}" if tx_id else txt(refs, "AcctSvcrRef"))
        if (txt(tx, "AddtlTxInf") or "").startswith("Return "):
            reference = f"return:{reference}"
        details.append(
            NotifiedObligation(
                reference=reference or "",
                amount=decode_amount(leaf(tx, "Amt")),
                direction=direction,
                counterparty=txt(agents, agent, "FinInstnId", "BICFI") or "",
            )
        )
    return CycleNotification(
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        notification_id=txt(ntfctn, "Id") or "",
        cycle=txt(entry, "NtryRef") or "",
        participant=participant,
        name=name,
        account=account,
        amount=decode_amount(leaf(entry, "Amt")),
        direction=cast(Literal["CRDT", "DBIT"], txt(entry, "CdtDbtInd")),
        booked=txt(entry, "BookgDt", "Dt") or "",
        reference=txt(entry, "AcctSvcrRef"),
        info=txt(entry, "AddtlNtryInf") or "",
        details=tuple(details),
    )


def decode_report_request(ctx: DecodeContext) -> ReportRequest:
    root = one(ctx.msg.doc_map, "AcctRptgReq")
    grp, req = one(root, "GrpHdr"), one(root, "RptgReq")  # one (profile)
    return ReportRequest(
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        requested=txt(req, "ReqdMsgNmId") or "",
        owner=ctx.agent(one(one(req, "AcctOwnr"), "Agt"), "AcctOwnr"),
        account=txt(req, "Acct", "Id", "Othr", "Id"),
        cycle=txt(req, "RptgSeq", "EQSeq"),
        request_id=txt(req, "Id"),
    )


def encode_account_report(
    ctx: EncodeContext, r: AccountReport, msg_id: str, created: str
) -> tuple[str, Spec]:
    group: list[tuple[str, object]] = [("MsgId", msg_id), ("CreDtTm", created)]
    if r.request is not None:
        group.append(("OrgnlBizQry", [("MsgId", r.request[0]), ("MsgNmId", r.request[1])]))

    def balance(code: str, money: Money, direction: str) -> tuple[str, object]:
        return (
            "Bal",
            [
                ("Tp", [("CdOrPrtry", [("Cd", code)])]),
                ("Amt", amount_leaf(money)),
                ("CdtDbtInd", direction),
                ("Dt", [("DtTm", created)]),
            ],
        )

    balances = [balance("ITBD", r.position, r.direction)]
    if r.headroom is not None:
        balances.append(
            balance("ITAV", abs_money(r.headroom), "DBIT" if r.headroom.amount < 0 else "CRDT")
        )
    entries = [
        (
            "Ntry",
            [
                ("Amt", amount_leaf(h.amount)),
                ("CdtDbtInd", "DBIT"),
                ("Sts", [("Cd", "PDNG")]),
                _bank_code("DBIT"),
                ("NtryDtls", [("TxDtls", [("Refs", _obligation_reference(h.reference))])]),
                ("AddtlNtryInf", "Held for the net debit cap: released when credits make room"),
            ],
        )
        for h in r.held
    ]
    return "BkToCstmrAcctRpt", [
        ("GrpHdr", group),
        (
            "Rpt",
            [
                ("Id", r.report_id),
                ("CreDtTm", created),
                _account(ctx, r.account, r.position.currency, r.name, r.participant),
                *balances,
                _totals(r.received, r.paid),
                *entries,
                ("AddtlRptInf", r.info),
            ],
        ),
    ]


def abs_money(m: Money) -> Money:
    return Money(abs(m.amount), m.currency)


def decode_account_report(ctx: DecodeContext) -> AccountReport:
    root = one(ctx.msg.doc_map, "BkToCstmrAcctRpt")
    grp, rpt = one(root, "GrpHdr"), one(root, "Rpt")
    balances = [b for b in many(rpt, "Bal") if isinstance(b, dict)]
    booked = next((b for b in balances if txt(b, "Tp", "CdOrPrtry", "Cd") == "ITBD"), None)
    received, paid = _totals_of(one(rpt, "TxsSummry"))
    participant, name, account = _owner_of(rpt)

    held = []
    for entry in many(rpt, "Ntry"):
        assert isinstance(entry, dict)
        refs = one(one(one(entry, "NtryDtls"), "TxDtls"), "Refs")
        held.append(
            HeldEntry(
                txt(refs, "UETR") or txt(refs, "TxId") or "", decode_amount(leaf(entry, "Amt"))
            )
        )
    return AccountReport(
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        report_id=txt(rpt, "Id") or "",
        cycle=txt(rpt, "AddtlRptInf") or "",
        participant=participant,
        name=name,
        account=account,
        position=decode_amount(leaf(booked, "Amt")),
        direction=cast(Literal["CRDT", "DBIT"], txt(booked, "CdtDbtInd")),
        received=received,
        paid=paid,
        held=tuple(held),
        headroom=None,
        request=None,
        info=txt(rpt, "AddtlRptInf") or "",
    )
