"""A closed cycle's settlement instructions to the RTGS side: one pacs.029
MultilateralSettlementRequest, or (settlement.instruction = "pacs.009") one pacs.009 per net
position.

Built from the cycle's netting alone, with every id derived from the cycle and currency and
the creation time being the recorded cut-off, so building it again after a crash at any step
gives the same bytes: the RTGS can dedupe it, and one cycle never has two different
instructions. Records are in participant order; credits and debits balance by construction
(the netting refuses positions that do not sum to zero).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.canonical import Account, Agent, Money, MovementRecord, NetSettlement, Payment
from gateway.charset import CharsetPolicy
from gateway.config import Config
from gateway.directory import Directory
from gateway.iso20022.builders import iso_datetime
from gateway.iso20022.ids import derive_id
from gateway.iso20022.profiles import ProfileSet
from gateway.issuing import issue
from gateway.messages.registry import profile_set
from gateway.settlement.netting import Netting, NettingError, from_minor
from gateway.settlement.statement import participant_of


@dataclass(frozen=True)
class Instructed:
    """A settlement instruction as issued: the ids it was given (derived from the cycle, and
    the participant for a transfer) and its bytes. Whoever records it needs not read it."""

    msg_def: str
    msg_id: str
    biz_msg_idr: str
    data: bytes


def settlement_request(
    netting: Netting,
    cycle: str,
    cut_off: datetime,
    config: Config,
    directory: Directory,
    charset: CharsetPolicy,
    profiles: ProfileSet | None = None,
) -> Instructed | None:
    """The pacs.029 in the gateway's envelope, to the RTGS side (settlement.rtgs_side) and
    validated against its profile; None when nothing moves (every position is zero)."""
    if not netting.positions:
        return None
    currency = netting.currency
    records = []
    for sequence, (bic, units) in enumerate(netting.positions.items(), start=1):
        participant = participant_of(directory, cycle, bic)
        records.append(
            MovementRecord(
                id=derive_id("MR", cycle, currency, bic),
                sequence=sequence,
                amount=Money(from_minor(abs(units), currency), currency),
                direction="CRDT" if units > 0 else "DBIT",
                participant=bic,
                account=participant.settlement_account,
            )
        )
    created = iso_datetime(cut_off)
    msg_id = derive_id("GWS", cycle, currency)
    body = NetSettlement(
        msg_id=msg_id,
        created=created,
        instruction_id=derive_id("SI", cycle, currency),
        cycle=cycle,
        records=tuple(records),
        control_sum=sum((r.amount.amount for r in records), start=from_minor(0, currency)),
    )
    biz_msg_idr = derive_id("GWC", cycle, currency)
    return _instructed(body, msg_id, biz_msg_idr, cut_off, config, directory, charset, profiles)


def _instructed(
    body: NetSettlement | Payment,
    msg_id: str,
    biz_msg_idr: str,
    cut_off: datetime,
    config: Config,
    directory: Directory,
    charset: CharsetPolicy,
    profiles: ProfileSet | None,
) -> Instructed:
    """`body` as the gateway's instruction to the RTGS side, validated against its profile."""
    rtgs = config.settlement.rtgs_side
    issued = issue(
        body,
        side=rtgs,
        msg_id=msg_id,
        biz_msg_idr=biz_msg_idr,
        created=cut_off,
        config=config,
        directory=directory,
        charset=charset,
        profiles=profiles or profile_set(rtgs),
    )
    return Instructed(issued.msg_def, msg_id, biz_msg_idr, issued.data)


def settlement_transfers(
    netting: Netting,
    cycle: str,
    cut_off: datetime,
    config: Config,
    directory: Directory,
    charset: CharsetPolicy,
    profiles: ProfileSet | None = None,
) -> list[tuple[str, Instructed]]:
    """The cycle as one pacs.009 per non-zero net position (participant order): a net debit
    is paid by the participant to the settlement agent, a net credit by the agent to the
    participant. (participant, the transfer in the gateway's envelope), each validated
    against the RTGS side's profile; every id derived from cycle and participant, the UETR
    included, so a close redone gives the same bytes."""
    agent_bic = config.settlement.agent_bic
    agent = directory.participant(agent_bic)
    if agent is None:
        raise NettingError(f"settlement.agent_bic {agent_bic} is not in the directory")
    currency = netting.currency
    created = iso_datetime(cut_off)
    reference = derive_id("SI", cycle, currency)
    out = []
    for bic, units in netting.positions.items():
        participant = participant_of(directory, cycle, bic)
        payer, payee = (participant, agent) if units < 0 else (agent, participant)
        msg_id = derive_id("GWP", cycle, bic)
        body = Payment(
            kind="institution",
            msg_id=msg_id,
            created=created,
            settlement_method="CLRG",
            end_to_end_id=reference,
            uetr=str(
                uuid.UUID(bytes=hashlib.sha256(f"{cycle}:{bic}".encode()).digest()[:16], version=4)
            ),
            amount=Money(from_minor(abs(units), currency), currency),
            settlement_date=cut_off.date().isoformat(),
            instructing=Agent(payer.bic),
            instructed=Agent(payee.bic),
            debtor=Agent(payer.bic),
            creditor=Agent(payee.bic),
            instr_id=derive_id("SI", cycle, bic),
            tx_id=derive_id("TX", cycle, bic),
            debtor_account=Account(payer.settlement_account),
            creditor_account=Account(payee.settlement_account),
        )
        biz_msg_idr = derive_id("GWQ", cycle, bic)
        instructed = _instructed(
            body, msg_id, biz_msg_idr, cut_off, config, directory, charset, profiles
        )
        out.append((bic, instructed))
    return out
