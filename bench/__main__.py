"""Every benchmark, one after the other, then the results page.

    python -m bench [--quick] [--only NAME,...] [--out DIR] [--page FILE]

Runs, each in its own process (one core pinned where the benchmark says so; peak memory is
the benchmark's own): parse+validate, translate, the translation profile, the pipeline end to
end (bare aiokafka passthrough in the same run, a batch-size sweep, latency under open-loop
loads of 500, 1k, 2k and 5k msg/s and at half its capacity), netting closes from 10k to 1M
obligations against their Python floor, replay, the start-up of an offline command, and
liquidity saving (a day of payments with offsetting off and on; the cost of a run).
Every figure is a median over repeated rounds with min and max. Results go to
DIR/results.json (default docs/performance/), then `bench.report` writes the page
(default docs/performance.md) and its plots (DIR/*.png).
`--quick` runs every benchmark in tiny sizes (minutes, not tens of minutes): the test suite's
smoke run; its figures mean nothing. A full run takes about 15 minutes on 2 cores.
Kafka: the embedded broker, or KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lxml import etree

from bench import report
from bench.common import usable_cpus

ROOT = Path(__file__).resolve().parents[1]

# name -> (full run arguments, --quick arguments)
PLAN: dict[str, tuple[list[str], list[str]]] = {
    "validate": (["--rounds", "7", "--count", "5000"], ["--rounds", "2", "--count", "200"]),
    "translate": (
        ["--rounds", "5", "--count", "2000"],
        ["--rounds", "2", "--count", "50", "--processes", "2"],
    ),
    "profile": (["--rounds", "3", "--count", "3000"], ["--rounds", "1", "--count", "100"]),
    "pipeline": (
        [
            *("--rounds", "3", "--count", "5000", "--batch-sizes", "50,100,200,500,1000"),
            *("--rates", "500,1000,2000,5000", "--seconds", "5", "--latency-rounds", "3"),
        ],
        [
            *("--rounds", "1", "--count", "100", "--batch-sizes", "20"),
            *("--rates", "100", "--seconds", "1", "--latency-rounds", "1"),
        ],
    ),
    "netting": (
        ["--count", "1000000", "--participants", "200", "--rounds", "3", "--curve"],
        ["--count", "2000", "--participants", "20", "--rounds", "1", "--curve"],
    ),
    "replay": (["--count", "20000", "--rounds", "3"], ["--count", "200", "--rounds", "1"]),
    "startup": (["--rounds", "15"], ["--rounds", "2"]),
    "liquidity": (
        ["--payments", "20000", "--rounds", "3"],
        ["--payments", "300", "--rounds", "1", "--queues", "100"],
    ),
}


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for row in cpuinfo.read_text().splitlines():
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        mem_gb = total_kb / 1024 / 1024
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": usable_cpus(),
        "memory_gb": round(mem_gb, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "lxml": ".".join(map(str, etree.LXML_VERSION)),
        "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
        "kafka": os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "embedded broker (Tansu, memory)",
    }


def commit() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def run_one(name: str, args: list[str]) -> tuple[dict[str, Any], float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        print(f"\n== bench.{name} {' '.join(args)}", flush=True)
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)],
            cwd=ROOT,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"bench.{name} failed (exit {done.returncode})")
        return json.loads(out.read_text()), time.monotonic() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(PLAN)}")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "performance")
    ap.add_argument("--page", type=Path, default=ROOT / "docs" / "performance.md")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(PLAN)
    unknown = sorted(set(names) - set(PLAN))
    if unknown:
        raise SystemExit(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(PLAN)})")
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    # --only refreshes some benchmarks and keeps the others' last results.
    previous = json.loads(results_path.read_text()) if args.only and results_path.exists() else {}
    runs: dict[str, Any] = dict(previous.get("runs", {}))
    revision = commit()
    for name in names:
        full, quick = PLAN[name]
        arguments = quick if args.quick else full
        result, seconds = run_one(name, arguments)
        runs[name] = {
            "args": arguments,
            "seconds": round(seconds, 1),
            "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "commit": revision,
            "result": result,
        }
    results = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": revision,
        "quick": args.quick,
        "machine": machine(),
        "runs": runs,
    }
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    report.write(results, args.out, args.page)
    print(f"\nresults: {results_path}\npage:    {args.page}")


if __name__ == "__main__":
    main()
