"""The registered message types, and everything derived from them."""

from __future__ import annotations

from pathlib import Path

from gateway.canonical import Business
from gateway.codec.context import DecodeContext, EncodeContext
from gateway.iso20022.namespaces import HEAD, ns
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.tree import render_text
from gateway.messages import (
    MessageType,
    admi002,
    camt029,
    camt052,
    camt053,
    camt054,
    camt056,
    camt060,
    pacs002,
    pacs004,
    pacs008,
    pacs009,
    pacs028,
    pacs029,
    sese023,
    sese024,
    sese025,
)
from gateway.sides import Side

TYPES: tuple[MessageType, ...] = (
    pacs008.TYPE,
    pacs009.TYPE,
    pacs002.TYPE,
    pacs004.TYPE,
    pacs029.TYPE,
    pacs028.TYPE,
    camt056.TYPE,
    camt029.TYPE,
    admi002.TYPE,
    sese023.TYPE,
    sese024.TYPE,
    sese025.TYPE,
    camt053.TYPE,
    camt054.TYPE,
    camt060.TYPE,
    camt052.TYPE,
)
BY_DEF: dict[str, MessageType] = {t.msg_def: t for t in TYPES}
BY_FAMILY: dict[str, MessageType] = {t.family: t for t in TYPES}
assert len(BY_DEF) == len(BY_FAMILY) == len(TYPES), "one version per family, each once"

# Document messages the gateway reads and writes (AppHdr is validated alongside each).
DOCUMENT_MESSAGES: tuple[str, ...] = tuple(BY_DEF)
ALL_MESSAGES: tuple[str, ...] = (HEAD, *DOCUMENT_MESSAGES)
CAPPED: frozenset[str] = frozenset(t.msg_def for t in TYPES if t.capped)
ANSWERS: frozenset[str] = frozenset(t.msg_def for t in TYPES if t.answers)
READS_STATE: frozenset[str] = frozenset(t.msg_def for t in TYPES if t.reads_state)
# Where an answer names the gateway's own message, below Document.
ANSWER_REFERENCES: tuple[str, ...] = tuple(
    f"{t.root}/{ref}" for t in TYPES for ref in t.answer_refs
)


def profile_set(side: Side, schemas_dir: Path | None = None) -> ProfileSet:
    """The profiles of `side`'s dialect for the registered messages."""
    return ProfileSet(side, DOCUMENT_MESSAGES, schemas_dir)


def message_type(msg_def: str) -> MessageType:
    found = BY_DEF.get(msg_def)
    if found is None:
        raise ValueError(f"no registered message type {msg_def}")
    return found


def decode(ctx: DecodeContext) -> Business:
    return message_type(ctx.msg.msg_def).decode(ctx)


def type_of(body: Business) -> MessageType:
    found = [t for t in TYPES if t.encode is not None and t.matches(body)]
    assert len(found) == 1, f"{type(body).__name__} is encoded by {len(found)} types"
    return found[0]


def encode_text(ctx: EncodeContext, body: Business, msg_id: str, created: str) -> tuple[str, str]:
    """(message definition, Document as XML text) of `body` in the context's dialect.

    `msg_id` and `created` are the new message's group identification (for the families that
    have one); everything else comes from `body`.
    """
    kind = type_of(body)
    assert kind.encode is not None
    root, spec = kind.encode(ctx, body, msg_id, created)
    out = [f'<Document xmlns="{ns(kind.msg_def)}">']
    render_text([(root, spec)], out)
    out.append("</Document>")
    return kind.msg_def, "".join(out)
