"""Bond Connect: sese.023 instruction, sese.024 status advice, sese.025 confirmation."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, cast

from gateway.canonical import (
    CashLeg,
    Reason,
    SecuritiesAccount,
    SecuritiesConfirmation,
    SecuritiesDetails,
    SecuritiesInstruction,
    SecuritiesStatus,
    SettlementParties,
    SettlementParty,
)
from gateway.codec.context import DecodeContext, EncodeContext, amount_leaf, decode_amount
from gateway.iso20022.tree import Map, Spec, leaf, many, one, txt

Movement = Literal["DELI", "RECE"]
PaymentType = Literal["FREE", "APMT"]


def _account(m: Map | None) -> SecuritiesAccount | None:
    return None if m is None else SecuritiesAccount(txt(m, "Id") or "", txt(m, "Nm"))


def _cash(m: Map | None) -> CashLeg | None:
    if m is None:
        return None
    return CashLeg(
        decode_amount(leaf(m, "Amt")), cast(Literal["CRDT", "DBIT"], txt(m, "CdtDbtInd"))
    )


def _party(m: Map | None) -> SettlementParty | None:
    if m is None:
        return None
    return SettlementParty(
        txt(m, "Id", "AnyBIC") or "", txt(m, "LEI"), _account(one(m, "SfkpgAcct"))
    )


def _parties(m: Map | None) -> SettlementParties | None:
    if m is None:
        return None
    return SettlementParties(
        txt(m, "Dpstry", "Id", "AnyBIC") or "", _party(one(m, "Pty1")), _party(one(m, "Pty2"))
    )


def _date(m: Map | None, name: str) -> str | None:
    return txt(m, name, "Dt", "Dt")


def _face(m: Map | None) -> Decimal:
    return Decimal(txt(m, "Qty", "FaceAmt") or "0")


def decode_instruction(ctx: DecodeContext) -> SecuritiesInstruction:
    root = one(ctx.msg.doc_map, "SctiesSttlmTxInstr")
    params, trade = one(root, "SttlmTpAndAddtlParams"), one(root, "TradDtls")
    fin, qty = one(root, "FinInstrmId"), one(root, "QtyAndAcctDtls")
    return SecuritiesInstruction(
        tx_id=txt(root, "TxId") or "",
        movement=cast(Movement, txt(params, "SctiesMvmntTp")),
        payment=cast(PaymentType, txt(params, "Pmt")),
        common_id=txt(params, "CmonId"),
        trade_date=_date(trade, "TradDt"),
        settlement_date=_date(trade, "SttlmDt") or "",
        isin=txt(fin, "ISIN") or "",
        description=txt(fin, "Desc"),
        face_amount=_face(one(qty, "SttlmQty")),
        owner_bic=txt(qty, "AcctOwnr", "Id", "AnyBIC") or "",
        owner_lei=txt(qty, "AcctOwnr", "LEI"),
        account=_account(one(qty, "SfkpgAcct")) or SecuritiesAccount(""),
        transaction_type=txt(root, "SttlmParams", "SctiesTxTp", "Cd") or "TRAD",
        delivering=_parties(one(root, "DlvrgSttlmPties")),
        receiving=_parties(one(root, "RcvgSttlmPties")),
        cash=_cash(one(root, "SttlmAmt")),
    )


def _account_spec(ctx: EncodeContext, a: SecuritiesAccount | None) -> object:
    if a is None:
        return None
    return [("Id", a.id), ("Nm", ctx.text("securities.account_name", a.name, 70))]


def _party_spec(ctx: EncodeContext, p: SettlementParty | None) -> object:
    if p is None:
        return None
    return [
        ("Id", [("AnyBIC", p.bic)]),
        ("LEI", p.lei),
        ("SfkpgAcct", _account_spec(ctx, p.account)),
    ]


def _parties_spec(ctx: EncodeContext, p: SettlementParties | None) -> object:
    if p is None:
        return None
    return [
        ("Dpstry", [("Id", [("AnyBIC", p.depository)])]),
        ("Pty1", _party_spec(ctx, p.party1)),
        ("Pty2", _party_spec(ctx, p.party2)),
    ]


def _cash_spec(c: CashLeg | None) -> object:
    return None if c is None else [("Amt", amount_leaf(c.amount)), ("CdtDbtInd", c.direction)]


def _date_spec(value: str | None) -> object:
    return None if value is None else [("Dt", [("Dt", value)])]


def _owner_spec(bic: str | None, lei: str | None) -> object:
    return None if bic is None else [("Id", [("AnyBIC", bic)]), ("LEI", lei)]


def encode_instruction(ctx: EncodeContext, s: SecuritiesInstruction) -> tuple[str, Spec]:
    return "SctiesSttlmTxInstr", [
        ("TxId", s.tx_id),
        (
            "SttlmTpAndAddtlParams",
            [("SctiesMvmntTp", s.movement), ("Pmt", s.payment), ("CmonId", s.common_id)],
        ),
        (
            "TradDtls",
            [("TradDt", _date_spec(s.trade_date)), ("SttlmDt", _date_spec(s.settlement_date))],
        ),
        (
            "FinInstrmId",
            [("ISIN", s.isin), ("Desc", ctx.text("security.description", s.description, 140))],
        ),
        (
            "QtyAndAcctDtls",
            [
                ("SttlmQty", [("Qty", [("FaceAmt", str(s.face_amount))])]),
                ("AcctOwnr", _owner_spec(s.owner_bic, s.owner_lei)),
                ("SfkpgAcct", _account_spec(ctx, s.account)),
            ],
        ),
        ("SttlmParams", [("SctiesTxTp", [("Cd", s.transaction_type)])]),
        ("DlvrgSttlmPties", _parties_spec(ctx, s.delivering)),
        ("RcvgSttlmPties", _parties_spec(ctx, s.receiving)),
        ("SttlmAmt", _cash_spec(s.cash)),
    ]


def decode_status(ctx: DecodeContext) -> SecuritiesStatus:
    root = one(ctx.msg.doc_map, "SctiesSttlmTxStsAdvc")
    ids, status, details = one(root, "TxId"), one(root, "PrcgSts"), one(root, "TxDtls")
    rejected = one(status, "Rjctd")
    rejections = tuple(
        Reason(
            txt(r, "Cd", "Cd"), None, tuple(x for x in many(r, "AddtlRsnInf") if isinstance(x, str))
        )
        for r in many(rejected, "Rsn")
        if isinstance(r, dict)
    )
    decoded_details = None
    if details is not None:
        decoded_details = SecuritiesDetails(
            owner_bic=txt(details, "AcctOwnr", "Id", "AnyBIC"),
            owner_lei=txt(details, "AcctOwnr", "LEI"),
            account=_account(one(details, "SfkpgAcct")) or SecuritiesAccount(""),
            isin=txt(details, "FinInstrmId", "ISIN") or "",
            description=txt(details, "FinInstrmId", "Desc"),
            face_amount=_face(one(details, "SttlmQty")),
            cash=_cash(one(details, "SttlmAmt")),
            settlement_date=_date(details, "SttlmDt") or "",
            movement=cast(Movement, txt(details, "SctiesMvmntTp")),
            payment=cast(PaymentType, txt(details, "Pmt")),
            transaction_type=txt(details, "SttlmParams", "SctiesTxTp", "Cd") or "TRAD",
        )
    return SecuritiesStatus(
        owner_tx_id=txt(ids, "AcctOwnrTxId") or "",
        servicer_tx_id=txt(ids, "AcctSvcrTxId"),
        infrastructure_tx_id=txt(ids, "MktInfrstrctrTxId"),
        accepted=rejected is None,
        rejections=rejections,
        details=decoded_details,
    )


def encode_status(ctx: EncodeContext, s: SecuritiesStatus) -> tuple[str, Spec]:
    if s.accepted:
        processing: object = [("AckdAccptd", [("NoSpcfdRsn", "NORE")])]
    else:
        processing = [
            (
                "Rjctd",
                [
                    (
                        "Rsn",
                        [
                            ("Cd", [("Cd", r.code)]),
                            *(("AddtlRsnInf", ctx.text("status.info", i, 210)) for i in r.info),
                        ],
                    )
                    for r in s.rejections
                ],
            )
        ]
    d = s.details
    details = None
    if d is not None:
        details = [
            ("AcctOwnr", _owner_spec(d.owner_bic, d.owner_lei)),
            ("SfkpgAcct", _account_spec(ctx, d.account)),
            (
                "FinInstrmId",
                [("ISIN", d.isin), ("Desc", ctx.text("security.description", d.description, 140))],
            ),
            ("SttlmQty", [("Qty", [("FaceAmt", str(d.face_amount))])]),
            ("SttlmAmt", _cash_spec(d.cash)),
            ("SttlmDt", _date_spec(d.settlement_date)),
            ("SctiesMvmntTp", d.movement),
            ("Pmt", d.payment),
            ("SttlmParams", [("SctiesTxTp", [("Cd", d.transaction_type)])]),
        ]
    return "SctiesSttlmTxStsAdvc", [
        (
            "TxId",
            [
                ("AcctOwnrTxId", s.owner_tx_id),
                ("AcctSvcrTxId", s.servicer_tx_id),
                ("MktInfrstrctrTxId", s.infrastructure_tx_id),
            ],
        ),
        ("PrcgSts", processing),
        ("TxDtls", details),
    ]


def decode_confirmation(ctx: DecodeContext) -> SecuritiesConfirmation:
    root = one(ctx.msg.doc_map, "SctiesSttlmTxConf")
    ids, trade = one(root, "TxIdDtls"), one(root, "TradDtls")
    qty = one(root, "QtyAndAcctDtls")
    return SecuritiesConfirmation(
        owner_tx_id=txt(ids, "AcctOwnrTxId") or "",
        servicer_tx_id=txt(ids, "AcctSvcrTxId"),
        infrastructure_tx_id=txt(ids, "MktInfrstrctrTxId"),
        movement=cast(Movement, txt(ids, "SctiesMvmntTp")),
        payment=cast(PaymentType, txt(ids, "Pmt")),
        trade_date=_date(trade, "TradDt"),
        settlement_date=_date(trade, "SttlmDt"),
        effective_settlement_date=_date(trade, "FctvSttlmDt") or "",
        isin=txt(root, "FinInstrmId", "ISIN") or "",
        description=txt(root, "FinInstrmId", "Desc"),
        face_amount=_face(one(qty, "SttldQty")),
        owner_bic=txt(qty, "AcctOwnr", "Id", "AnyBIC"),
        owner_lei=txt(qty, "AcctOwnr", "LEI"),
        account=_account(one(qty, "SfkpgAcct")) or SecuritiesAccount(""),
        transaction_type=txt(root, "SttlmParams", "SctiesTxTp", "Cd") or "TRAD",
        settled_cash=_cash(one(root, "SttldAmt")),
    )


def encode_confirmation(ctx: EncodeContext, c: SecuritiesConfirmation) -> tuple[str, Spec]:
    return "SctiesSttlmTxConf", [
        (
            "TxIdDtls",
            [
                ("AcctOwnrTxId", c.owner_tx_id),
                ("AcctSvcrTxId", c.servicer_tx_id),
                ("MktInfrstrctrTxId", c.infrastructure_tx_id),
                ("SctiesMvmntTp", c.movement),
                ("Pmt", c.payment),
            ],
        ),
        (
            "TradDtls",
            [
                ("TradDt", _date_spec(c.trade_date)),
                ("SttlmDt", _date_spec(c.settlement_date)),
                ("FctvSttlmDt", _date_spec(c.effective_settlement_date)),
            ],
        ),
        (
            "FinInstrmId",
            [("ISIN", c.isin), ("Desc", ctx.text("security.description", c.description, 140))],
        ),
        (
            "QtyAndAcctDtls",
            [
                ("SttldQty", [("Qty", [("FaceAmt", str(c.face_amount))])]),
                ("AcctOwnr", _owner_spec(c.owner_bic, c.owner_lei)),
                ("SfkpgAcct", _account_spec(ctx, c.account)),
            ],
        ),
        ("SttlmParams", [("SctiesTxTp", [("Cd", c.transaction_type)])]),
        ("SttldAmt", _cash_spec(c.settled_cash)),
    ]
