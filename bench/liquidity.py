"""Liquidity saving: what multilateral offsetting does for a day of payments under tight caps,
and what an offsetting run costs.

    python -m bench.liquidity [--payments 20000] [--participants 20] [--rounds 3]
                              [--caps 1.5,5] [--queues 100,1000,10000] [--json FILE]

The traffic: `--payments` payments over a simulated 8-hour day, arriving at random times,
between random pairs of `--participants` participants, amounts drawn from a log-normal
distribution; every participant's net debit cap is a multiple of the mean payment (`--caps`:
1.5, tight, where queues form within minutes; 5, looser). The same traffic is decided twice
in this run by the gateway's own settlement ledger (gateway/settlement/ledger.py, what both
stores run inside their batch transaction; the store's I/O is not part of it), one payment
at a time: offsetting off (a held payment waits for room of its own) and multilateral (after
each payment). Measured:
the share of payments released before the day's close (accepted at once, or held then
released), the mean and the 95th percentile of the time the released ones were held, and
the share of value left held at the close.

The cost: `largest_release` (gateway/settlement/offsetting.py) on gridlocked queues of
`--queues` held payments among the participants (a ring of payers each just over its cap),
median of rounds, with the cost per held payment: the run is linear in the queue, plus the
take-backs.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from datetime import datetime
from decimal import Decimal

from bench.common import line, spread, write_json
from gateway.canonical import Money, Obligation
from gateway.clock import UTC8
from gateway.settlement.ledger import Ledger, QueuedPayment, Rules
from gateway.settlement.offsetting import Candidate, largest_release

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC8)
DAY = 8 * 3600


def traffic(payments: int, participants: int, seed: int) -> list[tuple[float, str, str, int]]:
    """(arrival second, payer, payee, minor units), in arrival order."""
    rng = random.Random(seed)
    names = [f"BANK{i:03d}" for i in range(participants)]
    out = []
    for _ in range(payments):
        payer, payee = rng.sample(names, 2)
        units = max(100, int(rng.lognormvariate(math.log(1_000_000), 1.0)))  # ~10,000.00
        out.append((rng.uniform(0, DAY), payer, payee, units))
    return sorted(out)


def day(flows: list[tuple[float, str, str, int]], cap: int, offsetting: str) -> dict[str, float]:
    ledger = Ledger({}, {}, {}, Rules(T0, offsetting=offsetting))
    held_at: dict[int, float] = {}
    waits: list[float] = []
    released_before = 0
    for n, (at, payer, payee, units) in enumerate(flows):
        amount = Money(Decimal(units) / 100, "CNY")
        obligation = Obligation(payer, payee, amount, f"p{n}")
        seen = len(ledger.released)
        if ledger.post([obligation], cap) == "held":
            ledger.hold(QueuedPayment(n, payer, "CNY", units, cap, (obligation,)))
            held_at[n] = at
        ledger.offset()
        for item in ledger.released[seen:]:
            waits.append(at - held_at[item.id])
    released_before = len(ledger.released)
    left = [item for queue in ledger.queues.values() for item in queue]
    total_value = sum(u for *_, u in flows)
    accepted_at_once = len(flows) - len(held_at)
    waits.sort()
    return {
        "released_share": (accepted_at_once + released_before) / len(flows),
        "held": len(held_at),
        "held_at_close": len(left),
        "value_held_at_close_share": sum(i.units for i in left) / total_value,
        "wait_mean_s": statistics.fmean(waits) if waits else 0.0,
        "wait_p95_s": waits[int(0.95 * (len(waits) - 1))] if waits else 0.0,
        "offset_runs": len(ledger.offsets),
        "offset_released": sum(len(r.released) for r in ledger.offsets),
    }


def gridlock(size: int, participants: int) -> tuple[dict[str, int], dict[str, list[Candidate]]]:
    """`size` held payments in a ring of payers, each queue a little over its cap alone."""
    names = [f"BANK{i:03d}" for i in range(participants)]
    queues: dict[str, list[Candidate]] = {p: [] for p in names}
    for n in range(size):
        payer = names[n % participants]
        payee = names[(n + 1) % participants]
        queues[payer].append(Candidate(n, ((payer, -1000), (payee, 1000)), cap=500))
    return {}, queues


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--payments", type=int, default=20_000)
    ap.add_argument("--participants", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queues", default="100,1000,10000")
    ap.add_argument(
        "--caps", default="1.5,5", help="caps as multiples of the mean payment (tight, looser)"
    )
    ap.add_argument("--json", type=lambda s: __import__("pathlib").Path(s))
    args = ap.parse_args()

    flows = traffic(args.payments, args.participants, seed=1)
    mean = statistics.fmean(u for *_, u in flows)
    result: dict[str, float] = {"payments": len(flows), "participants": args.participants}
    print(f"a day of {args.payments:,} payments among {args.participants} participants")
    for multiple in (float(m) for m in args.caps.split(",") if m):
        cap = int(multiple * mean)
        label = f"cap{multiple:g}"
        result[f"{label}_cap_minor_units"] = cap
        print(f"caps {multiple:g} x the mean payment ({cap / 100:,.2f}):")
        for policy in ("off", "multilateral"):
            start = time.perf_counter()
            got = day(flows, cap, policy)
            got["decide_s"] = time.perf_counter() - start
            for key, value in got.items():
                result[f"{label}_{policy}_{key}"] = value
            print(
                f"  offsetting {policy:<12} released before close {got['released_share']:.1%}, "
                f"held at close {got['held_at_close']:,} ({got['value_held_at_close_share']:.1%}"
                f" of value), held for mean {got['wait_mean_s'] / 60:,.1f} min, p95 "
                f"{got['wait_p95_s'] / 60:,.1f} min; {got['offset_runs']:,} runs; "
                f"{got['decide_s'] / len(flows) * 1e6:,.0f} us a payment to decide"
            )
        result[f"{label}_decide_ratio"] = (
            result[f"{label}_multilateral_decide_s"] / result[f"{label}_off_decide_s"]
        )
    print("cost of one offsetting run (largest_release) on a gridlocked queue:")
    for size in (int(s) for s in args.queues.split(",") if s):
        positions, queues = gridlock(size, args.participants)
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            take = largest_release(positions, queues)
            times.append(time.perf_counter() - start)
        assert sum(take.values()) == size, "the ring is released whole"
        result |= spread(f"run_{size}_s", times)
        result[f"run_{size}_us_per_held"] = statistics.median(times) / size * 1e6
        print(line(f"  {size:,} held", [t * 1e3 for t in times], "ms", fmt=",.2f"))
    write_json(args.json, result)


if __name__ == "__main__":
    main()
