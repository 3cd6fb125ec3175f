"""The flows of Bond Connect: an instruction (by its account owner, held through the nominee
account of the market where it settles; a DVP books its cash leg) and its answers (by that
market's depository, back to the owner)."""

from __future__ import annotations

import dataclasses

from gateway.adapters import dialect
from gateway.canonical import (
    Business,
    CashLeg,
    Obligation,
    SecuritiesAccount,
    SecuritiesConfirmation,
    SecuritiesInstruction,
    SecuritiesStatus,
    SettlementParties,
    SettlementParty,
)
from gateway.correlations import Correlation, reference, securities_key
from gateway.flows.base import Flow, Result


def instruction(flow: Flow, body: Business) -> Result:
    s = body
    assert isinstance(s, SecuritiesInstruction), type(s).__name__
    ctx, header, source, target, directory = (
        flow.ctx,
        flow.header,
        flow.source,
        flow.target,
        flow.directory,
    )
    direction = dialect(source).securities_flow
    owner = directory.participant(s.owner_bic)
    if owner is None or owner.side != source:
        raise ctx.refuse("RC01", f"account owner {s.owner_bic} is not a {source} participant")
    # The account owner instructs on its account, and no one else.
    entitled = flow.authorise(owner.bic, owner.bic)
    own_side, other = (
        (s.receiving, s.delivering) if s.movement == "RECE" else (s.delivering, s.receiving)
    )
    # The depository where this trade settles in the target market, named by either leg.
    market = next(
        (
            blk.depository
            for blk in (own_side, other)
            if blk is not None
            and (dep := directory.depositories.get(blk.depository)) is not None
            and dep.side == target
        ),
        None,
    )
    nominee = directory.nominee(direction, market) if market else None
    if nominee is None or market is None:
        raise ctx.refuse(
            "RC01",
            f"no {direction} nominee account for a {target} depository in "
            "this instruction (delivering/receiving Dpstry)",
        )
    settlement_date, notes = flow.settlement_date(s.settlement_date)
    obligations = []
    if s.payment == "APMT":
        obligations.append(_cash_leg(flow, s, other))
    beneficial = SettlementParty(s.owner_bic, s.owner_lei, s.account)
    moved = SettlementParties(
        market,
        SettlementParty(nominee.owner_bic, None, SecuritiesAccount(nominee.account)),
        beneficial,
    )
    translated = dataclasses.replace(
        s,
        settlement_date=settlement_date,
        owner_bic=nominee.owner_bic,
        owner_lei=None,
        account=SecuritiesAccount(nominee.account),
        receiving=moved if s.movement == "RECE" else s.receiving,
        delivering=moved if s.movement == "DELI" else s.delivering,
    )
    notes.append(
        f"{direction}: account owner {s.owner_bic} held through nominee "
        f"{nominee.owner_bic} account {nominee.account} at {market}"
    )
    correlation = Correlation(
        key=securities_key(s.tx_id),
        source=source,
        sender_bic=header.sender if header else s.owner_bic,
        biz_msg_idr=header.biz_msg_idr if header else None,
        msg_id=s.tx_id,
        msg_def=ctx.msg.msg_def,
        created=None,
        outbound_biz_msg_idr="",
        outbound_msg_id="",
        owner_bic=s.owner_bic,
        owner_lei=s.owner_lei,
        account=s.account,
        instructing=owner.bic,
        receiver=market,  # the depository where it settles answers it
    )
    return Result(
        translated,
        obligations=obligations,
        correlation=correlation,
        notes=notes,
        authorised=entitled,
    )


def _cash_leg(
    flow: Flow, s: SecuritiesInstruction, counterparty_block: SettlementParties | None
) -> Obligation:
    ctx, directory = flow.ctx, flow.directory
    cash: CashLeg | None = s.cash
    if cash is None:
        raise ctx.refuse(
            "AM02",
            "a delivery against payment (Pmt APMT) needs SttlmAmt: its "
            "cash leg is settled in the net cycle",
        )
    counterparty = counterparty_block.party1 if counterparty_block else None
    if counterparty is None or directory.participant(counterparty.bic) is None:
        raise ctx.refuse(
            "RC01",
            "the counterparty (Pty1 of the other leg) of a delivery "
            "against payment must be a participant: it pays or is paid",
        )
    payer, payee = (
        (s.owner_bic, counterparty.bic)
        if cash.direction == "DBIT"
        else (counterparty.bic, s.owner_bic)
    )
    return Obligation(payer, payee, cash.amount, securities_key(s.tx_id))


def answer(flow: Flow, body: Business) -> Result:
    assert isinstance(body, SecuritiesStatus | SecuritiesConfirmation), type(body).__name__
    known, target = flow.known, flow.target
    entry = known.find(securities_key(body.owner_tx_id))
    if entry is None or entry.source != target:
        raise flow.uncorrelated(
            f"no securities instruction {body.owner_tx_id} was sent by the gateway to this side",
        )
    entitled = flow.authorise(entry.receiver)
    account = entry.account or SecuritiesAccount("")
    restored: Business
    if isinstance(body, SecuritiesConfirmation):
        restored = dataclasses.replace(
            body, owner_bic=entry.owner_bic, owner_lei=entry.owner_lei, account=account
        )
    else:
        details = body.details
        if details is not None:
            details = dataclasses.replace(
                details, owner_bic=entry.owner_bic, owner_lei=entry.owner_lei, account=account
            )
        restored = dataclasses.replace(body, details=details)
    cancels = [reference(entry)] if isinstance(body, SecuritiesStatus) and not body.accepted else []
    return Result(restored, to=entry.sender_bic, cancels=cancels, authorised=entitled)


# -- cancellations ------------------------------------------------------------------------
