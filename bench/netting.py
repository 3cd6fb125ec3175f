"""Closing a settlement cycle: seconds and peak memory for N obligations among P participants.

    python -m bench.netting [--count 1000000] [--participants 200] [--rounds 3]
                            [--curve] [--json FILE]

What is timed is the gateway's own close of a frozen cycle, on one core, on the embedded
default store (SQLite): `CycleManager.finish`, which takes the close lease, streams the
cycle's obligations out of the store and nets them (with the bilateral view), checks them
against the running positions, totals each participant, builds and validates the pacs.029
and the reports, and records all of it in one transaction. A generated, valid directory names
the participants. Setting the cycle up (inserting the obligations) is not timed; between
rounds the cycle is put back to 'closing'.
Peak memory is the process's maximum resident set size (ru_maxrss), set-up included.
`--curve` also closes cycles of 10k, 30k, 100k and 300k obligations (those below --count), to
show how the cost grows.

The floor, timed in the same run on the same cycle: plain Python streaming the cycle's
obligations out of the same SQLite file and summing them into dicts (each participant's
position, each payer-payee pair's bilateral total): the least any close must do.
Goals: 1,000,000 obligations among 200 participants in under 5 s and 500 MB (issue 5); the
close at most 1.5 x the floor (issue 26).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import resource
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import line, pin_to_one_core, spread, write_json
from gateway.config import Config, StateSection, TranslationSection
from gateway.cycles import CycleManager
from gateway.reference import ReferenceData
from gateway.state.base import CycleRecord
from gateway.state.sqlite import SqliteStore
from gateway.state.tx import Tx

CUT_OFF = "2026-11-23T10:00:00+08:00"


def bic(i: int) -> str:
    letters = ""
    for _ in range(4):
        i, r = divmod(i, 26)
        letters += chr(65 + r)
    return f"BK{letters}HKXXX"


def lei(i: int) -> str:
    """A valid LEI (ISO 17442 check digits) for participant i."""
    base = f"5493{i:014d}"
    digits = int("".join(str(int(ch, 36)) for ch in base + "00"))
    return f"{base}{98 - digits % 97:02d}"


def directory(path: Path, participants: int) -> None:
    lines = ['version = "bench"']
    for i in range(participants):
        lines += [
            "[[participant]]",
            f'bic = "{bic(i)}"',
            f'name = "Bench Bank {i}"',
            f'side = "{"onshore" if i % 2 else "offshore"}"',
            f'cnaps = "9900{i:08d}"',
            f'hk_code = "{i:03d}"',
            f'lei = "{lei(i)}"',
            f'settlement_account = "SETTLE-{i:04d}"',
            'net_debit_cap = "1000000000000.00"',
        ]
    path.write_text("\n".join(lines) + "\n")


def obligations(
    cycle: str, count: int, participants: int, seed: int, positions: dict[str, int]
) -> Iterator[tuple[str, ...] | tuple[object, ...]]:
    rng = random.Random(seed)
    names = [bic(i) for i in range(participants)]
    for n in range(count):
        payer, payee = rng.sample(names, 2)
        units = rng.randint(1, 10**11)  # up to 1,000,000,000.00
        positions[payer] = positions.get(payer, 0) - units
        positions[payee] = positions.get(payee, 0) + units
        amount = f"{units // 100}.{units % 100:02d}"
        yield (f"{cycle}-{n}", payer, payee, "CNY", amount, units, cycle, "open", CUT_OFF)


def set_up(db_path: Path, sizes: list[int], participants: int) -> None:
    db = sqlite3.connect(db_path)
    for seq, n in enumerate(sizes, start=1):
        cycle = f"CNY-{seq:06d}"
        positions: dict[str, int] = {}
        db.executemany(
            "INSERT INTO obligations (reference, payer, payee, currency, amount, units, cycle,"
            " status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            obligations(cycle, n, participants, seq, positions),
        )
        db.executemany(
            "INSERT INTO positions (cycle, participant, units) VALUES (?, ?, ?)",
            [(cycle, p, u) for p, u in positions.items()],
        )
        db.execute(
            "INSERT INTO cycles (id, currency, seq, status, cut_off, updated_at) "
            "VALUES (?, 'CNY', ?, 'closing', ?, ?)",
            (cycle, seq, CUT_OFF, CUT_OFF),
        )
    db.commit()
    db.close()


def floor_round(db_path: Path, cycle: str) -> float:
    """Seconds to stream `cycle`'s obligations into per-participant and per-pair sums."""
    start = time.perf_counter()
    db = sqlite3.connect(db_path)
    positions: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    rows = db.execute("SELECT payer, payee, units FROM obligations WHERE cycle = ?", (cycle,))
    for payer, payee, units in rows:
        positions[payer] = positions.get(payer, 0) - units
        positions[payee] = positions.get(payee, 0) + units
        pairs[payer, payee] = pairs.get((payer, payee), 0) + units
    db.close()
    assert sum(positions.values()) == 0
    return time.perf_counter() - start


