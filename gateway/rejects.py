"""Which reject answers a refused message, and building it: the refused type's own, as its
family declares (`MessageType.refusal`: pacs.002 for payments, sese.024 for securities
instructions, camt.029 for cancellation requests), else an admi.002 (unreadable, invalid, or a
type with no answer of its own). The builders themselves are the ISO layer's
(gateway/iso20022/builders.py); which one answers is the registry's knowledge, so it is chosen
here, from a table, not in the ISO layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from gateway.iso20022 import errors
from gateway.iso20022.builders import (
    RejectContext,
    build_admi002,
    build_camt029,
    build_pacs002_reject,
    build_sese024_reject,
)
from gateway.messages.registry import BY_DEF

ADMI002 = "admi.002.001.01"
# Where a securities instruction names its transaction: its sese.024 reject names it too.
SESE_TX_ID = "SctiesSttlmTxInstr/TxId"


@dataclass(frozen=True)
class Refused:
    """A refusal and what its answer is built from."""

    error: errors.MessageError
    ctx: RejectContext
    sese_tx_id: str | None = None  # a securities instruction's TxId, if it was read
    document: etree._Element | None = None  # the refused message's Document, if it was read


def reject_definition(
    error: errors.MessageError, *, sese_tx_id: str | None = None, readable: bool = True
) -> str:
    """Which reject answers an error: the refused type's own, if it can be built, else
    admi.002."""
    msg_def = error.ids.msg_def if error.ids else None
    if error.answer == "admi.002" or msg_def not in BY_DEF:
        return ADMI002  # unreadable, invalid, or nothing the gateway reads
    refusal = BY_DEF[msg_def].refusal
    if refusal == "sese.024.001.10" and not sese_tx_id:
        return ADMI002  # a sese.024 names the instruction's TxId: none, no sese.024
    if refusal == "camt.029.001.09" and not readable:
        return ADMI002  # a camt.029 answers from the request: not read, no camt.029
    return refusal


def _camt029(r: Refused) -> bytes:
    assert r.document is not None and r.error.ids is not None
    status = "PDCR" if r.error.code == "PDCR" else "RJCR"
    reason = None if status == "PDCR" else r.error.code
    return build_camt029(r.ctx, r.error.ids, r.document, status, reason, r.error.detail)


def _sese024(r: Refused) -> bytes:
    assert r.sese_tx_id is not None
    return build_sese024_reject(r.error, r.ctx, r.sese_tx_id)


# Every reject definition a type may declare as its refusal, and how it is built.
BUILDERS: dict[str, Callable[[Refused], bytes]] = {
    ADMI002: lambda r: build_admi002(r.error, r.ctx),
    "pacs.002.001.10": lambda r: build_pacs002_reject(r.error, r.ctx),
    "sese.024.001.10": _sese024,
    "camt.029.001.09": _camt029,
}
assert {t.refusal for t in BY_DEF.values()} <= set(BUILDERS), "a refusal nobody builds"


def build_reject(refused: Refused) -> tuple[str, bytes]:
    """The reject `reject_definition` chooses: (its definition, the message)."""
    kind = reject_definition(
        refused.error, sese_tx_id=refused.sese_tx_id, readable=refused.document is not None
    )
    return kind, BUILDERS[kind](refused)
