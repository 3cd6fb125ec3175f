"""Run ../shared/tools/iso20022-conformance (the official schemas) on files or payloads."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import BusinessMessage, read_message
from tests.conftest import CONFORMANCE_TOOL


def official_verdicts(files: Iterable[Path]) -> dict[str, str]:
    """{'<file>: <msg_def>': 'valid' | 'INVALID: ...' | 'no-schema' | ...} for every part."""
    names = [str(f) for f in files]
    done = subprocess.run(
        [sys.executable, str(CONFORMANCE_TOOL), *names],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    verdicts: dict[str, str] = {}
    for line in done.stdout.splitlines():
        head, _, verdict = line.rpartition(": ")
        if verdict.startswith("INVALID") or not head:
            head, _, verdict = line.partition(": INVALID")
            verdict = "INVALID" + verdict
        verdicts[head] = verdict
    if done.returncode not in (0, 1) or not verdicts:
        raise AssertionError(
            f"conformance tool failed ({done.returncode}): {done.stdout}{done.stderr}"
        )
    return verdicts


def assert_officially_valid(*payloads: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, data in enumerate(payloads):
            path = Path(tmp) / f"message-{i}.xml"
            path.write_bytes(data)
            files.append(path)
        verdicts = official_verdicts(files)
    bad = {k: v for k, v in verdicts.items() if v != "valid"}
    # Each payload is AppHdr + Document: two valid parts each.
    assert not bad and len(verdicts) == 2 * len(payloads), verdicts


def checked_output(record: Any, side: str, profiles: Mapping[str, ProfileSet]) -> BusinessMessage:
    """A record the gateway published to `side`, read, valid in that side's profile and
    against the official schemas."""
    msg = read_message(record.value)
    profiles[side].validate(msg)
    assert_officially_valid(record.value)
    return msg
