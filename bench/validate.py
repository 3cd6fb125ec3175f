"""Parse + validate throughput of pacs.008 on one core, and its ratio to bare lxml parsing.

    python -m bench.validate [--rounds 7] [--count 5000] [--json FILE]

The gateway path is what the pipeline runs per message: the hardened reader (size, encoding
and markup checks, parse, envelope and MsgDefIdr checks) then validation of AppHdr and Document
against the onshore profile. The baseline parses the same bytes with a plain lxml parser. Both
run interleaved, round by round, in this one process pinned to one core, so machine noise hits
both alike; the figures are medians over rounds, with min and max.
Goal (issue 2): ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from bench.common import line, pin_to_one_core, spread, write_json
from gateway.iso20022.reader import read_message
from gateway.messages.registry import profile_set

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "onshore" / "pacs.008.001.08.xml"


def rate(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--count", type=int, default=5000, help="messages per round and path")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    pin_to_one_core()
    data = SAMPLE.read_bytes()
    profiles = profile_set("onshore")
    bare_parser = etree.XMLParser()

    def gateway_path() -> None:
        profiles.validate(read_message(data))

    def bare_parse() -> None:
        etree.fromstring(data, bare_parser)

    gateway_path()  # warm-up, and proof the sample is valid
    gw, bare = [], []
    for _ in range(args.rounds):
        gw.append(rate(gateway_path, args.count))
        bare.append(rate(bare_parse, args.count))
    ratios = [g / b for g, b in zip(gw, bare, strict=True)]
    result: dict[str, float] = {"message_bytes": len(data)}
    result |= spread("parse_validate_per_s", gw) | spread("bare_parse_per_s", bare)
    result |= spread("ratio", ratios)
    print(f"pacs.008 ({len(data)} bytes), one core, {args.rounds} rounds x {args.count} messages")
    print(line("parse+validate (gateway)", gw, "msg/s"))
    print(line("bare lxml parse", bare, "msg/s"))
    print(line("ratio gateway/bare", ratios, "", ".2f", "  goal >= 0.50"))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
