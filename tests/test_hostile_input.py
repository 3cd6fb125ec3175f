"""Hostile input: every case ends in a typed error and a reject, fast, reading nothing.

A loopback listener counts connection attempts and a canary file holds a secret: the gateway
must neither connect nor leak the canary, for each attack, through the library and the CLI.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway.config import Config
from gateway.iso20022 import errors, reader
from gateway.iso20022.profiles import ProfileSet
from gateway.translation import Translator
from tests.conformance import assert_officially_valid
from tests.conftest import SAMPLES, SHARED

CANARY = "CANARY-7f3e9a-DO-NOT-LEAK"


class Listener:
    """Accepts and counts TCP connections on a free loopback port."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("canary") / "secret.txt"
    path.write_text(CANARY)
    return path


def good() -> bytes:
    return (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()


def hostile_cases(port: int, canary: Path) -> dict[str, tuple[bytes, type[errors.MessageError]]]:
    url = f"http://127.0.0.1:{port}/x"
    body = good().split(b"?>", 1)[1]
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
            for i in range(1, 10)
        )
        + b"]><Document>&lol9;</Document>"
    )
    return {
        "xxe-file": (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://'
            + str(canary).encode()
            + b'">]><Document>&x;</Document>',
            errors.ForbiddenMarkup,
        ),
        "xxe-network": (
            b'<!DOCTYPE d [<!ENTITY x SYSTEM "' + url.encode() + b'">]><Document>&x;</Document>',
            errors.ForbiddenMarkup,
        ),
        "external-dtd": (
            b'<!DOCTYPE Document SYSTEM "' + url.encode() + b'"><Document/>',
            errors.ForbiddenMarkup,
        ),
        "parameter-entity": (
            b'<!DOCTYPE d [<!ENTITY % p SYSTEM "' + url.encode() + b'"> %p;]><Document/>',
            errors.ForbiddenMarkup,
        ),
        "billion-laughs": (bomb, errors.ForbiddenMarkup),
        "lowercase-doctype": (b"<!doctype d><Document/>", errors.ForbiddenMarkup),
        "processing-instruction": (
            b'<?xml version="1.0"?><?xml-stylesheet href="' + url.encode() + b'"?>' + body,
            errors.ForbiddenMarkup,
        ),
        "xinclude": (
            good().replace(
                b"<Purp>",
                b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://'
                + str(canary).encode()
                + b'" parse="text"/><Purp>',
            ),
            errors.SchemaViolation,
        ),
        "truncated": (good()[: len(good()) // 2], errors.NotWellFormed),
        "not-xml": (b"\x00\x01\x02binary garbage \xff\xfe", errors.NotWellFormed),
        "json": (b'{"Document": {"pacs.008": 1}}', errors.NotWellFormed),
        "empty": (b"", errors.EmptyMessage),
        "blank": (b" \n\t ", errors.EmptyMessage),
        "oversize": (good() + b"<!--" + b"x" * (2 * 1024 * 1024) + b"-->", errors.MessageTooLarge),
        "utf16": (
            '<?xml version="1.0" encoding="UTF-16"?><Document/>'.encode("utf-16"),
            errors.UnsupportedEncoding,
        ),
        "declared-latin1": (
            b'<?xml version="1.0" encoding="ISO-8859-1"?><Document/>',
            errors.UnsupportedEncoding,
        ),
        "wrong-namespace": (
            good().replace(b"tech:xsd:pacs.008.001.08", b"tech:xsd:pacs.008.001.99"),
            errors.UnknownMessage,
        ),
        "unsupported-message": (
            good().replace(b"pacs.008.001.08", b"pacs.003.001.08"),
            errors.UnknownMessage,
        ),
        "no-namespace": (b"<Document><FIToFICstmrCdtTrf/></Document>", errors.UnknownMessage),
        "header-only": (good().split(b"<Document")[0] + b"</BizMsg>", errors.UnknownMessage),
        "header-mismatch": (
            good().replace(b"<MsgDefIdr>pacs.008.001.08<", b"<MsgDefIdr>pacs.009.001.08<"),
            errors.HeaderMismatch,
        ),
        "deep-nesting": (b"<a>" * 5000 + b"</a>" * 5000, errors.NotWellFormed),
    }


def _ids(port: int = 1, canary: Path = Path("/nonexistent")) -> list[str]:
    return list(hostile_cases(port, canary))


@pytest.mark.parametrize("case", _ids())
def test_hostile_input_is_a_typed_error_and_reads_nothing(
    case: str,
    listener: Listener,
    canary: Path,
    config: Config,
    profiles: dict[str, ProfileSet],
) -> None:
    data, expected = hostile_cases(listener.port, canary)[case]
    before = listener.connections
    # No wall-clock bound (CI is a busy machine): the typed error shows where it was stopped,
    # e.g. ForbiddenMarkup before the parser ever sees an entity to expand.
    with pytest.raises(errors.MessageError) as caught:
        msg = reader.read_message(data, known=profiles["onshore"].messages)
        profiles["onshore"].validate(msg)
    assert type(caught.value) is expected, caught.value
    assert caught.value.ids is not None and caught.value.ids.payload_ref.startswith("SHA256:")

    # The full path a partner sees: a reject for the source side, nothing leaked.
    outcome = Translator(config).process(data, "onshore")
    assert not outcome.accepted and outcome.destination == "onshore"
    assert outcome.msg_def is None or case == "xinclude"
    assert CANARY.encode() not in outcome.message
    assert b"admi.002.001.01" in outcome.message
    time.sleep(0.05)  # let a connection attempt, if any was made, reach the listener
    assert listener.connections == before


def test_a_schema_location_hint_is_ignored_not_fetched(listener: Listener, config: Config) -> None:
    # xsi attributes are legal on any element, so this message is valid; the hint must be inert.
    data = good().replace(
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">',
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        b'xsi:schemaLocation="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08 '
        + f"http://127.0.0.1:{listener.port}/evil.xsd".encode()
        + b'">',
    )
    before = listener.connections
    outcome = Translator(config).process(data, "onshore")
    assert outcome.accepted, outcome.error
    time.sleep(0.05)
    assert listener.connections == before


def test_the_parser_alone_would_not_expand_or_fetch(listener: Listener, canary: Path) -> None:
    """Second line of defence: were the byte scan bypassed, the parser still resolves nothing."""
    cases = hostile_cases(listener.port, canary)
    for name in ("xxe-file", "xxe-network", "external-dtd", "parameter-entity"):
        before = listener.connections
        try:
            root = etree.fromstring(cases[name][0], reader._parser())
        except etree.XMLSyntaxError:
            continue  # refusing to parse is as good
        assert CANARY not in etree.tostring(root, encoding="unicode")
        time.sleep(0.05)
        assert listener.connections == before, name


@pytest.mark.skipif(not (SHARED / "tools").is_dir(), reason="../shared not present")
def test_cli_answers_hostile_input_with_an_official_admi002(
    listener: Listener, canary: Path, tmp_path: Path
) -> None:
    rejects = []
    for name, (data, _) in hostile_cases(listener.port, canary).items():
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "translate", "--from", "onshore", "-"],
            input=data,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 3, (name, done.stderr)
        line = done.stderr.decode()
        assert line.startswith("rejected (FF01): ") and line.count("\n") == 1, line
        assert CANARY.encode() not in done.stdout
        rejects.append(done.stdout)
    assert listener.connections == 0
    assert_officially_valid(*rejects)
