"""pacs.008 (customer credit transfer) and pacs.009 (institution credit transfer)."""

from __future__ import annotations

from gateway.canonical import Agent, Customer, Payment
from gateway.codec.context import (
    DecodeContext,
    EncodeContext,
    account_spec,
    amount_leaf,
    decode_account,
    decode_amount,
    decode_customer,
    decode_supplementary,
)
from gateway.iso20022.tree import Spec, leaf, many, one, txt

ROOTS = {"customer": "FIToFICstmrCdtTrf", "institution": "FICdtTrf"}


def decode(ctx: DecodeContext, kind: str) -> Payment:
    root = one(ctx.msg.doc_map, ROOTS[kind])
    grp, tx = one(root, "GrpHdr"), one(root, "CdtTrfTxInf")
    pmt_id = one(tx, "PmtId")
    customer = kind == "customer"

    def party(name: str) -> Customer | Agent:
        m = one(tx, name)
        if customer:
            return decode_customer(m)
        agent = ctx.other_agent(m)
        assert agent is not None  # Dbtr and Cdtr are mandatory in pacs.009
        return agent

    def optional_agent(name: str) -> Agent | None:
        return ctx.other_agent(one(tx, name))

    return Payment(
        kind="customer" if customer else "institution",
        msg_id=txt(grp, "MsgId") or "",
        created=txt(grp, "CreDtTm") or "",
        settlement_method=txt(grp, "SttlmInf", "SttlmMtd") or "",
        instr_id=txt(pmt_id, "InstrId"),
        end_to_end_id=txt(pmt_id, "EndToEndId") or "",
        tx_id=txt(pmt_id, "TxId"),
        uetr=txt(pmt_id, "UETR") or "",
        clr_sys_ref=txt(pmt_id, "ClrSysRef"),
        amount=decode_amount(leaf(tx, "IntrBkSttlmAmt")),
        settlement_date=txt(tx, "IntrBkSttlmDt") or "",
        priority=txt(tx, "SttlmPrty"),
        charge_bearer=txt(tx, "ChrgBr"),
        instructing=ctx.agent(one(tx, "InstgAgt"), "InstgAgt"),
        instructed=ctx.agent(one(tx, "InstdAgt"), "InstdAgt"),
        debtor=party("Dbtr"),
        debtor_account=decode_account(one(tx, "DbtrAcct")),
        debtor_agent=optional_agent("DbtrAgt"),
        creditor_agent=optional_agent("CdtrAgt"),
        creditor=party("Cdtr"),
        creditor_account=decode_account(one(tx, "CdtrAcct")),
        purpose=txt(tx, "Purp", "Cd"),
        remittance=tuple(x for x in many(one(tx, "RmtInf"), "Ustrd") if isinstance(x, str)),
        supplementary=decode_supplementary(many(tx, "SplmtryData")),
    )


def encode(ctx: EncodeContext, p: Payment, msg_id: str, created: str) -> tuple[str, Spec]:
    customer = p.kind == "customer"

    def party(value: Customer | Agent, role: str) -> object:
        if isinstance(value, Customer):
            return ctx.customer(value, role)
        return ctx.agent(value, role)

    tx: list[tuple[str, object]] = [
        (
            "PmtId",
            [
                ("InstrId", p.instr_id),
                ("EndToEndId", p.end_to_end_id),
                ("TxId", p.tx_id),
                ("UETR", p.uetr),
                ("ClrSysRef", p.clr_sys_ref),
            ],
        ),
        ("IntrBkSttlmAmt", amount_leaf(p.amount)),
        ("IntrBkSttlmDt", p.settlement_date),
        ("SttlmPrty", p.priority),
    ]
    if customer:
        tx.append(("ChrgBr", p.charge_bearer))
    tx += [
        ("InstgAgt", ctx.agent(p.instructing, "InstgAgt")),
        ("InstdAgt", ctx.agent(p.instructed, "InstdAgt")),
        ("Dbtr", party(p.debtor, "debtor")),
        ("DbtrAcct", account_spec(p.debtor_account)),
    ]
    if customer:
        tx += [
            ("DbtrAgt", ctx.agent(p.debtor_agent, "DbtrAgt")),
            ("CdtrAgt", ctx.agent(p.creditor_agent, "CdtrAgt")),
        ]
    tx += [
        ("Cdtr", party(p.creditor, "creditor")),
        ("CdtrAcct", account_spec(p.creditor_account)),
        ("Purp", [("Cd", p.purpose)]),
        ("RmtInf", [("Ustrd", ctx.text("remittance", line, 140)) for line in p.remittance]),
    ]
    # Last: it carries the originals replaced by the text fitting above.
    tx += ctx.supplementary(p.supplementary)
    root = ROOTS[p.kind]
    return root, [
        (
            "GrpHdr",
            [
                ("MsgId", msg_id),
                ("CreDtTm", created),
                ("NbOfTxs", "1"),
                ("SttlmInf", [("SttlmMtd", p.settlement_method)]),
            ],
        ),
        ("CdtTrfTxInf", tx),
    ]
