"""A settled cycle's debit and credit notifications: camt.054, one per participant whose net
position moves, each in its participant's dialect.

Built at the close from the frozen cycle alone, like the statements, with ids derived from
cycle and participant (a close redone after a crash gives the same bytes); the store keeps them
beside the cycle and queues them in the transaction that records its settlement, so a
participant is told of a booking only once the RTGS has made it, and never of a cycle that
failed. `notifications.detail = "payments"` lists, under the net entry, every obligation
behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from gateway.canonical import CycleNotification, Money, NotifiedObligation, Obligation
from gateway.charset import CharsetPolicy
from gateway.config import Config
from gateway.directory import Directory
from gateway.iso20022.builders import iso_datetime
from gateway.iso20022.ids import derive_id
from gateway.iso20022.profiles import ProfileSet
from gateway.settlement.netting import Netting, from_minor
from gateway.settlement.statement import issued_to, participant_of
from gateway.sides import Side


def behind_each(obligations: Iterable[Obligation]) -> dict[str, list[NotifiedObligation]]:
    """Participant -> the obligations it paid or received, as its notification lists them,
    in the order given (the order they were booked)."""
    out: dict[str, list[NotifiedObligation]] = {}
    for o in obligations:
        out.setdefault(o.payer, []).append(
            NotifiedObligation(o.reference, o.amount, "DBIT", o.payee)
        )
        out.setdefault(o.payee, []).append(
            NotifiedObligation(o.reference, o.amount, "CRDT", o.payer)
        )
    return out


def notifications(
    netting: Netting,
    cycle: str,
    cut_off: datetime,
    reference: str | None,
    config: Config,
    directory: Directory,
    charset: CharsetPolicy,
    profiles: Mapping[Side, ProfileSet],
    details: Mapping[str, list[NotifiedObligation]] | None = None,
) -> list[tuple[str, Side, bytes]]:
    """(participant, its side, camt.054 in the gateway's envelope) for every participant whose
    position moves, in participant order. `details`: the obligations behind each entry
    (`behind_each`), when they are to be listed."""
    currency = netting.currency
    created = iso_datetime(cut_off)
    issuing = (config, directory, charset, profiles)
    out = []
    for bic, units in sorted(netting.positions.items()):
        if units == 0:
            continue  # nothing booked on its account: nothing to notify
        participant = participant_of(directory, cycle, bic)
        info = f"Net settlement of cycle {cycle}"
        if reference:
            info += f"; settlement instruction {reference}"
        msg_id = derive_id("GWN", cycle, bic)
        body = CycleNotification(
            msg_id=msg_id,
            created=created,
            notification_id=derive_id("NT", cycle, bic),
            cycle=cycle,
            participant=bic,
            name=participant.name,
            account=participant.settlement_account,
            amount=Money(from_minor(abs(units), currency), currency),
            direction="DBIT" if units < 0 else "CRDT",
            booked=cut_off.date().isoformat(),
            reference=reference,
            info=info,
            details=tuple(details.get(bic, ())) if details is not None else (),
        )
        biz_msg_idr = derive_id("GWK", cycle, bic)
        out.append(issued_to(body, participant, msg_id, biz_msg_idr, cut_off, *issuing))
    return out
