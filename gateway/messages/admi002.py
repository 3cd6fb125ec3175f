"""admi.002: message reject, translated back to the sender of the message it rejects."""

from __future__ import annotations

from gateway.canonical import Business, MessageReject
from gateway.codec import admin
from gateway.codec.context import EncodeContext
from gateway.flows import answers
from gateway.iso20022.tree import Spec
from gateway.messages import MessageType


def _encode(ctx: EncodeContext, body: Business, msg_id: str, created: str) -> tuple[str, Spec]:
    assert isinstance(body, MessageReject)
    return admin.encode_reject(ctx, body)  # an admi.002 has no group header of its own


TYPE: MessageType = MessageType(
    msg_def="admi.002.001.01",
    title="message reject",
    root="admi.002.001.01",
    decode=admin.decode_reject,
    encode=_encode,
    matches=lambda body: isinstance(body, MessageReject),
    paths={"ref": "RltdRef/Ref"},
    answer_refs=("RltdRef/Ref",),
    answers=True,
    sender="original_receiver",
    flow=answers.message_reject,
)
