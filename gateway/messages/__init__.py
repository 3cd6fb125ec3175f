"""Message types as plug-ins: each family is one module here that declares everything about its
types, and `registry.py` lists them. Every per-type table of the gateway is derived from the
registry: the definitions the reader accepts and the profiles loaded (`iso20022.profiles`), the
idempotency keys (`idempotency`), the references an answer names (`reading`), which reject
answers a refusal (`iso20022.builders`), which messages are capped (`pipeline`), decoding and
encoding (`registry.decode`, `registry.encode_text`), and which are carried as documents
(`translation`). Adding a type is one module here, its profiles in `schemas/` and its samples
in `samples/`; `tests/test_registry.py` checks each registered type has them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.authorisation import Sender
from gateway.canonical import Business
from gateway.codec.context import DecodeContext, EncodeContext
from gateway.iso20022.tree import Spec

if TYPE_CHECKING:
    from gateway.flows.base import FlowFunction

Get = Callable[[str], "str | None"]  # the text at one of the type's named paths
ADMI002 = "admi.002.001.01"
CAMT029 = "camt.029.001.09"
PACS002 = "pacs.002.001.10"
SESE024 = "sese.024.001.10"


def _no_transactions(get: Get) -> tuple[tuple[str, ...], str | None]:
    return (), None


@dataclass(frozen=True)
class MessageType:
    msg_def: str  # e.g. pacs.008.001.08
    title: str  # what a partner calls it, in errors: "net settlement request"
    root: str  # the Document's one child, e.g. FIToFICstmrCdtTrf
    decode: Callable[[DecodeContext], Business]
    # (context, body, new MsgId, new CreDtTm) -> (root, spec); None: never encoded by us
    encode: Callable[[EncodeContext, Business, str, str], tuple[str, Spec]] | None
    # Does this type encode `body`? (pacs.008 and pacs.009 share the Payment model.)
    matches: Callable[[Business], bool]
    # Who may send it (`authorisation.Sender`): every type says, there is no default.
    sender: Sender
    # What the gateway decides about one of it, accepted from a side (gateway/flows/): its
    # checks, authorisation, bookings and correlations. None: issued by the gateway only.
    flow: FlowFunction | None = None
    # Named paths below the root: msg_id, agent (the instructing party), and what the
    # transaction keys and correlation read (docs/domain.md, "Idempotency keys").
    paths: Mapping[str, str] = field(default_factory=dict)
    # (transaction keys, correlation) from the named paths.
    transactions: Callable[[Get], tuple[tuple[str, ...], str | None]] = _no_transactions
    # Paths (below the root) where an answer of this type names the gateway's own message.
    answer_refs: tuple[str, ...] = ()
    # An answer to an original (a status, a return, a reject): it means something only with
    # its original's correlation, so it is translated when its batch is decided, once, and
    # never ahead of the state (gateway/reading.py).
    answers: bool = False
    # Its answer reports what the store holds (a status enquiry, a report request): it is
    # decided after the records before it in its batch are committed, as if it came alone
    # (gateway/pipeline.py), with what the store knows of what it `asks` about, from the
    # named paths ("payment:<UETR>", "account:<BIC>:<cycle>").
    reads_state: bool = False
    asks: Callable[[Get], tuple[str, ...]] = lambda get: ()
    # Translated as a document, whole (gateway/carry.py), rather than encoded from the model.
    carried: bool = False
    # Its obligation is held or refused against the payer's net debit cap.
    capped: bool = False
    # The reject that answers a business refusal of it (a reading failure: always admi.002).
    refusal: str = ADMI002
    # The reason a different message reusing one of its transaction keys is refused with:
    # DU01, or PDCR for a second cancellation request of one payment.
    clash: str = "DU01"
    # Claims whose answer a clash on its transaction key is answered with, when one exists
    # (a second cancellation request: the first one's resolution), from the named paths.
    outcomes: Callable[[Get], tuple[str, ...]] = lambda get: ()
    # The codes it carries from ISO's external code sets: path below the root -> the sets
    # (gateway/code_sets.py); a code outside them is refused NARR (the profiles take any
    # code, as the standard does).
    codes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # A carried document's own identification, which the gateway sets when it issues it:
    # (element below the root, its id, its creation time).
    identification: tuple[str, str, str] = ("GrpHdr", "MsgId", "CreDtTm")

    @property
    def issued_by_gateway(self) -> bool:
        """Issued by the gateway only: a side that sends one is refused (AG01)."""
        return self.sender == "gateway"

    @property
    def family(self) -> str:
        return self.msg_def[:8]

    def path(self, name: str) -> str | None:
        """The full path below Document of a named path, or None."""
        relative = self.paths.get(name)
        return f"{self.root}/{relative}" if relative else None
