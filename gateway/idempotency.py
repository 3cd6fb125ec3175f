"""Idempotency keys (docs/domain.md, 'Idempotency keys').

- message level: (Fr BIC, BizMsgIdr) from the AppHdr; for a bare Document, the group level
  (instructing agent, MsgId);
- transaction level: the UETR for payments; (account owner, TxId) for sese.023; status reports
  and returns are keyed by what they report on, so one status is applied once.
The fingerprint tells a resend of the same message (PssblDplct) from a different message
reusing a key (DU01): it hashes the canonical form of the Document only, since a resend carries
a new header.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lxml import etree

from gateway.iso20022.reader import BusinessMessage
from gateway.messages.registry import message_type


@dataclass(frozen=True)
class IdempotencyKeys:
    message: str
    transactions: tuple[str, ...]
    correlation: str | None  # what ties it to other messages: UETR, original UETR, TxId
    possible_duplicate: bool
    # Claims its decision looks at without making them (a second cancellation request: its
    # payment's resolution, answered again).
    outcomes: tuple[str, ...] = ()
    # What a request that reads state asks about: "payment:<UETR>", "account:<BIC>:<cycle>"
    # (gateway/messages/: `asks`), loaded from the store before it is decided.
    asks: tuple[str, ...] = ()


def extract_keys(msg: BusinessMessage) -> IdempotencyKeys:
    kind = message_type(msg.msg_def)

    def get(name: str) -> str | None:
        path = kind.path(name)
        return msg.doc_text(path) if path else None

    if msg.header is not None:
        sender = msg.header_text("Fr/FIId/FinInstnId/BICFI") or "-"
        message = f"msg:{sender}:{msg.header_text('BizMsgIdr')}"
    else:
        group = get("msg_id") or get("tx_id") or get("ref") or "-"
        message = f"grp:{get('agent') or '-'}:{group}"
    transactions, correlation = kind.transactions(get)
    flag = msg.header_text("PssblDplct")
    return IdempotencyKeys(
        message,
        transactions,
        correlation,
        flag in ("true", "1"),
        kind.outcomes(get),
        kind.asks(get),
    )


def fingerprint(msg: BusinessMessage) -> str:
    """sha256 of the exclusive canonical form (C14N) of the Document."""
    canonical = etree.tostring(msg.document, method="c14n", exclusive=True)
    return hashlib.sha256(canonical).hexdigest()
