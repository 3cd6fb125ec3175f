"""The pipeline's decision core, driven directly: no broker, no store."""

from __future__ import annotations

import pytest

from gateway.config import Config
from gateway.decisions import Decider, Prepared
from gateway.ordering import Waiting
from gateway.reading import read_records
from gateway.sides import Side
from gateway.translation import Translator
from tests.harness import Record, sample


def prepared(translator: Translator, items: list[tuple[Side, bytes]]) -> list[Prepared]:
    out = [
        Prepared(Record(f"{side}.inbound", 0, n, value), side)
        for n, (side, value) in enumerate(items)
    ]
    for p, reading in zip(out, read_records(translator, [(v, s) for s, v in items]), strict=True):
        p.reading = reading
    return out


def test_an_answer_is_translated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read ahead of the state, an answer is only read and keyed: it is translated when its
    batch is decided, with its original's correlation (it used to be translated in the
    worker, fail as uncorrelated, and be translated again)."""
    config = Config()
    translator = Translator(config)
    payment = prepared(translator, [("onshore", sample("onshore", "pacs.008.001.08"))])[0]
    assert payment.reading.outcome is not None
    original = payment.reading.outcome.correlation
    assert original is not None

    calls: list[str] = []
    translate = Translator.process_message

    def counted(self: Translator, *args: object, **kwargs: object) -> object:
        calls.append(args[0].msg_def)  # type: ignore[attr-defined]
        return translate(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Translator, "process_message", counted)
    status = prepared(translator, [("offshore", sample("offshore", "pacs.002.001.10"))])
    assert status[0].reading.deferred and calls == []
    (effects,) = Decider(config, translator).decide_batch(status, {}, [original], [], wall=0.0)
    assert calls == ["pacs.002.001.10"]
    assert effects is not None and effects.outcome == "translated"
    assert effects.outbox[0].topic == config.onshore.outbound_topic


def test_a_capped_payments_answer_in_its_batch_waits_for_its_commit() -> None:
    """The payment may yet be held or refused in the batch's transaction: its answer goes to
    the first retry topic instead of being correlated with it."""
    config = Config()
    translator = Translator(config)
    batch = prepared(
        translator,
        [
            ("onshore", sample("onshore", "pacs.008.001.08")),
            ("offshore", sample("offshore", "pacs.002.001.10")),
        ],
    )
    payment, status = Decider(config, translator).decide_batch(batch, {}, [], [], wall=100.0)
    assert payment is not None and payment.outcome == "translated" and payment.cap is not None
    assert status is not None and status.outcome == "retry"
    (row,) = status.outbox
    headers = dict(row.headers)
    assert row.topic == config.kafka.retry_topic(2)
    assert headers["not-before"] == f"{100.0 + config.kafka.retry_delays_ms[0] / 1000:.3f}".encode()


def test_a_resend_and_a_reused_id_in_the_batch_of_their_original() -> None:
    """Each record sees the claims of the records before it: a PssblDplct resend answers again
    what its original answered, a copy does nothing, a reused id is refused DU01."""
    config = Config()
    translator = Translator(config)
    payment = sample("onshore", "pacs.008.001.08")
    resend = payment.replace(b"</CreDt>", b"</CreDt>\n    <PssblDplct>true</PssblDplct>")
    reused = payment.replace(b">1250000.00<", b">1250000.01<", 1)
    batch = prepared(
        translator,
        [("onshore", payment), ("onshore", payment), ("onshore", resend), ("onshore", reused)],
    )
    first, copy, again, clash = Decider(config, translator).decide_batch(
        batch, {}, [], [], wall=0.0
    )
    assert first is not None and first.outcome == "translated"
    assert copy is None
    assert again is not None and again.outcome == "resend"
    assert again.replay_key == first.claims[0][0]
    assert clash is not None and (clash.outcome, clash.reason) == ("rejected", "DU01")


def test_a_cap_refusal_is_built_from_what_the_reading_kept_as_from_a_stored_input() -> None:
    """The pacs.002 AM04 of a payment refused for its cap comes from what its reading kept
    (no second read); a row kept by an earlier version (the input record itself) gets the
    very same reject, instead of failing every batch."""
    import dataclasses
    from datetime import datetime

    from gateway.clock import UTC8
    from gateway.config import SettlementSection

    config = dataclasses.replace(
        Config(), settlement=dataclasses.replace(SettlementSection(), cap_policy="reject")
    )
    translator = Translator(config, clock=lambda: datetime(2026, 11, 20, 10, 0, tzinfo=UTC8))
    data = sample("onshore", "pacs.008.001.08")
    (payment,) = prepared(translator, [("onshore", data)])
    kept = payment.reading.cap_refusal
    assert kept is not None
    decider = Decider(config, translator)
    (new,) = decider.cap_reject("onshore", kept.to_bytes(), "HPCBCNSHXXX")
    (old,) = decider.cap_reject("onshore", data, "HPCBCNSHXXX")
    assert new == old
    assert dict(new.headers)["reject-reason"] == b"AM04" and b"<Cd>AM04</Cd>" in new.value


def test_an_answer_waits_behind_an_earlier_one_about_its_payment() -> None:
    """One side's answers about one payment are decided in the order that side sent them: a
    return whose status is still on the retry topics waits behind it, though its payment is
    known; once the status is decided, so is the return (gateway/ordering.py)."""
    config = Config()
    translator = Translator(config)
    decider = Decider(config, translator)
    payment = prepared(translator, [("onshore", sample("onshore", "pacs.008.001.08"))])[0]
    assert payment.reading.outcome is not None
    original = payment.reading.outcome.correlation
    assert original is not None
    status, back = prepared(
        translator,
        [
            ("offshore", sample("offshore", "pacs.002.001.10")),
            ("offshore", sample("offshore", "pacs.004.001.09")),
        ],
    )
    assert status.keys is not None and back.keys is not None
    uetr = status.keys.correlation
    assert uetr is not None and back.keys.correlation == uetr
    waits = Waiting(status.keys.message, "offshore", uetr, 1)

    (returned,) = decider.decide_batch([back], {}, [original], [waits], wall=0.0)
    assert returned is not None and returned.outcome == "retry" and not returned.obligations
    assert dict(returned.outbox[0].headers)["error-kind"] == b"waiting"
    assert returned.wait == Waiting(back.keys.message, "offshore", uetr)

    # Back from the retry topics: the status first, then the return, in one batch.
    behind = Waiting(back.keys.message, "offshore", uetr, 2)
    for p in (status, back):
        p.attempt = 2
    first, then = decider.decide_batch([back, status], {}, [original], [waits, behind], wall=0.0)
    assert first is not None and first.outcome == "retry", "the return still waits"
    assert first.wait is not None and not first.unwait
    assert then is not None and then.outcome == "translated" and then.unwait
    decided = decider.decide_batch([status, back], {}, [original], [waits, behind], wall=0.0)
    assert [e.outcome if e else None for e in decided] == ["translated", "translated"]
    assert all(e is not None and e.unwait and e.wait is None for e in decided)

    # The status waited for nothing older: a later marker never holds it back.
    (alone,) = decider.decide_batch([status], {}, [original], [waits, behind], wall=0.0)
    assert alone is not None and alone.outcome == "translated"
    # On its last attempt, the return is decided whatever waits.
    back.attempt = len(config.kafka.retry_delays_ms) + 1
    (last,) = decider.decide_batch([back], {}, [original], [waits, behind], wall=0.0)
    assert last is not None and last.outcome == "translated" and last.unwait


def test_an_answer_from_the_other_side_does_not_wait() -> None:
    """Order is kept per side: the sides' messages reach the gateway on different topics,
    with no order between them to keep."""
    config = Config()
    translator = Translator(config)
    payment = prepared(translator, [("onshore", sample("onshore", "pacs.008.001.08"))])[0]
    assert payment.reading.outcome is not None and payment.reading.outcome.correlation
    (status,) = prepared(translator, [("offshore", sample("offshore", "pacs.002.001.10"))])
    assert status.keys is not None and status.keys.correlation
    elsewhere = Waiting("msg:OTHER:1", "onshore", status.keys.correlation, 1)
    (e,) = Decider(config, translator).decide_batch(
        [status], {}, [payment.reading.outcome.correlation], [elsewhere], wall=0.0
    )
    assert e is not None and e.outcome == "translated" and not e.unwait


def test_a_record_sent_to_the_retry_topics_is_that_decision_again_when_replayed() -> None:
    """A batch replayed after a crash (its offsets never committed) brings again a record that
    went to the retry topics: it is not decided a second time, though its original is known by
    now. Deciding it again would apply it ahead of its own retry, out of turn."""
    from gateway.state.base import ClaimState

    config = Config()
    translator = Translator(config)
    payment = prepared(translator, [("onshore", sample("onshore", "pacs.008.001.08"))])[0]
    assert payment.reading.outcome is not None and payment.reading.outcome.correlation
    (status,) = prepared(translator, [("offshore", sample("offshore", "pacs.002.001.10"))])
    decider = Decider(config, translator)
    (first,) = decider.decide_batch([status], {}, [], [], wall=0.0)
    assert first is not None and first.outcome == "retry"
    retried = first.claims[0][0]
    assert retried == f"retry:{status.origin}" and retried in status.claim_keys
    claims = {retried: ClaimState(retried, status.fingerprint, ())}
    known = [payment.reading.outcome.correlation]
    (again,) = decider.decide_batch([status], claims, known, [], wall=0.0)
    assert again is None
    # Without that claim (a new record, not a replay), the same status is translated.
    (fresh,) = decider.decide_batch([status], {}, known, [], wall=0.0)
    assert fresh is not None and fresh.outcome == "translated"
