"""A closed cycle's per-participant statements: camt.053, each in its participant's dialect.

Like the instruction, built from the frozen cycle alone (its netting, totals and recorded
cut-off) with ids derived from cycle and participant, so a close redone after a crash gives
the same bytes. Each is validated against its side's profile before it is queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from gateway.canonical import CycleStatement, Money
from gateway.charset import CharsetPolicy
from gateway.config import Config
from gateway.directory import Directory
from gateway.iso20022.builders import iso_datetime
from gateway.iso20022.ids import derive_id
from gateway.iso20022.profiles import ProfileSet
from gateway.issuing import issue
from gateway.settlement.netting import Netting, NettingError, from_minor
from gateway.sides import Side


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
    out = []
    for bic, (received_count, received, paid_count, paid) in sorted(netting.totals.items()):
        participant = directory.participant(bic)
        if participant is None:
            raise NettingError(f"cycle {cycle}: participant {bic} is not in the directory")
        units = netting.positions.get(bic, 0)
        msg_id = derive_id("GWT", cycle, bic)
        info = f"Settlement cycle {cycle}"
        if instruction_id:
            info += f"; settlement request {instruction_id}"
        body = CycleStatement(
            msg_id=msg_id,
            created=created,
            statement_id=derive_id("ST", cycle, bic),
            cycle=cycle,
            participant=bic,
            name=participant.name,
            account=participant.settlement_account,
            position=Money(from_minor(abs(units), currency), currency),
            direction="DBIT" if units < 0 else "CRDT",
            cut_off_date=cut_off.date().isoformat(),
            received=(received_count, from_minor(received, currency)),
            paid=(paid_count, from_minor(paid, currency)),
            info=info,
            opened=iso_datetime(opened) if opened is not None else None,
            cut_off=created,
        )
        side = participant.side
        data = issue(
            body,
            side=side,
            to=bic,
            msg_id=msg_id,
            biz_msg_idr=derive_id("GWR", cycle, bic),
            created=cut_off,
            config=config,
            directory=directory,
            charset=charset,
            profiles=profiles[side],
        ).data
        out.append((bic, side, data))
    return out
