"""sese.024: securities settlement status advice, back to the instruction's owner."""

from __future__ import annotations

from collections.abc import Callable

from gateway.canonical import Business, SecuritiesStatus
from gateway.codec import securities
from gateway.codec.context import EncodeContext
from gateway.flows import securities as securities_flows
from gateway.iso20022.tree import Spec
from gateway.messages import Get, MessageType


def securities_answer_transactions(
    family: str,
) -> Callable[[Get], tuple[tuple[str, ...], str | None]]:
    """An answer on a securities instruction, keyed by what it reports on and its own id."""

    def transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
        correlation = get("tx_id")
        return (f"{family}:{correlation}:{get('svc_id') or '-'}",), correlation

    return transactions


def _encode(ctx: EncodeContext, body: Business, msg_id: str, created: str) -> tuple[str, Spec]:
    assert isinstance(body, SecuritiesStatus)
    return securities.encode_status(ctx, body)


TYPE: MessageType = MessageType(
    msg_def="sese.024.001.10",
    title="securities settlement status",
    root="SctiesSttlmTxStsAdvc",
    decode=securities.decode_status,
    encode=_encode,
    matches=lambda body: isinstance(body, SecuritiesStatus),
    paths={"tx_id": "TxId/AcctOwnrTxId", "svc_id": "TxId/AcctSvcrTxId"},
    transactions=securities_answer_transactions("sese.024"),
    answers=True,
    sender="original_receiver",
    flow=securities_flows.answer,
)
