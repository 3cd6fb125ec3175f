"""The CPU-heavy part of a batch, done ahead of the state store: read, validate, key, and
translate each record as if it were new.

Nothing here needs the state store, so it runs in worker processes (`gateway.workers` > 0:
several cores, no GIL between them) or in a thread of the service (0). An answer (status,
return, reject: a type declared `answers`) means nothing without its original's correlation,
which workers do not know: it is read and keyed here, and translated once, when its batch is
decided (gateway/decisions.py). For the rest (payments, securities instructions) the
translation made here is the one published, if the record turns out to be new.

Each record is read once: parsed, validated and its signature checked here, and the decision
uses this reading. In a thread of the service the message read travels with it. A worker
process cannot hand over an lxml tree (it does not pickle): the rest of the reading is plain
data, and the service parses the bytes again, without validating or verifying them a second
time, only for a decision that needs the message (an answer, a clash).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from dataclasses import dataclass

from gateway.config import Config
from gateway.correlations import NoCorrelations, keys_of
from gateway.idempotency import IdempotencyKeys, extract_keys, fingerprint
from gateway.iso20022 import errors
from gateway.iso20022.reader import BusinessMessage, message_ids
from gateway.messages.registry import ANSWER_REFERENCES, ANSWERS, CAPPED, READS_STATE
from gateway.rejects import SESE_TX_ID
from gateway.sides import Side
from gateway.translation import Outcome, Translator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapRefusal:
    """What the refusal of a capped payment for its payer's cap answers from: kept by the
    store while the payment waits (as JSON), so that refusal never reads the message again."""

    key: str  # the payment's idempotency key
    ids: errors.RecoveredIds
    sese_tx_id: str | None  # a securities instruction's TxId: its refusal is a sese.024

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"key": self.key, "ids": dataclasses.asdict(self.ids), "sese_tx_id": self.sese_tx_id}
        ).encode()

    @classmethod
    def of(cls, msg: BusinessMessage, key: str) -> CapRefusal:
        """What `msg`, read and keyed `key`, would be refused from."""
        return cls(key, message_ids(msg), msg.doc_text(SESE_TX_ID))

    @classmethod
    def from_bytes(cls, data: bytes) -> CapRefusal:
        kept = json.loads(data)
        return cls(kept["key"], errors.RecoveredIds(**kept["ids"]), kept["sese_tx_id"])


@dataclass(frozen=True)
class Reading:
    """What one record is, before the state is consulted."""

    keys: IdempotencyKeys | None = None
    fingerprint: str = ""
    msg_def: str = ""  # its type, once read
    error: errors.MessageError | None = None  # unreadable or invalid: never translated
    refs: tuple[str, ...] = ()  # correlation keys and ids its translation may need
    outcome: Outcome | None = None  # its translation as if new; None: see `deferred`
    failure: str = ""  # our code failed translating it: that failure, for the log and reject
    deferred: bool = False  # an answer: translated when its batch is decided
    # What a refusal for its payer's cap answers (a capped payment, cap policy "reject").
    cap_refusal: CapRefusal | None = None
    # The message read (in this process only: see the module docstring).
    message: BusinessMessage | None = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "message": None}  # an lxml tree does not pickle


def read_records(translator: Translator, items: list[tuple[bytes, Side]]) -> list[Reading]:
    # Speculation: nothing is known, and nothing learnt here is used, not even by a later
    # record of this batch: an answer is correlated only when the batch is decided, with
    # what the store and the decided records before it know (Pipeline._decide).
    return [_read_one(translator, value, side) for value, side in items]


def _read_one(translator: Translator, value: bytes, side: Side) -> Reading:
    try:
        msg = translator.read(value, side)
        keys = extract_keys(msg)
        fp = fingerprint(msg)
    except errors.MessageError as exc:
        return Reading(error=exc)
    refs = correlation_refs(msg, keys)
    read = Reading(keys, fp, msg.msg_def, None, refs, message=msg)
    if msg.msg_def in ANSWERS or msg.msg_def in READS_STATE:
        # It means something only with what the store holds when its batch is decided.
        return dataclasses.replace(read, deferred=True)
    if msg.msg_def in CAPPED and translator.config.settlement.cap_policy == "reject":
        read = dataclasses.replace(read, cap_refusal=CapRefusal.of(msg, keys.message))
    try:
        outcome = translator.process_message(msg, keys, side, NoCorrelations())
    except Exception as exc:  # a defect of ours: the pipeline answers and dead-letters it
        log.exception("internal error translating %s", keys.message)
        return dataclasses.replace(read, failure=f"{type(exc).__name__}: {exc}")
    return dataclasses.replace(read, outcome=outcome)


def correlation_refs(msg: BusinessMessage, keys: IdempotencyKeys) -> tuple[str, ...]:
    refs: list[str] = []
    c = keys.correlation
    if c:
        refs += [c, *keys_of(c)]
    for path in ANSWER_REFERENCES:
        value = msg.doc_text(path)
        if value:
            refs.append(value)
    return tuple(refs)


# -- worker processes -----------------------------------------------------------------------
_worker_translator: Translator | None = None


def init_worker(config: Config, service_pid: int) -> None:
    global _worker_translator
    _worker_translator = Translator(config).prepare()
    threading.Thread(
        target=_exit_with_service, args=(service_pid,), name="service-watch", daemon=True
    ).start()


def _exit_with_service(pid: int) -> None:
    """A service killed outright (SIGKILL, OOM) cannot shut its pool down: its workers notice
    it is gone and leave, rather than linger as orphans."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the pid was reused by another user's process
            os._exit(0)


def read_in_worker(items: list[tuple[bytes, Side]]) -> list[Reading]:
    assert _worker_translator is not None, "worker not initialised"
    return read_records(_worker_translator, items)


def warm_up() -> bool:
    """Run once per worker at start, so the first batch does not wait for imports."""
    return _worker_translator is not None
