"""sese.025: securities settlement confirmation, back to the instruction's owner."""

from __future__ import annotations

from gateway.canonical import Business, SecuritiesConfirmation
from gateway.codec import securities
from gateway.codec.context import EncodeContext
from gateway.flows import securities as securities_flows
from gateway.iso20022.tree import Spec
from gateway.messages import MessageType
from gateway.messages.sese024 import securities_answer_transactions


def _encode(ctx: EncodeContext, body: Business, msg_id: str, created: str) -> tuple[str, Spec]:
    assert isinstance(body, SecuritiesConfirmation)
    return securities.encode_confirmation(ctx, body)


TYPE: MessageType = MessageType(
    msg_def="sese.025.001.09",
    title="securities settlement confirmation",
    root="SctiesSttlmTxConf",
    decode=securities.decode_confirmation,
    encode=_encode,
    matches=lambda body: isinstance(body, SecuritiesConfirmation),
    paths={"tx_id": "TxIdDtls/AcctOwnrTxId", "svc_id": "TxIdDtls/AcctSvcrTxId"},
    transactions=securities_answer_transactions("sese.025"),
    answers=True,
    sender="original_receiver",
    flow=securities_flows.answer,
)
