"""sese.023: securities settlement instruction (Bond Connect), through the nominee accounts;
a delivery against payment books its cash leg."""

from __future__ import annotations

from gateway.canonical import Business, SecuritiesInstruction
from gateway.codec import securities
from gateway.codec.context import EncodeContext
from gateway.flows import securities as securities_flows
from gateway.iso20022.tree import Spec
from gateway.messages import SESE024, Get, MessageType


def _transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    correlation = get("tx_id")
    return (f"sese:{get('agent') or '-'}:{correlation}",), correlation


def _encode(ctx: EncodeContext, body: Business, msg_id: str, created: str) -> tuple[str, Spec]:
    assert isinstance(body, SecuritiesInstruction)
    return securities.encode_instruction(ctx, body)  # its TxId is its identification


TYPE: MessageType = MessageType(
    msg_def="sese.023.001.09",
    title="securities settlement instruction",
    root="SctiesSttlmTxInstr",
    decode=securities.decode_instruction,
    encode=_encode,
    matches=lambda body: isinstance(body, SecuritiesInstruction),
    paths={"tx_id": "TxId", "agent": "QtyAndAcctDtls/AcctOwnr/Id/AnyBIC"},
    transactions=_transactions,
    capped=True,
    refusal=SESE024,
    sender="instructing",
    flow=securities_flows.instruction,
)
