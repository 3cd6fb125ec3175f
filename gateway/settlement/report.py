"""A closed cycle's report: per participant, what it received and paid and its net position;
for the cycle, gross and net value and the netting efficiency (1 - net/gross), and the
bilateral view. Built from the frozen cycle only (no clock), so rebuilding it after a crash
gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.settlement.netting import Netting, from_minor

REPORT_VERSION = 1


@dataclass(frozen=True)
class Saving:
    """What held payments did in the cycle (the store's `liquidity`): offsetting runs, the
    payments they released, their gross and the net change of positions they made, in minor
    units; how long each payment released into the cycle had been held, in seconds."""

    runs: int = 0
    payments: int = 0
    gross: int = 0
    net: int = 0
    held_seconds: tuple[float, ...] = ()


def summary(
    cycle: str,
    cut_off: str | None,
    netting: Netting,
    instruction_id: str | None,
    saving: Saving | None = None,
) -> dict[str, Any]:
    """The cycle's report, from its netting: each participant's totals, and the obligations
    voided before it closed (rejected by the other side, or cancelled: not netted, shown so a
    cancelled payment's effect is visible); and what liquidity saving did: the payments
    offsetting released, their gross, the liquidity saved (gross released minus the net change
    of positions), and the time payments were held."""
    totals, voided = netting.totals, netting.voided
    currency = netting.currency

    def amount(units: int) -> str:
        return str(from_minor(units, currency))

    participants = []
    for bic, (received_count, received, paid_count, paid) in sorted(totals.items()):
        participants.append(
            {
                "participant": bic,
                "received_count": received_count,
                "received": amount(received),
                "paid_count": paid_count,
                "paid": amount(paid),
                "position": amount(received - paid),
            }
        )
    return {
        "version": REPORT_VERSION,
        "cycle": cycle,
        "currency": currency,
        "cut_off": cut_off,
        "instruction_id": instruction_id,
        "obligations": netting.count,
        "gross": amount(netting.gross),
        "net": amount(netting.net),
        "efficiency": round(netting.efficiency, 6),
        "voided": {"obligations": voided[0], "gross": amount(voided[1])},
        "participants": participants,
        "bilateral": [
            {"from": a, "to": b, "net": amount(units)}
            for (a, b), units in netting.bilateral.items()
            if units
        ],
        "liquidity": _liquidity(saving or Saving(), amount),
    }


def _liquidity(saving: Saving, amount: Callable[[int], str]) -> dict[str, Any]:
    waits = saving.held_seconds
    return {
        "offsetting_runs": saving.runs,
        "offset_released": saving.payments,
        "offset_gross": amount(saving.gross),
        "liquidity_saved": amount(saving.gross - saving.net),
        "held_released": len(waits),
        "held_seconds_mean": round(sum(waits) / len(waits), 3) if waits else 0,
        "held_seconds_max": round(max(waits), 3) if waits else 0,
    }


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def participant_record(report: dict[str, Any], row: dict[str, Any]) -> str:
    """What one participant is told of the cycle: its own figures and the cycle's ids."""
    keep = ("version", "cycle", "currency", "cut_off", "instruction_id")
    return to_json({**{k: report[k] for k in keep}, **row})


CSV_COLUMNS = (
    "cycle",
    "currency",
    "participant",
    "received_count",
    "received",
    "paid_count",
    "paid",
    "position",
)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["participants"]:
        writer.writerow([report["cycle"], report["currency"], *(row[c] for c in CSV_COLUMNS[2:])])
    return out.getvalue()
