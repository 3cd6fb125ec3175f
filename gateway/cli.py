"""`connect-gateway`: the command line.

Exit codes: 0 done; 2 usage or configuration error; 3 the message was rejected (translate).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from gateway import __version__
from gateway.config import Config, ConfigError, load
from gateway.sides import SIDES

if TYPE_CHECKING:
    import asyncio

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
T = TypeVar("T")


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"connect-gateway: {message}", file=sys.stderr)
    raise SystemExit(code)


def _config(args: argparse.Namespace) -> Config:
    try:
        return load(args.config)
    except ConfigError as exc:
        _fail(f"configuration: {exc}")


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        _fail(f"cannot read {name}: {exc.strerror}")


def cmd_translate(args: argparse.Namespace) -> int:
    from gateway.directory import DirectoryError
    from gateway.translation import Translator

    config = _config(args)
    data = _read_input(args.file)
    try:
        translator = Translator(config)
        translator.directory.current()
    except (DirectoryError, OSError, ValueError) as exc:  # a data file it cannot use
        _fail(f"reference data: {exc}")
    from gateway.iso20022.errors import MessageError

    try:
        primed_all = translator.prime(_read_input(f) for f in args.original)
    except MessageError as exc:
        _fail(f"--original: {exc}")
    for primed in primed_all:
        if not primed.accepted:
            _fail(f"--original was rejected: {primed.error}")
    outcome = translator.process(data, args.source)
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.buffer.write(outcome.message)
    sys.stdout.buffer.flush()
    if outcome.accepted:
        return EXIT_OK
    assert outcome.error is not None
    print(f"rejected ({outcome.error.code}): {outcome.error}", file=sys.stderr)
    return EXIT_REJECTED


def cmd_sign(args: argparse.Namespace) -> int:
    """A partner's message signed as the gateway verifies it (AppHdr Sgntr, enveloped)."""
    from lxml import etree

    from gateway.certificates import CertificateError
    from gateway.signatures import LockedKey, SignedAlready, Signer

    passphrase: bytes | None = None
    if args.passphrase_file:
        try:
            passphrase = Path(args.passphrase_file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            _fail(f"cannot read the pass phrase file {args.passphrase_file}: {exc.strerror}")
    elif args.passphrase_env:
        if args.passphrase_env not in os.environ:
            _fail(f"no pass phrase: the environment variable {args.passphrase_env} is not set")
        passphrase = os.environ[args.passphrase_env].encode()
    try:
        signer = Signer.from_pem(
            Path(args.key).read_bytes(), Path(args.cert).read_bytes(), passphrase
        )
    except LockedKey as exc:
        _fail(f"cannot load the key or certificate: {exc} (--passphrase-file or --passphrase-env)")
    except (OSError, CertificateError, ValueError) as exc:
        _fail(f"cannot load the key or certificate: {exc}")
    except Exception as exc:  # a key cryptography cannot read
        _fail(f"cannot load the key: {exc}")
    from gateway.clock import now_utc8

    if not signer.certificate.valid_at(now_utc8()) and not args.allow_expired:
        _fail(
            f"the certificate is not valid now (valid {signer.certificate.not_before:%Y-%m-%d} "
            f"to {signer.certificate.not_after:%Y-%m-%d}): the gateway would refuse the "
            "signature (DS0D); --allow-expired signs anyway, for tests of that refusal"
        )
    try:
        root = etree.fromstring(_read_input(args.file), etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        _fail(f"cannot sign {args.file}: not XML ({exc})")
    if args.replace:
        Signer.unsign(root)
    try:
        signer.sign(root)
    except SignedAlready as exc:
        _fail(f"cannot sign {args.file}: {exc} (--replace signs it anew)")
    except Exception as exc:  # no AppHdr to sign
        _fail(f"cannot sign {args.file}: {exc}")
    sys.stdout.buffer.write(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    sys.stdout.buffer.flush()
    return EXIT_OK


def cmd_samples(args: argparse.Namespace) -> int:
    """Copy the sample messages the package ships into a folder (a partner's starting point:
    each side's messages, the rich ones, the RTGS's answers)."""
    import shutil

    from gateway.packaged import packaged

    source = packaged("samples")
    target = Path(args.folder)
    files = sorted(p for p in source.rglob("*.xml") if p.is_file())
    clashes = [f for f in files if (target / f.relative_to(source)).exists()]
    if clashes:
        _fail(f"{target / clashes[0].relative_to(source)} exists: give an empty folder")
    for f in files:
        there = target / f.relative_to(source)
        try:
            there.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, there)
        except OSError as exc:
            _fail(f"cannot write {there}: {exc.strerror}")
    print(f"{len(files)} sample messages in {target}", file=sys.stderr)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Check a message's signature against the participant directory, as the gateway does."""
    from gateway.certificates import Certificate
    from gateway.clock import now_utc8
    from gateway.directory import DirectoryError, load_directory
    from gateway.directory import path_of as directory_path
    from gateway.iso20022 import errors
    from gateway.signatures import read_signed, require_signed

    config = _config(args)
    path = directory_path(args.directory or config.translation.directory)
    try:
        directory = load_directory(path)
    except DirectoryError as exc:
        _fail(str(exc))
    try:
        msg = read_signed(_read_input(args.file), directory, now_utc8())
        require_signed(msg)
    except errors.MessageError as exc:
        print(f"refused ({exc.code}): {exc.detail}", file=sys.stderr)
        return EXIT_REJECTED
    cert = msg.signed_by
    assert isinstance(cert, Certificate)
    print(
        f"signed by {msg.header_text('Fr/FIId/FinInstnId/BICFI')} ({cert.subject}, "
        f"certificate {cert.fingerprint[:16]}..., valid to {cert.not_after.isoformat()})"
    )
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from gateway.kafka_clients import connection_options
    from gateway.publish import publish

    config = _config(args)
    bootstrap = _bootstrap(args, config)
    topic = args.topic or config.side(args.side).inbound_topic
    payloads = [_read_input(name) for name in args.files]
    placed = _with_broker(
        bootstrap, publish(bootstrap, topic, payloads, connection_options(config.kafka))
    )
    for name, (partition, offset) in zip(args.files, placed, strict=True):
        print(f"{name} -> {topic}[{partition}]@{offset}")
    return EXIT_OK


def cmd_broker(args: argparse.Namespace) -> int:
    from gateway.embedded_broker import BrokerStartError, EmbeddedBroker

    stop = threading.Event()
    # Handlers first: a supervisor may signal as soon as it sees the ready line.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    broker = EmbeddedBroker(args.host, args.port)
    try:
        bootstrap = broker.start()
    except BrokerStartError as exc:
        _fail(str(exc), 1)
    try:
        print(
            f"embedded Kafka-compatible broker (memory storage) on bootstrap {bootstrap}",
            flush=True,
        )
        print(
            f"publish with connect-gateway publish --bootstrap {bootstrap}, aiokafka or "
            "confluent-kafka (Debian's kcat 1.7 cannot talk to this broker)",
            flush=True,
        )
        while not stop.wait(0.5):
            if broker.proc is None or broker.proc.poll() is not None:
                _fail("the embedded broker exited unexpectedly", 1)
    finally:
        broker.stop()
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """The service: the embedded broker when none is configured, SQLite state, the pipeline."""
    from gateway.service import serve

    config = _config(args)
    import asyncio  # not for the offline commands: it costs a tenth of their start-up

    return asyncio.run(serve(config))


def _existing_store(config: Config) -> None:
    if config.state.backend == "sqlite" and not Path(config.state.sqlite_path).exists():
        # Opening it would create an empty store and report nothing: say where we looked.
        _fail(
            f"no state store at {Path(config.state.sqlite_path).resolve()}: run the gateway "
            "first, or give the configuration it runs with (--config, state.sqlite_path)"
        )


def cmd_cycle(args: argparse.Namespace) -> int:
    """Settlement cycles in the configured state store: list, close now, report."""
    config = _config(args)
    _existing_store(config)
    import asyncio

    return asyncio.run(_cycle(config, args))


def cmd_trace(args: argparse.Namespace) -> int:
    """One payment's (or securities transaction's) story, in order, from the state store."""
    config = _config(args)
    _existing_store(config)
    import asyncio
    import json

    from gateway.state import store_for
    from gateway.state.base import Traced
    from gateway.timeline import as_json, timeline

    async def read() -> Traced:
        store = store_for(config.state)
        await store.open()
        try:
            return await store.trace(args.subject)
        finally:
            await store.close()

    traced = asyncio.run(read())
    events = timeline(traced, config.kafka.dlq_topic, config.kafka.retry_topic_prefix)
    if not events:
        _fail(f"nothing is known of {args.subject}: no message, booking or hold names it")
    if args.format == "json":
        print(json.dumps(as_json(args.subject, events), indent=2))
        return EXIT_OK
    for e in events:
        print(f"{e.at or '-':<32} {e.what:<24} {e.detail}")
    return EXIT_OK


def cmd_liquidity(args: argparse.Namespace) -> int:
    """Positions against caps, the held queues with their ages, and what a multilateral offset
    would release now, from the state store and the directory."""
    config = _config(args)
    _existing_store(config)
    import asyncio
    import json

    from gateway.clock import now_utc8
    from gateway.directory import DirectoryError, load_directory
    from gateway.directory import path_of as directory_path
    from gateway.settlement.liquidity import Queued, to_text, view
    from gateway.settlement.netting import to_minor
    from gateway.state import store_for

    currency = args.currency or config.settlement.cap_currency
    try:
        directory = load_directory(directory_path(config.translation.directory))
    except DirectoryError as exc:
        _fail(str(exc))
    capped = currency == config.settlement.cap_currency  # caps are in the cap currency only
    caps = (
        {bic: to_minor(p.net_debit_cap, currency) for bic, p in directory.participants.items()}
        if capped
        else {}
    )

    async def read() -> tuple[str | None, dict[str, int], list[Queued]]:
        store = store_for(config.state)
        await store.open()
        try:
            return await store.queued(currency)
        finally:
            await store.close()

    cycle, positions, queued = asyncio.run(read())
    shown = view(currency, cycle, positions, caps, queued, now_utc8())
    if args.format == "json":
        print(json.dumps(shown, indent=2))
    else:
        sys.stdout.write(to_text(shown))
    return EXIT_OK


async def _cycle(config: Config, args: argparse.Namespace) -> int:
    from gateway.cycles import CycleManager
    from gateway.reference import ReferenceData
    from gateway.settlement.report import to_csv
    from gateway.settlement.statuses import CycleStatus
    from gateway.state import store_for

    store = store_for(config.state)
    await store.open()
    try:
        if args.action == "close":
            manager = CycleManager(config, store, ReferenceData.load(config))
            frozen = await manager.close_now(args.currency)
            if frozen is None:
                _fail(f"no {args.currency} cycle: nothing has been booked in {args.currency}")
            (closed,) = [c for c in await store.cycles(args.currency) if c.id == frozen]
            print(f"{closed.id} {closed.status} cut-off {closed.cut_off}")
            if closed.status == CycleStatus.CLOSING:
                print("another instance holds the close; it will finish it", file=sys.stderr)
            return EXIT_OK
        cycles = await store.cycles(getattr(args, "currency", None))
        if args.action == "list":
            if not cycles:
                what = f" in {args.currency}" if getattr(args, "currency", None) else ""
                print(f"no cycles{what} yet", file=sys.stderr)
            for c in cycles:
                print(
                    f"{c.id}\t{c.status}\tdue {c.due_at or '-'}\tcut-off {c.cut_off or '-'}"
                    f"\t{c.reason or ''}".rstrip()
                )
            return EXIT_OK
        found = [c for c in cycles if c.id == args.cycle]
        if not found or found[0].summary is None:
            _fail(f"no report for cycle {args.cycle}: unknown, or not closed yet")
        if args.format == "json":
            print(found[0].summary)
        else:
            import json

            sys.stdout.write(to_csv(json.loads(found[0].summary)))
        return EXIT_OK
    finally:
        await store.close()


def cmd_config_check(args: argparse.Namespace) -> int:
    """Load and validate a configuration file (and the environment) as `run` would."""
    import dataclasses

    from gateway.reference import ReferenceDataError, preflight

    try:
        config = load(args.file)
    except ConfigError as exc:
        _fail(f"configuration: {exc}")
    try:
        preflight(config)
    except ReferenceDataError as exc:
        _fail(f"configuration: {exc}")
    print(f"# configuration OK: {args.file} (with the environment), as run will use it")
    for f in dataclasses.fields(config):
        section = getattr(config, f.name)
        print(f"\n[{f.name}]")
        for item in dataclasses.fields(section):
            value = getattr(section, item.name)
            if not item.repr:  # a secret (passwords, the DSN): whether it is set, never what
                state = "set" if value else "not set"
                print(f"# {item.name}: {state} (a secret: from the environment, never shown)")
            else:
                print(f"{item.name} = {_toml_value(value)}")
    return EXIT_OK


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bootstrap(args: argparse.Namespace, config: Config) -> str:
    """--bootstrap, else the configured cluster, else where `connect-gateway run` with the
    same configuration starts the embedded broker (publish, capture and replay alike)."""
    bootstrap = args.bootstrap or config.kafka.bootstrap_servers
    if bootstrap:
        return str(bootstrap)
    if not config.kafka.embedded_port:
        _fail(
            "no broker: pass --bootstrap HOST:PORT or set KAFKA_BOOTSTRAP_SERVERS "
            "(`connect-gateway run` or `connect-gateway broker` start the embedded one)"
        )
    return f"127.0.0.1:{config.kafka.embedded_port}"


def _stop_on_signals() -> asyncio.Event:
    """An event that Ctrl-C or SIGTERM sets, for a command that stops cleanly when asked."""
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _with_broker(bootstrap: str, work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a broker that cannot be reached is one line and exit 1, not a traceback."""
    import asyncio

    from aiokafka.errors import KafkaError

    from gateway.replay.clients import TopicMissing

    # The client logs each failed connection attempt; the one line below says it all.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(work)
    except KafkaError as exc:
        _fail(f"cannot use the Kafka broker at {bootstrap}: {exc}", EXIT_FAILED)
    except TopicMissing as exc:  # a name mistyped, or a broker that lost its topics
        _fail(
            f"{exc} (its topics: connect-gateway read --help; run creates the gateway's)",
            EXIT_FAILED,
        )


def cmd_capture(args: argparse.Namespace) -> int:
    """Record live traffic of topics into a capture file (JSON Lines)."""
    from datetime import datetime

    from tqdm import tqdm

    from gateway.kafka_clients import connection_options
    from gateway.replay.capture import capture

    config = _config(args)
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            _fail(f"--since wants an ISO 8601 time with offset, got {args.since!r}")
        if since.tzinfo is None:
            _fail("--since needs an offset (e.g. 2026-11-23T09:00:00+08:00)")

    out = Path(args.out)
    if not out.parent.is_dir():
        _fail(f"cannot write {out}: the folder {out.parent} does not exist")
    bootstrap = _bootstrap(args, config)

    async def run() -> int:
        stop = _stop_on_signals()  # Ctrl-C: finish the batch, close the file
        with tqdm(desc="captured", unit=" records", file=sys.stderr, total=args.max) as bar:
            result = await capture(
                bootstrap,
                args.topics,
                Path(args.out),
                stop,
                from_beginning=args.from_beginning,
                since=since,
                max_records=args.max,
                idle=args.idle,
                progress=bar,
                options=connection_options(config.kafka),
                started=lambda where: bar.write(f"capturing from {where}", file=sys.stderr),
            )
        print(f"captured {result.records} records to {result.path}", file=sys.stderr)
        return EXIT_OK

    return _with_broker(bootstrap, run())


def cmd_read(args: argparse.Namespace) -> int:
    """Print a topic's records: where each is, its key and headers, then its value."""
    from gateway.kafka_clients import connection_options
    from gateway.replay.capture import follow

    config = _config(args)
    bootstrap = _bootstrap(args, config)

    async def show(records: list[Any]) -> None:
        for r in records:
            key = r.key.decode("utf-8", "replace") if r.key is not None else "-"
            headers = " ".join(
                f"{k}={bytes(v).decode('utf-8', 'replace')}" for k, v in (r.headers or ())
            )
            value = (r.value or b"").decode("utf-8", "replace")
            print(f"{r.topic}[{r.partition}]@{r.offset} key={key} {headers}".rstrip())
            print(value if value.endswith("\n") else value + "\n", flush=True)

    async def run() -> int:
        stop = _stop_on_signals()
        count = await follow(
            bootstrap,
            [args.topic],
            stop,
            show,
            from_beginning=args.from_beginning,
            max_records=args.max,
            idle=args.idle,
            options=connection_options(config.kafka),
            started=lambda where: print(f"reading from {where}", file=sys.stderr, flush=True),
        )
        print(f"read {count} records from {args.topic}", file=sys.stderr)
        return EXIT_OK

    return _with_broker(bootstrap, run())


def cmd_replay(args: argparse.Namespace) -> int:
    """Publish a capture back: per-partition order kept, timing per --speed."""
    from tqdm import tqdm

    from gateway.kafka_clients import connection_options
    from gateway.replay.format import CaptureError
    from gateway.replay.replayer import load, parse_speed, parse_topic_map, replay

    config = _config(args)
    try:
        topic_map = parse_topic_map(args.to_topic_map)
        speed = parse_speed(args.speed)
        records = load(Path(args.file))
    except (ValueError, CaptureError, OSError) as exc:
        _fail(str(exc))

    bootstrap = _bootstrap(args, config)

    async def run() -> int:
        stop = _stop_on_signals()  # Ctrl-C: send no more, wait for what was sent, say so
        with tqdm(desc="replayed", unit=" records", file=sys.stderr, total=len(records)) as bar:
            result = await replay(
                bootstrap,
                records,
                topic_map,
                speed,
                args.preserve_keys,
                progress=bar,
                options=connection_options(config.kafka),
                stop=stop,
            )
        topics = ", ".join(f"{t}: {n}" for t, n in sorted(result.by_topic.items()))
        stopped = (
            f", stopped before the other {len(records) - result.records}" if stop.is_set() else ""
        )
        print(
            f"replayed {result.records} records in {result.seconds:.2f} s "
            f"({result.rate:,.0f}/s) to {topics or 'nothing'}{stopped}",
            file=sys.stderr,
        )
        return EXIT_OK

    return _with_broker(bootstrap, run())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="connect-gateway",
        description="Shanghai-Hong Kong connect clearing and messaging gateway",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    config_help = "TOML configuration (default: $CONNECT_GATEWAY_CONFIG, then built-in defaults)"
    p.add_argument("--config", metavar="FILE", help=config_help)
    # --config also after the command (`run --config x`): SUPPRESS, so a command that is not
    # given it keeps what was given before the command.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    # Not required by argparse, which would report a missing command before an unknown option
    # (`--bogus` said "required: COMMAND"); main() says when it is missing.
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_parser_with(shared))

    t = sub.add_parser("translate", help="translate one message offline (no broker)")
    t.add_argument(
        "--from", dest="source", choices=SIDES, required=True, help="the dialect the message is in"
    )
    t.add_argument(
        "--original",
        action="append",
        default=[],
        metavar="FILE",
        help="an original instruction, so a status report, return, confirmation or "
        "cancellation request about it can be correlated; it comes from its sender's side, "
        "as on Kafka (repeatable)",
    )
    t.add_argument("file", metavar="FILE|-", help="the message, or - for standard input")
    t.set_defaults(func=cmd_translate)

    sg = sub.add_parser("sign", help="sign a message as a participant (AppHdr Sgntr)")
    sg.add_argument("file", metavar="FILE|-", help="the message, or - for standard input")
    sg.add_argument("--key", required=True, metavar="PEM", help="the signer's private key")
    sg.add_argument(
        "--cert", required=True, metavar="PEM", help="its certificate (listed in the directory)"
    )
    secret = sg.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase-file", metavar="FILE", help="an encrypted key's pass phrase, from a file"
    )
    secret.add_argument(
        "--passphrase-env", metavar="NAME", help="... or from this environment variable"
    )
    sg.add_argument(
        "--replace", action="store_true", help="remove a signature the message has, then sign"
    )
    sg.add_argument(
        "--allow-expired",
        action="store_true",
        help="sign with a certificate not valid now (to test the gateway's DS0D refusal)",
    )
    sg.set_defaults(func=cmd_sign)

    sm = sub.add_parser("samples", help="copy the sample messages into a folder")
    sm.add_argument("folder", metavar="DIR", help="where (created if missing)")
    sm.set_defaults(func=cmd_samples)

    vf = sub.add_parser("verify", help="check a message's signature against the directory")
    vf.add_argument("file", metavar="FILE|-", help="the message, or - for standard input")
    vf.add_argument(
        "--directory",
        metavar="TOML",
        help="participant directory (default: the configuration's, else the sample)",
    )
    vf.set_defaults(func=cmd_verify)

    pub = sub.add_parser("publish", help="publish message files to a side's inbound topic")
    pub.add_argument(
        "--side", choices=SIDES, required=True, help="the side whose participants send them"
    )
    pub.add_argument("--bootstrap", metavar="HOST:PORT", help="default: configuration")
    pub.add_argument("--topic", help="default: the side's inbound topic")
    pub.add_argument("files", nargs="+", metavar="FILE", help="message files (XML), in order")
    pub.set_defaults(func=cmd_publish)

    b = sub.add_parser("broker", help="run the embedded Kafka-compatible broker in the foreground")
    b.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    b.add_argument(
        "--port", type=int, default=9092, help="port to listen on (default: %(default)s)"
    )
    b.set_defaults(func=cmd_broker)

    r = sub.add_parser("run", help="run the gateway service (embedded broker if none configured)")
    r.set_defaults(func=cmd_run)

    cap = sub.add_parser("capture", help="record live traffic of topics into a capture file")
    cap.add_argument(
        "--topics", nargs="+", required=True, metavar="TOPIC", help="the topics to record"
    )
    cap.add_argument("--out", required=True, metavar="FILE", help="JSON Lines capture file")
    where = cap.add_mutually_exclusive_group()
    where.add_argument("--from-beginning", action="store_true", help="default: from now on")
    where.add_argument("--since", metavar="TIME", help="ISO 8601 with offset")
    cap.add_argument("--max", type=int, metavar="N", help="stop after N records")
    cap.add_argument("--idle", type=float, metavar="SECONDS", help="stop after this long quiet")
    cap.add_argument("--bootstrap", metavar="HOST:PORT", help="default: configuration")
    cap.set_defaults(func=cmd_capture)

    rd = sub.add_parser("read", help="print a topic's records: keys, headers, values")
    rd.add_argument("topic", metavar="TOPIC", help="the topic to print")
    rd.add_argument(
        "--from-beginning", action="store_true", help="default: only what arrives from now on"
    )
    rd.add_argument("--max", type=int, metavar="N", help="stop after N records")
    rd.add_argument("--idle", type=float, metavar="SECONDS", help="stop after this long quiet")
    rd.add_argument("--bootstrap", metavar="HOST:PORT", help="default: configuration")
    rd.set_defaults(func=cmd_read)

    rep = sub.add_parser("replay", help="publish a capture file back to Kafka")
    rep.add_argument("file", metavar="FILE", help="a capture file (JSON Lines)")
    rep.add_argument(
        "--to-topic-map",
        nargs="*",
        default=[],
        metavar="SOURCE=TARGET",
        help="publish SOURCE's records to TARGET (others keep their topic)",
    )
    rep.add_argument("--speed", default="max", help="1x (as captured), 10x, ..., or max")
    rep.add_argument(
        "--preserve-keys",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the record keys, and so each key's partition and order (default: kept)",
    )
    rep.add_argument("--bootstrap", metavar="HOST:PORT", help="default: configuration")
    rep.set_defaults(func=cmd_replay)

    cfg = sub.add_parser("config", help="configuration")
    cfg_actions = cfg.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = cfg_actions.add_parser("check", help="validate a configuration file as run would")
    check.add_argument(
        "file", metavar="FILE", help="the TOML file (the environment applies, as for run)"
    )
    check.set_defaults(func=cmd_config_check)

    c = sub.add_parser("cycle", help="net settlement cycles: list, close now, report")
    actions = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    close = actions.add_parser("close", help="close a currency's open cycle now")
    close.add_argument("--currency", type=_currency, required=True, help="ISO 4217 code, e.g. CNY")
    listing = actions.add_parser("list", help="every cycle and its state")
    listing.add_argument("--currency", type=_currency, help="only this currency's cycles")
    report = actions.add_parser("report", help="a closed cycle's per-participant report")
    report.add_argument("cycle", metavar="CYCLE", help="e.g. CNY-000001")
    report.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="default: %(default)s"
    )
    c.set_defaults(func=cmd_cycle)

    tr = sub.add_parser(
        "trace", help="one payment's story across both sides, in order (from the state store)"
    )
    tr.add_argument("subject", metavar="UETR", help="a payment's UETR (or a securities TxId)")
    tr.add_argument(
        "--format", choices=("text", "json"), default="text", help="default: %(default)s"
    )
    tr.set_defaults(func=cmd_trace)

    lq = sub.add_parser(
        "liquidity",
        help="positions against caps, held queues, and what offsetting would release now",
    )
    lq.add_argument("--currency", help="default: settlement.cap_currency")
    lq.add_argument(
        "--format", choices=("text", "json"), default="text", help="default: %(default)s"
    )
    lq.set_defaults(func=cmd_liquidity)
    return p


def _parser_with(shared: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """Subcommand parsers (and theirs) that take the shared options too."""

    class WithShared(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("parents", [shared])
            super().__init__(*args, **kwargs)

    return WithShared


def _currency(text: str) -> str:
    code = text.upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 4217 currency code")
    return code


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if getattr(args, "func", None) is None:
        p.error("a command is required (connect-gateway --help lists them)")
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    raise SystemExit(main())
