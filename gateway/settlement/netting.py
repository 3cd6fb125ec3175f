"""Multilateral netting of a cycle's obligations (docs/domain.md, 'Net settlement cycles and caps').

A participant's net position in a currency is what it receives minus what it pays; the
positions of a cycle sum to exactly zero, or the cycle must not settle. Amounts are summed as
integers of the currency's minor unit: exact, and fast enough to net a million obligations in
well under a second in plain Python (`bench/netting.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

# ISO 4217 minor units of the currencies the connect schemes settle in.
MINOR_UNITS = {"CNY": 2, "CNH": 2, "HKD": 2, "USD": 2, "EUR": 2, "JPY": 0}


class NettingError(ValueError):
    pass


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount in integer minor units; refuses what the currency cannot carry."""
    try:
        exponent = MINOR_UNITS[currency]
    except KeyError:
        raise NettingError(f"no minor unit known for currency {currency!r}") from None
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise NettingError(f"{amount} {currency} has more than {exponent} decimals")
    return int(scaled)


def from_minor(units: int, currency: str) -> Decimal:
    return Decimal(units).scaleb(-MINOR_UNITS[currency])


@dataclass(frozen=True)
class Netting:
    """The outcome of netting one currency's obligations."""

    currency: str
    positions: dict[str, int]  # participant -> received - paid, minor units; no zero entries
    gross: int  # sum of all obligations
    count: int  # obligations netted
    bilateral: dict[tuple[str, str], int] = field(default_factory=dict)  # (a, b), a < b: a->b net
    # Per participant: (received count, received units, paid count, paid units).
    totals: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    voided: tuple[int, int] = (0, 0)  # (count, units) of the obligations voided, not netted

    @property
    def net(self) -> int:
        """What actually moves: the sum of the net debits (= the sum of the net credits)."""
        return -sum(v for v in self.positions.values() if v < 0)

    @property
    def efficiency(self) -> float:
        """1 - net/gross: the share of gross value that netting saved from settlement."""
        return 1.0 - self.net / self.gross if self.gross else 0.0

    def position(self, participant: str) -> Decimal:
        return from_minor(self.positions.get(participant, 0), self.currency)


class Netter:
    """Nets (payer, payee, minor units, voided) obligations of one currency, fed in chunks (a
    cycle's obligations are streamed from the store, never all in memory).

    One pass keeps a count and a sum per ordered (payer, payee) pair, no more: the positions,
    the bilateral view, each participant's totals and the gross all follow from those pairs
    (a few thousand at most), so the per-obligation work is one dict lookup."""

    def __init__(self, currency: str, bilateral: bool = False) -> None:
        self.currency = currency
        self.bilateral = bilateral
        self.pairs: dict[tuple[str, str], list[int]] = {}  # (payer, payee) -> [count, units]
        self.voided = [0, 0]

    def add(self, obligations: Iterable[tuple[str, str, int, object]]) -> None:
        pairs, voided = self.pairs, self.voided
        get = pairs.get
        for payer, payee, units, void in obligations:
            if void:
                voided[0] += 1
                voided[1] += units
                continue
            if units <= 0 or payer == payee:
                raise NettingError(f"invalid obligation {payer} -> {payee}: {units}")
            cell = get((payer, payee))
            if cell is None:
                pairs[(payer, payee)] = [1, units]
            else:
                cell[0] += 1
                cell[1] += units

    def result(self) -> Netting:
        """Raises `NettingError` if the positions do not sum to zero (the arithmetic, not the
        data, would be wrong: never settle then)."""
        positions: dict[str, int] = {}
        totals: dict[str, list[int]] = {}
        bilateral: dict[tuple[str, str], int] = {}
        gross = count = 0
        for (payer, payee), (n, units) in self.pairs.items():
            positions[payer] = positions.get(payer, 0) - units
            positions[payee] = positions.get(payee, 0) + units
            received = totals.setdefault(payee, [0, 0, 0, 0])
            received[0] += n
            received[1] += units
            paid = totals.setdefault(payer, [0, 0, 0, 0])
            paid[2] += n
            paid[3] += units
            gross += units
            count += n
            if self.bilateral:
                key, sign = ((payer, payee), 1) if payer < payee else ((payee, payer), -1)
                bilateral[key] = bilateral.get(key, 0) + sign * units
        if sum(positions.values()) != 0:
            raise NettingError(f"{self.currency} positions do not sum to zero")
        return Netting(
            self.currency,
            {p: v for p, v in sorted(positions.items()) if v},
            gross,
            count,
            dict(sorted(bilateral.items())),
            {p: (t[0], t[1], t[2], t[3]) for p, t in sorted(totals.items())},
            (self.voided[0], self.voided[1]),
        )


def net(
    obligations: Iterable[tuple[str, str, int]], currency: str, bilateral: bool = False
) -> Netting:
    """Net (payer, payee, minor units) obligations of one currency. Raises `NettingError` on a
    negative amount, a self-payment, or positions that do not sum to zero."""
    netter = Netter(currency, bilateral)
    netter.add((payer, payee, units, False) for payer, payee, units in obligations)
    return netter.result()
