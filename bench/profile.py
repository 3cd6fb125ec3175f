"""Where the time of one translation goes: pacs.008 onshore -> offshore, on one core.

    python -m bench.profile [--count 3000] [--rounds 3] [--no-sampling] [--json FILE]

Two views of the same hot path (`Translator.process` plus the fingerprint the pipeline adds):
- stages: the translator's steps run one after the other for each message, a clock reading
  between each (medians over rounds, microseconds per message); their sum is checked
  against the whole path timed in one piece, so a step left out would show;
- sampling: py-spy samples `python -m bench.translate` from outside (no instrumentation, so
  time spent in lxml's C code is charged to the Python function that called it) and the
  functions with the most samples on top of the stack are listed. Skipped, and said so, when
  py-spy is not installed or may not trace (containers without SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import pin_to_one_core, write_json
from bench.translate import messages
from gateway.adapters import dialect
from gateway.authorisation import sender_of
from gateway.carry import carry
from gateway.codec import decode_header
from gateway.codec.context import DecodeContext
from gateway.config import Config
from gateway.correlations import NoCorrelations
from gateway.flows.base import Flow
from gateway.idempotency import extract_keys, fingerprint
from gateway.iso20022.builders import (
    Party,
    build_header,
    envelope_element,
    iso_datetime,
    serialise,
)
from gateway.iso20022.ids import derive_id
from gateway.iso20022.reader import read_message
from gateway.messages.registry import decode, message_type
from gateway.translation import Translator

ROOT = Path(__file__).resolve().parents[1]


def stages(count: int, rounds: int) -> dict[str, float]:
    """Median microseconds per message of each step, and of the whole path."""
    translator = Translator(Config())
    onshore, offshore = translator.profiles["onshore"], translator.profiles["offshore"]
    directory = translator.directory.current()
    gateway = Party(translator.config.gateway.bic)
    side = translator.config.side("offshore")
    now = translator.clock()
    clock = time.perf_counter
    per_round: dict[str, list[float]] = collections.defaultdict(list)

    def one_message(payload: bytes, spent: list[float]) -> None:
        # The translator's steps one after the other, as it runs them, a clock reading
        # between each: timed per message, not step by step over a batch, because a step
        # repeated alone runs hot in the CPU's caches and looks ~30% cheaper than it is.
        t0 = clock()
        msg = read_message(payload)
        t1 = clock()
        onshore.validate(msg)
        t2 = clock()
        keys = extract_keys(msg)
        t3 = clock()
        fingerprint(msg)
        t4 = clock()
        ctx = DecodeContext(dialect("onshore"), directory, msg)
        body = decode(ctx)
        kind = message_type(msg.msg_def)
        flow = Flow(
            ctx,
            kind,
            decode_header(msg),
            sender_of(msg, directory),
            "onshore",
            "offshore",
            NoCorrelations(),
            translator.config,
            translator.calendars,
        )
        t5 = clock()
        assert kind.flow is not None
        result = kind.flow(flow, body)
        t6 = clock()
        assert result.rewrite is not None  # a pacs.008 is carried whole
        carried = carry(
            msg,
            dataclasses.replace(
                result.rewrite, msg_id=derive_id("GWM", keys.message), created=iso_datetime(now)
            ),
            source=dialect("onshore"),
            target=dialect("offshore"),
            directory=directory,
            charset=translator.charset,
            text_limits=offshore.text_limits(msg.msg_def),
        )
        t7 = clock()
        head = build_header(
            fr=gateway,
            to=Party(side.system_bic),
            biz_msg_idr=derive_id("GW", keys.message),
            msg_def=msg.msg_def,
            created=now,
            biz_svc=side.biz_svc,
        )
        root = envelope_element(head, carried.document)
        t8 = clock()
        offshore.validate_built(msg.msg_def, root)
        t9 = clock()
        serialise(root)
        t10 = clock()
        marks = (t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10)
        for n in range(len(STEPS)):
            spent[n] += marks[n + 1] - marks[n]

    for r in range(rounds):
        for payload in messages(50, distinct=False, seed=1000 + r):
            translator.process(payload, "onshore")  # warm caches (transliterations)
        spent = [0.0] * len(STEPS)
        for payload in messages(count, distinct=False, seed=r):
            one_message(payload, spent)
        for name, seconds in zip(STEPS, spent, strict=True):
            per_round[name].append(seconds / count * 1e6)
        # The same work as the service's reader does it (translator + fingerprint).
        fresh = messages(count, distinct=False, seed=100 + r)
        start = clock()
        for payload in fresh:
            msg = translator.read(payload, "onshore")
            keys = extract_keys(msg)
            fingerprint(msg)
            outcome = translator.process_message(msg, keys, "onshore")
            assert outcome.accepted, outcome.error
        per_round[WHOLE].append((clock() - start) / count * 1e6)
    return {name: statistics.median(values) for name, values in per_round.items()}


STEPS = (
    "read (hardened reader, parse)",
    "validate input (onshore profile)",
    "keys (dict view of the message)",
    "fingerprint (C14N + SHA-256)",
    "decode to the canonical model",
    "checks (directory, calendars)",
    "carry (copy, rewrite agents and ids, text)",
    "envelope (AppHdr)",
    "validate output (offshore profile)",
    "serialise output",
)
WHOLE = "whole path (read, keys, fingerprint, translate)"


def sampled(count: int) -> tuple[list[tuple[str, float]], str]:
    """(function, share of samples) of the top functions, or ([], why not)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return [], "py-spy is not installed (pip install py-spy)"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "samples.txt"
        command = [spy, "record", "--format", "raw", "--rate", "250", "--nonblocking"]
        command += ["-o", str(raw), "--", sys.executable, "-m", "bench.translate"]
        command += ["--rounds", "2", "--count", str(count)]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if done.returncode != 0 or not raw.exists():
            return [], f"py-spy could not sample: {done.stderr.strip()[-300:]}"
        totals: collections.Counter[str] = collections.Counter()
        for row in raw.read_text().splitlines():
            stack, _, n = row.rpartition(" ")
            leaf = stack.split(";")[-1]
            # 'function (path:line)' -> 'path:function', so lines of one function add up
            match = re.match(r"(.*) \((.*?):\d+\)$", leaf)
            name = f"{_short(match.group(2))}:{match.group(1)}" if match else leaf
            totals[name] += int(n)
    everything = sum(totals.values())
    return [(name, n / everything) for name, n in totals.most_common(15)], ""


def _short(path: str) -> str:
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1]
    stdlib = re.search(r"/lib/python3\.\d+/(.*)", path)
    return stdlib.group(1) if stdlib else path.removeprefix(str(ROOT) + "/")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-sampling", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    pin_to_one_core()
    steps = stages(args.count, args.rounds)
    whole = steps.pop(WHOLE)
    total = sum(steps.values())
    print(f"pacs.008 onshore -> offshore, one core, {args.rounds} rounds: microseconds a message")
    for name, us in steps.items():
        print(f"  {name:<36} {us:7.1f} us  {us / total:6.1%}")
    print(f"  {'sum of the steps':<36} {total:7.1f} us")
    print(f"  {'whole path, timed in one piece':<36} {whole:7.1f} us")
    result: dict[str, Any] = {"stages_us": steps, "sum_us": total, "whole_us": whole}
    if not args.no_sampling:
        top, why = sampled(args.count)
        result["sampled"] = [[name, share] for name, share in top]
        result["sampling_note"] = why
        if why:
            print(f"sampling: {why}")
        else:
            print("sampling (py-spy, share of all samples, on top of the stack):")
            for name, share in top:
                print(f"  {share:6.1%}  {name}")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
