"""One payment's story across both sides, in order: what `connect-gateway trace` prints.

Built, purely, from what the store holds about it (`Traced`): every message the gateway wrote
about it (translations, answers, rejects, dead letters, retries, notifications), each with the
input that caused it (its topic, partition and offset, from the output's source headers); its
obligations and their cycles; the time it was held for its payer's cap; the answers about it
still waiting on the retry topics. Each event carries the time the store recorded it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gateway.state.base import Traced


@dataclass(frozen=True)
class Event:
    at: str  # when the store recorded it (ISO 8601)
    what: str  # received, forwarded, answered, rejected, retried, dead-lettered, booked, ...
    detail: str  # one line: ids, topics, statuses
    fields: dict[str, str]  # the same, as data (JSON output)


def _output(topic: str, headers: dict[str, str], dlq: str, retry_prefix: str) -> str:
    if topic == dlq:
        return "dead-lettered"
    if topic.startswith(retry_prefix):
        return "waiting" if headers.get("error-kind") == "waiting" else "retried"
    if "reject-reason" in headers:
        return "rejected"
    if headers.get("source-topic") is None:
        return "issued"  # a cycle's message: nothing came in
    return "sent"


def timeline(traced: Traced, dlq_topic: str, retry_prefix: str) -> list[Event]:
    """The events of `traced`, in the order the store recorded them."""
    # (time, rank within one transaction, order): an input, then what it held or booked,
    # then what it sent; a cycle's change last.
    events: list[tuple[str, int, int, Event]] = []
    seen_inputs: set[tuple[str, str]] = set()
    for order, (i, topic, key, headers, written, sent) in enumerate(traced.outputs):
        source = headers.get("source-topic")
        if source is not None:
            origin = f"{source}:{headers.get('source-partition')}:{headers.get('source-offset')}"
            attempt = headers.get("attempt", "1")
            if topic.startswith(retry_prefix) and attempt.isdigit():
                attempt = str(int(attempt) - 1)  # a retry row names the attempt it queues
            if (origin, attempt) not in seen_inputs:
                seen_inputs.add((origin, attempt))
                what = "received" if attempt == "1" else f"received again (attempt {attempt})"
                fields = {
                    "origin": origin,
                    # An answer of the gateway's own names the input's type apart.
                    "type": headers.get("input-type") or headers.get("message-type", ""),
                    "key": headers.get("idempotency-key", ""),
                }
                events.append((written, 0, order, Event(written, what, _line(fields), fields)))
        what = _output(topic, headers, dlq_topic, retry_prefix)
        fields = {"topic": topic, "key": key, "type": headers.get("message-type", "")}
        for name in ("reject-reason", "error-kind", "error-detail", "not-before"):
            if name in headers:
                fields[name] = headers[name]
        fields["outbox"] = str(i)
        fields["published"] = sent or "not yet"
        events.append((written, 3, order, Event(written, what, _line(fields), fields)))
    for ref, payer, payee, amount, cycle, status, booked in traced.obligations:
        kind = "return booked" if ref.startswith("return:") else "booked"
        fields = {
            "reference": ref,
            "payer": payer,
            "payee": payee,
            "amount": amount,
            "cycle": cycle,
            "status": status,
        }
        events.append((booked, 2, 0, Event(booked, kind, _line(fields), fields)))
    for held_id, payer, status, since in traced.held:
        fields = {"held": str(held_id), "payer": payer, "status": status}
        events.append((since, 1, 0, Event(since, "held for its cap", _line(fields), fields)))
    for cycle, status, updated, cut_off, reason in traced.cycles:
        fields = {"cycle": cycle, "status": status, "cut-off": cut_off or "-"}
        if reason:
            fields["rtgs"] = reason
        events.append((updated, 4, 0, Event(updated, f"cycle {status}", _line(fields), fields)))
    for key, side in traced.waiting:
        fields = {"key": key, "side": side}
        events.append(("~", 5, 0, Event("", "still waiting", _line(fields), fields)))
    return [e for *_, e in sorted(events, key=lambda x: (x[0], x[1], x[2]))]


def _line(fields: dict[str, str]) -> str:
    return "  ".join(f"{k}={v}" for k, v in fields.items() if v)


def as_json(subject: str, events: list[Event]) -> dict[str, object]:
    return {"subject": subject, "events": [asdict(e) for e in events]}
