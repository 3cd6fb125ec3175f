"""Typed errors of the message layer.

Every way a message can fail maps to one of these, and each carries what a reject needs:
the ISO reason code, a one-line description, where in the message it failed (if known) and
whatever identifiers could be recovered. Callers turn a `MessageError` into a reject message;
they never let one escape as a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecoveredIds:
    """Identifiers recovered from a message that failed, for the reject and for correlation."""

    payload_ref: str  # "SHA256:<28 hex>": always available, even for bytes that are not XML
    msg_def: str | None = None
    sender_bic: str | None = None
    biz_msg_idr: str | None = None
    msg_id: str | None = None
    cre_dt_tm: str | None = None
    uetr: str | None = None
    end_to_end_id: str | None = None
    instr_id: str | None = None
    tx_id: str | None = None

    @property
    def reference(self) -> str:
        """The best reference to the original message for admi.002 RltdRef/Ref (Max35Text)."""
        return self.biz_msg_idr or self.msg_id or self.payload_ref


@dataclass
class MessageError(Exception):
    """Base class. `kind` is a short stable token for logs and metrics."""

    detail: str
    location: str | None = None
    ids: RecoveredIds | None = None
    kind: str = field(default="error", init=False)
    code: str = field(default="FF01", init=False)  # ExternalStatusReason1Code
    # "unreadable": answered with admi.002; "refused": readable and valid, answered with pacs.002.
    answer: str = field(default="admi.002", init=False)

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.kind}: {self.detail}{where}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross to and from worker processes; Exception's own pickling would call
        # cls(*args) with no args, which a dataclass exception cannot take.
        return (_rebuild, (type(self), dict(self.__dict__)))


def _rebuild(cls: type[MessageError], state: dict[str, Any]) -> MessageError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    return error


@dataclass
class EmptyMessage(MessageError):
    kind: str = field(default="empty", init=False)


@dataclass
class MessageTooLarge(MessageError):
    kind: str = field(default="too-large", init=False)


@dataclass
class UnsupportedEncoding(MessageError):
    kind: str = field(default="encoding", init=False)


@dataclass
class ForbiddenMarkup(MessageError):
    """DTDs, entity declarations and processing instructions: never accepted (XXE, bombs)."""

    kind: str = field(default="forbidden-markup", init=False)


@dataclass
class NotWellFormed(MessageError):
    kind: str = field(default="not-xml", init=False)


@dataclass
class UnknownMessage(MessageError):
    """Well-formed XML that is not a supported ISO 20022 business message."""

    kind: str = field(default="unknown-message", init=False)


@dataclass
class HeaderMismatch(MessageError):
    kind: str = field(default="header-mismatch", init=False)


@dataclass
class SchemaViolation(MessageError):
    kind: str = field(default="schema", init=False)


@dataclass
class Refusal(MessageError):
    """A readable, valid message the gateway refuses for a business reason (pacs.002 RJCT)."""

    reason: str = "NARR"
    kind: str = field(default="refused", init=False)
    answer: str = field(default="pacs.002", init=False)

    def __post_init__(self) -> None:
        self.code = self.reason


@dataclass
class SignatureRefused(Refusal):
    """A message whose signature does not prove who sent it (ISO reason codes DS..)."""

    kind: str = field(default="signature", init=False)


@dataclass
class Uncorrelated(Refusal):
    """A status, return or answer whose original the gateway does not know (yet: it may have
    overtaken the original, so the pipeline retries it before giving up)."""

    kind: str = field(default="uncorrelated", init=False)


@dataclass
class InternalError(MessageError):
    """The gateway itself failed on this record (a defect, not the sender's fault): answered
    with admi.002 and dead-lettered at once, so it never blocks its partition."""

    kind: str = field(default="internal", init=False)