async def close_rounds(
    store: SqliteStore, manager: CycleManager, cycle: str, rounds: int
) -> tuple[list[float], list[float]]:
    closes, nets = [], []
    for _ in range(rounds):
        record = next(c for c in await store.cycles() if c.id == cycle)
        start = time.perf_counter()
        assert await manager.finish(record), "the close was not recorded"
        closes.append(time.perf_counter() - start)
        start = time.perf_counter()
        netting = await store.net_cycle(cycle, "CNY")
        nets.append(time.perf_counter() - start)
        assert sum(netting.positions.values()) == 0
        done = next(c for c in await store.cycles() if c.id == cycle)
        assert done.status == "instructed", done.status
        await reopen(store, done)
    return closes, nets


async def reopen(store: SqliteStore, cycle: CycleRecord) -> None:
    async def run(tx: Tx) -> None:
        await tx.execute("UPDATE cycles SET status = 'closing' WHERE id = ?", cycle.id)
        await tx.execute("DELETE FROM outbox")

    await store.backend.run(run, write=True)


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    curve = (10_000, 30_000, 100_000, 300_000) if args.curve else ()
    sizes = sorted({args.count, *(n for n in curve if n < args.count)})
    directory(tmp / "participants.toml", args.participants)
    config = dataclasses.replace(
        Config(),
        translation=TranslationSection(directory=str(tmp / "participants.toml")),
        state=StateSection(sqlite_path=str(tmp / "state.sqlite3")),
    )
    store = SqliteStore(tmp / "state.sqlite3")
    await store.open()  # the gateway's schema
    set_up(tmp / "state.sqlite3", sizes, args.participants)
    manager = CycleManager(config, store, ReferenceData.load(config), owner="bench")
    timings: dict[int, tuple[list[float], list[float]]] = {}
    try:
        for seq, n in enumerate(sizes, start=1):
            timings[n] = await close_rounds(store, manager, f"CNY-{seq:06d}", args.rounds)
    finally:
        await store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    closes, nets = timings[args.count]
    cycle = f"CNY-{sizes.index(args.count) + 1:06d}"
    floors = [floor_round(tmp / "state.sqlite3", cycle) for _ in range(args.rounds)]
    ratios = [c / f for c, f in zip(closes, floors, strict=True)]
    result = spread("close_s", closes) | spread("net_s", nets) | spread("floor_s", floors)
    result |= spread("ratio_to_floor", ratios)
    result["peak_rss_mb"] = peak_mb
    print(f"close a cycle: {args.count:,} obligations among {args.participants} participants")
    print(line("close (all of it)", closes, "s", fmt=".2f", goal="  goal < 5 s"))
    print(line("  of which stream + net", nets, "s", fmt=".2f"))
    print(line("floor (stream into dicts)", floors, "s", fmt=".2f"))
    print(line("ratio close/floor", ratios, "", fmt=".2f", goal="  goal <= 1.5"))
    print(f"  peak resident memory       {peak_mb:,.0f} MB  goal < 500 MB")
    if args.curve:
        print("  growth (median of rounds, whole close):")
        for n in sizes:
            median = statistics.median(timings[n][0])
            result[f"curve_{n}_s"] = median
            result[f"curve_{n}_s_min"] = min(timings[n][0])
            result[f"curve_{n}_s_max"] = max(timings[n][0])
            print(f"    {n:>9,} obligations  {median:.3f} s  ({median / n * 1e9:,.0f} ns each)")
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--participants", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--curve", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    pin_to_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
