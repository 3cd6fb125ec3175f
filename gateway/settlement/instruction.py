"""A closed cycle's settlement instruction: pacs.029 MultilateralSettlementRequest to the RTGS
(offshore) side.

Built from the cycle's netting alone, with every id derived from the cycle and currency and
the creation time being the recorded cut-off, so building it again after a crash at any step
gives the same bytes: the RTGS can dedupe it, and one cycle never has two different
instructions. Records are in participant order; credits and debits balance by construction
(the netting refuses positions that do not sum to zero).
"""

from __future__ import annotations

from datetime import datetime

from adapters import dialect
from gateway.canonical import Money, MovementRecord, NetSettlement
from gateway.charset import CharsetPolicy
from gateway.codec import encode_text
from gateway.codec.context import EncodeContext
from gateway.config import Config
from gateway.directory import Directory
from gateway.iso20022.builders import Party, envelope_text, header_spec, iso_datetime
from gateway.iso20022.ids import derive_id
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from gateway.settlement.netting import Netting, NettingError, from_minor


def settlement_request(
    netting: Netting,
    cycle: str,
    cut_off: datetime,
    config: Config,
    directory: Directory,
    charset: CharsetPolicy,
    profiles: ProfileSet | None = None,
) -> bytes | None:
    """The pacs.029 in the gateway's envelope, validated against the offshore profile; None
    when nothing moves (every position is zero)."""
    if not netting.positions:
        return None
    currency = netting.currency
    records = []
    for sequence, (bic, units) in enumerate(netting.positions.items(), start=1):
        participant = directory.participant(bic)
        if participant is None:
            raise NettingError(f"cycle {cycle}: participant {bic} is not in the directory")
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
    rtgs = config.offshore
    ctx = EncodeContext(dialect("offshore"), directory, charset, None)
    msg_def, document = encode_text(ctx, body, msg_id, created)
    header = header_spec(
        fr=Party(config.gateway.bic),
        to=Party(rtgs.system_bic),
        biz_msg_idr=derive_id("GWC", cycle, currency),
        msg_def=msg_def,
        created=cut_off,
        biz_svc=rtgs.biz_svc,
    )
    data = envelope_text(header, document).encode("utf-8")
    # What the gateway issues is held to the same profile as what it accepts.
    (profiles or ProfileSet("offshore")).validate(read_message(data))
    return data
