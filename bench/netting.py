"""Netting a cycle: seconds and peak memory for N obligations among P participants.

    python -m bench.netting [--count 1000000] [--participants 200] [--rounds 3]
                            [--curve] [--json FILE]

What a cycle close does with its obligations, on one core: read them from a SQLite table
(integer minor units) with a streaming cursor and net them (`gateway.settlement.netting`).
Peak memory is the process's maximum resident set size (ru_maxrss), table creation included.
`--curve` also closes cycles of 10k and 100k obligations, to show how the cost grows.
Goal (issue 5): 1,000,000 obligations among 200 participants in under 5 s and 500 MB.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import line, pin_to_one_core, spread, write_json
from gateway.settlement.netting import net


def obligations(
    cycle: int, count: int, participants: int, seed: int
) -> Iterator[tuple[int, str, str, int]]:
    rng = random.Random(seed)
    names = [f"P{i:04d}" for i in range(participants)]
    for _ in range(count):
        payer, payee = rng.sample(names, 2)
        yield cycle, payer, payee, rng.randint(1, 10**11)  # up to 1,000,000,000.00


def close(db: sqlite3.Connection, cycle: int, count: int) -> float:
    start = time.perf_counter()
    cursor = db.execute("SELECT payer, payee, units FROM obligations WHERE cycle = ?", (cycle,))
    result = net(cursor, "CNY")
    elapsed = time.perf_counter() - start
    assert result.count == count and sum(result.positions.values()) == 0
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--curve", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    pin_to_one_core()

    sizes = sorted({args.count, *((10_000, 100_000) if args.curve else ())})
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "obligations.sqlite3")
        db.execute("CREATE TABLE obligations (cycle INT, payer TEXT, payee TEXT, units INT)")
        db.execute("CREATE INDEX by_cycle ON obligations (cycle)")
        for cycle, n in enumerate(sizes):
            db.executemany(
                "INSERT INTO obligations VALUES (?, ?, ?, ?)",
                obligations(cycle, n, args.participants, seed=cycle),
            )
        db.commit()
        timings = {n: [close(db, c, n) for _ in range(args.rounds)] for c, n in enumerate(sizes)}
        db.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    main_run = timings[args.count]
    result |= spread("close_s", main_run)
    result["peak_rss_mb"] = peak_mb
    print(f"close a cycle: {args.count:,} obligations among {args.participants} participants")
    print(line("read + net", main_run, "s", fmt=".2f", goal="  goal < 5 s"))
    print(f"  peak resident memory       {peak_mb:,.0f} MB  goal < 500 MB")
    if args.curve:
        print("  growth (median of rounds):")
        for n in sizes:
            median = sorted(timings[n])[len(timings[n]) // 2]
            result[f"curve_{n}_s"] = median
            print(f"    {n:>9,} obligations  {median:.3f} s  ({median / n * 1e9:,.0f} ns each)")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
