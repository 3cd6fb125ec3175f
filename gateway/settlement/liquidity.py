"""What `connect-gateway liquidity` shows: each participant's position in the open cycle
against its cap, its queue of held payments with their ages, and what a multilateral offset
would release now (gateway/settlement/offsetting.py). Pure: the store's and the directory's
values in, a JSON-ready view out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.settlement.netting import from_minor
from gateway.settlement.offsetting import (
    Candidate,
    largest_release,
    net_change,
    released_in_order,
)


@dataclass(frozen=True)
class Queued:
    """A payment queued for its payer's cap, as `connect-gateway liquidity` shows it."""

    payer: str
    units: int
    since: str  # when it was held (as the store wrote it)
    candidate: Candidate  # as offsetting sees it: its id, its moves, its cap


def view(
    currency: str,
    cycle: str | None,
    positions: Mapping[str, int],
    caps: Mapping[str, int],
    queued: Sequence[Queued],
    now: datetime,
) -> dict[str, Any]:
    def amount(units: int) -> str:
        return str(from_minor(units, currency))

    queues: dict[str, list[Queued]] = {}
    for q in queued:
        queues.setdefault(q.payer, []).append(q)
    candidates = {payer: [q.candidate for q in mine] for payer, mine in queues.items()}
    release = released_in_order(candidates, largest_release(positions, candidates))
    chosen = {c.id for c in release}
    gross = sum(q.units for q in queued if q.candidate.id in chosen)
    net = net_change(release)
    participants = []
    for bic in sorted(set(positions) | set(caps) | set(queues)):
        position, cap = positions.get(bic, 0), caps.get(bic)
        participants.append(
            {
                "participant": bic,
                "position": amount(position),
                "cap": amount(cap) if cap is not None else None,
                "headroom": amount(position + cap) if cap is not None else None,
                "held": [
                    {
                        "id": q.candidate.id,
                        "amount": amount(q.units),
                        "to": sorted({who for who, units in q.candidate.moves if units > 0}),
                        "held_seconds": round(
                            max(0.0, (now - datetime.fromisoformat(q.since)).total_seconds()), 3
                        ),
                    }
                    for q in queues.get(bic, [])
                ],
            }
        )
    return {
        "currency": currency,
        "cycle": cycle,
        "participants": participants,
        "held": len(queued),
        "offset_would_release": {
            "payments": [c.id for c in release],
            "gross": amount(gross),
            "liquidity_saved": amount(gross - net),
        },
    }


def to_text(shown: dict[str, Any]) -> str:
    lines = [f"{shown['currency']} open cycle {shown['cycle'] or '-'}: {shown['held']} held"]
    lines.append(f"{'participant':<14}{'position':>20}{'cap':>20}{'headroom':>20}  held")
    for p in shown["participants"]:
        held = ", ".join(
            f"#{h['id']} {h['amount']} to {'/'.join(h['to'])} ({h['held_seconds']:.0f} s)"
            for h in p["held"]
        )
        lines.append(
            f"{p['participant']:<14}{p['position']:>20}{p['cap'] or '-':>20}"
            f"{p['headroom'] or '-':>20}  {held or '-'}"
        )
    would = shown["offset_would_release"]
    ids = ", ".join(f"#{i}" for i in would["payments"]) or "nothing"
    lines.append(
        f"a multilateral offset now would release: {ids} (gross {would['gross']}, "
        f"liquidity saved {would['liquidity_saved']})"
    )
    return "\n".join(lines) + "\n"
