"""A closed cycle's per-participant statements: camt.053, each in its participant's dialect.

Like the instruction, built from the frozen cycle alone (its netting, totals and recorded
cut-off) with ids derived from cycle and participant, so a close redone after a crash gives
the same bytes. Each is validated against its side's profile before it is queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from gateway.canonical import Business, CycleStatement, Money
from gateway.charset import CharsetPolicy
from gateway.config import Config
from gateway.directory import Directory, Participant
from gateway.iso20022.builders import iso_datetime
from gateway.iso20022.ids import derive_id
from gateway.iso20022.profiles import ProfileSet
from gateway.issuing import issue
from gateway.settlement.netting import Netting, NettingError, from_minor
from gateway.settlement.statement_text import statement_id, statement_info
from gateway.sides import Side


def participant_of(directory: Directory, cycle: str, bic: str) -> Participant:
    """A participant of the cycle, as the directory knows it: a close cannot tell one it
    does not know."""
    participant = directory.participant(bic)
    if participant is None:
        raise NettingError(f"cycle {cycle}: participant {bic} is not in the directory")
    return participant


def issued_to(
    body: Business,
    participant: Participant,
    msg_id: str,
    biz_msg_idr: str,
    cut_off: datetime,
    config: Config,
    directory: Directory,
    charset: CharsetPolicy,
    profiles: Mapping[Side, ProfileSet],
) -> tuple[str, Side, bytes]:
    """`body` as the gateway's message to `participant`, in its side's dialect and profile,
    created at the cycle's cut-off: (participant, its side, the message)."""
    side = participant.side
    data = issue(
        body,
        side=side,
        to=participant.bic,
        msg_id=msg_id,
        biz_msg_idr=biz_msg_idr,
        created=cut_off,
        config=config,
        directory=directory,
        charset=charset,
        profiles=profiles[side],
    ).data
    return participant.bic, side, data


def statements(
    netting: Netting,
    cycle: str,
    opened: datetime | None,
    cut_off: datetime,
    instruction_id: str | None,
    config: Config,
    directory: Directory,
    charset: CharsetPolicy,
    profiles: Mapping[Side, ProfileSet],
) -> list[tuple[str, Side, bytes]]:
    """(participant, its side, camt.053 in the gateway's envelope) for every participant with
    an obligation in the cycle, in participant order."""
    currency = netting.currency
    created = iso_datetime(cut_off)
    issuing = (config, directory, charset, profiles)
    out = []
    for bic, (received_count, received, paid_count, paid) in sorted(netting.totals.items()):
        participant = participant_of(directory, cycle, bic)
        units = netting.positions.get(bic, 0)
        msg_id = derive_id("GWT", cycle, bic)
        body = CycleStatement(
            msg_id=msg_id,
            created=created,
            statement_id=statement_id(cycle, bic),
            cycle=cycle,
            participant=bic,
            name=participant.name,
            account=participant.settlement_account,
            position=Money(from_minor(abs(units), currency), currency),
            direction="DBIT" if units < 0 else "CRDT",
            cut_off_date=cut_off.date().isoformat(),
            received=(received_count, from_minor(received, currency)),
            paid=(paid_count, from_minor(paid, currency)),
            info=statement_info(cycle, instruction_id),
            opened=iso_datetime(opened) if opened is not None else None,
            cut_off=created,
        )
        biz_msg_idr = derive_id("GWR", cycle, bic)
        out.append(issued_to(body, participant, msg_id, biz_msg_idr, cut_off, *issuing))
    return out
