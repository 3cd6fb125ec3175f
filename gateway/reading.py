"""The CPU-heavy part of a batch, done ahead of the state store: read, validate, key, and
translate each record as if it were new.

Nothing here needs the state store, so it runs in worker processes (`gateway.workers` > 0:
several cores, no GIL between them) or in a thread of the service (0). An answer (status,
return, reject: a type declared `answers`) means nothing without its original's correlation,
which workers do not know: it is read and keyed here, and translated once, when its batch is
decided (gateway/decisions.py). For the rest (payments, securities instructions) the
translation made here is the one published, if the record turns out to be new. Everything
returned is plain data that pickles.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from gateway.config import Config
from gateway.correlations import NoCorrelations, keys_of
from gateway.iso20022 import errors
from gateway.iso20022.keys import IdempotencyKeys, extract_keys, fingerprint
from gateway.iso20022.reader import BusinessMessage
from gateway.messages.registry import ANSWER_REFERENCES, ANSWERS
from gateway.sides import Side
from gateway.translation import Outcome, Translator

log = logging.getLogger(__name__)


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
    if msg.msg_def in ANSWERS:
        return Reading(keys, fp, msg.msg_def, None, refs, deferred=True)
    try:
        outcome = translator.process_message(msg, keys, side, NoCorrelations())
    except Exception as exc:  # a defect of ours: the pipeline answers and dead-letters it
        log.exception("internal error translating %s", keys.message)
        return Reading(keys, fp, msg.msg_def, None, refs, None, f"{type(exc).__name__}: {exc}")
    return Reading(keys, fp, msg.msg_def, None, refs, outcome)


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
