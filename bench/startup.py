"""Start-up of an offline command: `connect-gateway translate` of the Chinese sample pacs.008,
as a whole process, against a bare `python -c "import lxml.etree"` (the least any command that
reads XML pays), run in turn and paired run by run.

    python -m bench.startup [--rounds 15] [--json FILE]

What is timed is the wall clock from start to exit of each process: interpreter start-up,
imports, loading the profiles and the participant directory, reading the transliteration
table, translating and writing the message. Goal (issue 26): at most 7 x the floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import line, spread, write_json

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "onshore" / "pacs.008.001.08.xml"  # Chinese names and text


def command() -> list[str]:
    """The installed command next to this interpreter, as an operator runs it."""
    script = Path(sys.executable).with_name("connect-gateway")
    found = str(script) if script.exists() else shutil.which("connect-gateway")
    if found is None:
        raise SystemExit("connect-gateway is not installed next to this interpreter")
    return [found, "translate", "--from", "onshore", str(SAMPLE)]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}")
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    os.environ.pop("CONNECT_GATEWAY_CONFIG", None)  # the built-in defaults, as documented
    translate = command()
    floor = [sys.executable, "-c", "import lxml.etree"]
    timed(translate), timed(floor)  # warm the page cache and the bytecode caches
    commands, floors = [], []
    for _ in range(args.rounds):
        commands.append(timed(translate))
        floors.append(timed(floor))
    ratios = [c / f for c, f in zip(commands, floors, strict=True)]
    result = spread("command_s", commands) | spread("floor_s", floors) | spread("ratio", ratios)
    print(f"start-up, {args.rounds} paired runs")
    print(line("connect-gateway translate", commands, "s", fmt=".3f"))
    print(line('python -c "import lxml.etree"', floors, "s", fmt=".3f"))
    print(line("ratio", ratios, "", fmt=".2f", goal="  goal <= 7"))
    print(f"  median of the ratios {statistics.median(ratios):.2f}")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
