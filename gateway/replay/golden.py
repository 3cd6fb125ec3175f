"""Golden captures: a gateway running in a test's process, the captures replayed into it, and
what comes out compared with a golden capture (what the pytest plugin's `connect_gateway`
fixture hands a test, gateway/replay/pytest_plugin.py).

    def test_our_payments(connect_gateway):
        outputs = connect_gateway.run_capture("captures/payments.jsonl")
        connect_gateway.assert_golden(outputs, "captures/payments.golden.jsonl")

`connect_gateway` is a gateway running in the test's process (its own event loop, in a thread,
so tests need not be async) on fresh topic names, SQLite state in the test's tmp_path, against
KAFKA_BOOTSTRAP_SERVERS or an embedded broker started once per session. Records of a capture
whose topic ends in `onshore.inbound` / `offshore.inbound` are replayed into its inbound topics
(keys and per-partition order kept); `outputs()` reads its outbound, DLQ and report topics from
the start until nothing new arrives for `quiet` seconds, named by their role
(`offshore.outbound`, ...). `assert_golden` compares them with a golden capture after applying
a declared rule for what legitimately varies (`Variable`, default `VARIES`), and fails with a
diff; `pytest --update-golden` rewrites the golden file instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import re
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from lxml import etree

from gateway.certificates import read_certificate
from gateway.config import Config, StateSection
from gateway.replay.capture import capture
from gateway.replay.format import Captured, CaptureWriter, read_capture
from gateway.replay.local import LocalGateway, local_config, local_gateway
from gateway.replay.replayer import replay
from gateway.signatures import signed_with

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Variable:
    """What may differ between two runs of the same capture and still be the same outcome."""

    # Record metadata the broker assigns.
    fields: tuple[str, ...] = ("partition", "offset", "timestamp")
    # Headers naming where a record came in (topic names differ per run), and the timing of
    # a record that waited for its original (on which attempt it found it).
    headers: tuple[str, ...] = (
        "source-topic",
        "source-partition",
        "source-offset",
        "origin-topic",
        "not-before",
        "attempt",
    )
    # XML elements holding the time a message was made (OrgnlCreDtTm: a forwarded
    # cancellation request names its payment as the gateway sent it, at the gateway's time).
    elements: tuple[str, ...] = ("CreDt", "CreDtTm", "RjctnDtTm", "OrgnlCreDtTm")
    # The gateway's signature: its digest covers the times above and an ECDSA value differs
    # on every signing. `assert_golden` verifies it with the gateway's certificate first;
    # it then stands in as one fixed element.
    signature: bool = True


VARIES = Variable()
_SIGNATURE = re.compile(rb"<ds:Signature\b.*?</ds:Signature>", re.DOTALL)
_SIGNED = b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">verified</ds:Signature>'


def blanked(record: Captured, rule: Variable = VARIES) -> Captured:
    """The record with what `rule` declares variable replaced by fixed stand-ins: metadata 0,
    headers and XML time elements "*". Still a capture record; the same for every run."""
    elements = "|".join(map(re.escape, rule.elements))
    value = record.value
    if value is not None:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            value = re.sub(rf"<({elements})>[^<]*</\1>", r"<\1>*</\1>", text).encode("utf-8")
            if rule.signature:
                value = _SIGNATURE.sub(_SIGNED, value)
    fixed: dict[str, Any] = {name: 0 for name in rule.fields}
    return dataclasses.replace(
        record,
        value=value,
        headers=tuple((k, b"*" if k in rule.headers else v) for k, v in record.headers),
        **fixed,
    )


def stable(records: list[Captured], rule: Variable = VARIES) -> list[Captured]:
    """The records blanked (`blanked`), in an order that depends on their content alone."""
    return sorted((blanked(r, rule) for r in records), key=lambda r: r.to_json())


def normalise(records: list[Captured], rule: Variable = VARIES) -> list[str]:
    """One JSON line per record with the variable parts blanked, in a stable order."""
    return [r.to_json() for r in stable(records, rule)]


def _flat(value: bytes | None) -> list[str]:
    """A message as 'element/path = text' lines (attributes as @name), for a diff."""
    if value is None:
        return []
    try:
        root = etree.fromstring(value, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return value.decode("utf-8", "replace").splitlines()
    lines = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        path = "/".join(etree.QName(e).localname for e in (*reversed(list(el.iterancestors())), el))
        text = (el.text or "").strip()
        if text:
            lines.append(f"{path} = {text}")
        lines += [f"{path}/@{etree.QName(str(k)).localname} = {v!s}" for k, v in el.attrib.items()]
    return lines


def explain(want: list[Captured], got: list[Captured], rule: Variable = VARIES) -> str:
    """What differs, record by record (paired by topic, key and message type): missing and
    unexpected records, changed headers, and only the XML elements that differ, by path."""

    def ident(r: Captured) -> tuple[str, str, str]:
        kind = dict(r.headers).get("message-type", b"").decode("utf-8", "replace")
        return r.topic, (r.key or b"").decode("utf-8", "replace"), kind

    def grouped(records: list[Captured]) -> dict[tuple[str, str, str], list[Captured]]:
        out: dict[tuple[str, str, str], list[Captured]] = {}
        for r in stable(records, rule):
            out.setdefault(ident(r), []).append(r)
        return out

    before, after = grouped(want), grouped(got)
    report = []
    for name in sorted({*before, *after}):
        a, b = before.get(name, []), after.get(name, [])
        label = f"{name[0]} key={name[1]} {name[2]}".rstrip()
        if len(a) != len(b):
            report.append(f"{label}: {len(a)} in the golden file, {len(b)} in this run")
        for x, y in zip(a, b, strict=False):
            if x == y:
                continue
            report.append(f"{label}:")
            hx, hy = dict(x.headers), dict(y.headers)
            for h in sorted({*hx, *hy}):
                if hx.get(h) != hy.get(h):
                    report.append(f"  header {h}: {hx.get(h)!r} -> {hy.get(h)!r}")
            report += [
                f"  {line}"
                for line in difflib.unified_diff(
                    _flat(x.value), _flat(y.value), "golden", "this run", lineterm="", n=0
                )
                if not line.startswith(("---", "+++", "@@"))
            ]
    return "\n".join(report)


class GatewayUnderTest:
    def __init__(self, bootstrap: str, workdir: Path, config: Config | None = None) -> None:
        self.bootstrap = bootstrap
        prefix = f"pt{uuid.uuid4().hex[:10]}"
        self.config = config or local_config(
            prefix, StateSection(sqlite_path=str(workdir / "gateway-state.sqlite3"))
        )
        c = self.config
        self.roles = {
            c.onshore.outbound_topic: "onshore.outbound",
            c.offshore.outbound_topic: "offshore.outbound",
            c.kafka.dlq_topic: "gateway.dlq",
            c.settlement.reports_topic: "gateway.reports",
        }
        self.workdir = workdir
        self.update_golden = False
        self.sent = 0  # records replayed into it
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._running: LocalGateway | None = None
        self._context: Any = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()

        async def enter() -> LocalGateway:
            self._context = local_gateway(self.config, self.bootstrap)
            running: LocalGateway = await self._context.__aenter__()
            return running

        self._running = self._call(enter())

    def stop(self) -> None:
        if self._context is not None:
            self._call(self._context.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    # -- what a test does ------------------------------------------------------------------------
    def replay(self, path: str | Path, speed: float | None = None) -> int:
        """Publish the capture's inbound records to this gateway; how many."""
        records = list(read_capture(Path(path)))
        topics = {
            r.topic: self.config.side(side).inbound_topic
            for r in records
            for side in ("onshore", "offshore")
            if r.topic.endswith(f"{side}.inbound")
        }
        chosen = [r for r in records if r.topic in topics]
        self.sent += len(chosen)
        if chosen:
            self._call(replay(self.bootstrap, chosen, topics, speed, preserve_keys=True))
        return len(chosen)

    def outputs(self, quiet: float = 2.0, inputs: int | None = None) -> list[Captured]:
        """Everything the gateway has published: read once it has processed `inputs` records
        (default: all this object replayed) and emptied its outbox, until nothing new comes
        for `quiet` seconds (records waiting on retry topics come back within that)."""
        self._call(self._settled(self.sent if inputs is None else inputs))
        out = self.workdir / f"outputs-{uuid.uuid4().hex[:6]}.jsonl"
        self._call(
            capture(
                self.bootstrap,
                list(self.roles),
                out,
                asyncio.Event(),
                from_beginning=True,
                idle=quiet,
            )
        )
        return [dataclasses.replace(r, topic=self.roles[r.topic]) for r in read_capture(out)]

    async def _settled(self, inputs: int, wait: float = 120) -> None:
        running = self._running
        assert running is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline:
            if (
                running.pipeline.processed >= inputs
                and not (await running.store.counts())["unsent"]
            ):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the gateway processed {running.pipeline.processed} of {inputs}")

    def close_cycle(self, currency: str = "CNY", quiet: float = 2.0) -> list[Captured]:
        """Close the open settlement cycle of `currency` now, as an operator's `connect-gateway
        cycle close` does, once everything replayed is processed; return what the close
        published: the net settlement instruction to the RTGS (pacs.029, or pacs.009 per
        position) and each participant's statement (camt.053), with the cycle report (all an
        empty cycle publishes). Nothing when the currency has no cycle."""
        running = self._running
        assert running is not None and running.cycles is not None, "start() first"
        before = {(r.topic, r.partition, r.offset) for r in self.outputs(quiet)}
        closed = self._call(running.cycles.close_now(currency))
        if closed is None:
            return []
        self._call(self._settled(self.sent))
        return [r for r in self.outputs(quiet) if (r.topic, r.partition, r.offset) not in before]

    def run_capture(self, path: str | Path, quiet: float = 2.0) -> list[Captured]:
        self.replay(path)
        return self.outputs(quiet)

    def assert_golden(
        self, records: list[Captured], golden: str | Path, rule: Variable = VARIES
    ) -> None:
        golden = Path(golden)
        self._check_signatures(records)
        if self.update_golden:
            # The variable parts as fixed stand-ins, in a stable order: unchanged behaviour
            # rewrites the file byte for byte.
            golden.parent.mkdir(parents=True, exist_ok=True)
            writer = CaptureWriter(golden)
            writer.write(stable(records, rule))
            writer.close()
            return
        if not golden.exists():
            pytest.fail(f"no golden capture {golden}: run pytest --update-golden", pytrace=False)
        expected = list(read_capture(golden))
        if normalise(expected, rule) != normalise(records, rule):
            pytest.fail(
                f"outputs differ from {golden} (variable parts ignored):\n"
                + explain(expected, records, rule),
                pytrace=False,
            )

    def _check_signatures(self, records: list[Captured]) -> None:
        """With a signing key, every message the gateway sends a side is signed with it:
        checked with its certificate before the signatures are set aside for the comparison."""
        security = self.config.security
        if not security.signing_certificate_file:
            return
        certificate = read_certificate(Path(security.signing_certificate_file).read_bytes())
        for r in records:
            if r.topic.endswith(".outbound") and not signed_with(r.value or b"", certificate):
                pytest.fail(
                    f"{r.topic} record {r.key!r} is not signed with the gateway's certificate "
                    f"({security.signing_certificate_file})",
                    pytrace=False,
                )
