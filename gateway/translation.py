"""One inbound message in, one outbound message out: the offline core the pipeline calls.

read (hardened) -> validate against the source dialect's profile -> idempotency keys ->
translate to the other side; any `MessageError` becomes the reject for the source side.

The document mapping is a pass-through with a new header for now: the identifier, character
set and Bond Connect mapping between the dialects is the translation issue's work, and until
it lands the output is not validated against the target profile (it would not pass: the two
dialects identify agents differently).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from gateway.clock import Clock, now_utc8
from gateway.config import Config, other_side
from gateway.iso20022 import errors
from gateway.iso20022.builders import Party, RejectContext, build_header, build_reject, envelope
from gateway.iso20022.ids import derive_id
from gateway.iso20022.keys import IdempotencyKeys, extract_keys
from gateway.iso20022.profiles import SIDES, ProfileSet, Side
from gateway.iso20022.reader import BusinessMessage, read_message


@dataclass(frozen=True)
class Outcome:
    """Either a translation for the other side, or a reject for the source side."""

    accepted: bool
    message: bytes
    destination: Side  # whose outbound topic `message` goes to
    msg_def: str | None
    keys: IdempotencyKeys | None
    error: errors.MessageError | None


class Translator:
    def __init__(self, config: Config, clock: Clock = now_utc8) -> None:
        self.config = config
        self.clock = clock
        self.profiles = {side: ProfileSet(side, config.schemas_path) for side in SIDES}

    def process(self, data: bytes, source: Side) -> Outcome:
        msg: BusinessMessage | None = None
        try:
            msg = read_message(data, max_bytes=self.config.gateway.max_message_bytes)
            self.profiles[source].validate(msg)
            keys = extract_keys(msg)
            return Outcome(
                True,
                self._translate(msg, keys, source),
                other_side(source),
                msg.msg_def,
                keys,
                None,
            )
        except errors.MessageError as exc:
            return self.reject(exc, source, msg)

    def reject(
        self, error: errors.MessageError, source: Side, msg: BusinessMessage | None = None
    ) -> Outcome:
        side = self.config.side(source)
        ctx = RejectContext(
            side=source,
            gateway=Party(self.config.gateway.bic),
            fallback_to=Party(side.system_bic),
            created=self.clock(),
            biz_svc=side.biz_svc,
        )
        sese_tx = msg.doc_text("SctiesSttlmTxInstr/TxId") if msg is not None else None
        reject = build_reject(error, ctx, sese_tx_id=sese_tx)
        return Outcome(False, reject, source, msg.msg_def if msg else None, None, error)

    def _translate(self, msg: BusinessMessage, keys: IdempotencyKeys, source: Side) -> bytes:
        target = self.config.side(other_side(source))
        header = build_header(
            fr=Party(self.config.gateway.bic),
            to=Party(target.system_bic),
            biz_msg_idr=derive_id("GW", keys.message),
            msg_def=msg.msg_def,
            created=self.clock(),
            biz_svc=target.biz_svc,
        )
        return envelope(header, copy.deepcopy(msg.document))
