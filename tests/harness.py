"""The in-process gateway of the end-to-end tests (gateway.replay.local, shipped for the pytest
plugin too), under the names the tests use, and the tests' own helpers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from gateway.replay.local import LocalGateway as Running
from gateway.replay.local import local_config as gateway_config
from gateway.replay.local import local_gateway as running_gateway
from tests.conftest import ROOT, SAMPLES

__all__ = [
    "Record",
    "Running",
    "as_capped_out",
    "capped_directory",
    "gateway_config",
    "http_get",
    "running_gateway",
    "sample",
    "wait_ready",
    "with_caps",
]


# The onshore participant the cap tests hold back (JADBCNBJXXX), and the one the samples
# name (HPCBCNSHXXX): BIC, CNAPS code, HKNCC code as the offshore samples write it.
CAPPED_OUT = (b"JADBCNBJXXX", b"313100054321", b"<MmbId>902</MmbId>")
ROOMY = (b"HPCBCNSHXXX", b"313290012345", b"<MmbId>901</MmbId>")


def as_capped_out(msg: bytes) -> bytes:
    """A sample with JADBCNBJXXX where it names HPCBCNSHXXX (as payer, payee or requester)."""
    for old, new in zip(ROOMY, CAPPED_OUT, strict=True):
        msg = msg.replace(old, new)
    return msg


def capped_directory(tmp_path: Path, caps: dict[str, str]) -> str:
    """The bundled participant directory, written under `tmp_path`, with the net debit caps
    of the participants in `caps` (BIC -> cap) set; its path."""
    text = (ROOT / "data" / "participants.toml").read_text(encoding="utf-8")
    path = tmp_path / "participants.toml"
    path.write_text(with_caps(text, caps), encoding="utf-8")
    return str(path)


def with_caps(text: str, caps: dict[str, str]) -> str:
    """A participant directory's text with the net debit caps in `caps` (BIC -> cap) set."""
    for bic, cap in caps.items():
        head, tail = text.split(f'bic = "{bic}"', 1)
        before, after = tail.split("net_debit_cap = ", 1)
        after = after.split("\n", 1)[1]
        text = f'{head}bic = "{bic}"{before}net_debit_cap = "{cap}"\n{after}'
    return text


@dataclass(frozen=True)
class Record:
    """A consumed record, as the decision core sees one (gateway.decisions.Record)."""

    topic: str
    partition: int
    offset: int
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    key: bytes | None = None


def sample(side: str, msg_def: str) -> bytes:
    return (SAMPLES / side / f"{msg_def}.xml").read_bytes()


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """A plain HTTP GET on loopback: (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def wait_ready(port: int) -> dict[str, bool]:
    """Poll /readyz until it answers 200 (the consumer holds its partitions, the broker and
    the store answer): its checks. Bounded at 60 s, a generous behaviour bound."""
    async with asyncio.timeout(60):
        while True:
            status, body = await http_get(port, "/readyz")
            if status == 200:
                checks: dict[str, bool] = json.loads(body)["checks"]
                return checks
            await asyncio.sleep(0.1)
