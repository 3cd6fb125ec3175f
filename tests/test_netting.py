"""Netting arithmetic: the invariants of DOMAIN.md, on random obligation sets (hypothesis)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.settlement.netting import Netter, NettingError, from_minor, net, to_minor

PARTICIPANTS = [f"P{i:02d}" for i in range(12)]
obligation = st.tuples(
    st.sampled_from(PARTICIPANTS), st.sampled_from(PARTICIPANTS), st.integers(1, 10**14)
).filter(lambda o: o[0] != o[1])


@given(st.lists(obligation, max_size=300))
def test_positions_sum_to_zero_and_are_received_minus_paid(obs: list[tuple[str, str, int]]) -> None:
    result = net(obs, "CNY", bilateral=True)
    assert sum(result.positions.values()) == 0
    for p in PARTICIPANTS:
        received = sum(u for _, payee, u in obs if payee == p)
        paid = sum(u for payer, _, u in obs if payer == p)
        assert result.positions.get(p, 0) == received - paid
    assert result.gross == sum(u for *_, u in obs) and result.count == len(obs)
    assert 0 <= result.net <= result.gross
    assert 0.0 <= result.efficiency <= 1.0
    # The bilateral view nets each pair, and the pairs add up to the multilateral positions.
    from_pairs: dict[str, int] = {}
    for (a, b), v in result.bilateral.items():
        from_pairs[a] = from_pairs.get(a, 0) - v
        from_pairs[b] = from_pairs.get(b, 0) + v
    assert {p: v for p, v in from_pairs.items() if v} == result.positions


@given(st.lists(st.tuples(obligation, st.booleans()), max_size=300), st.integers(1, 50))
def test_one_pass_gives_each_participants_totals_and_the_voided(
    stored: list[tuple[tuple[str, str, int], bool]], chunk: int
) -> None:
    """What the close reports (each participant's received and paid counts and sums, the
    voided obligations) comes from the same single pass as the positions, fed in chunks as the
    store streams them, and equals the plain definition."""
    rows = [(payer, payee, units, void) for (payer, payee, units), void in stored]
    netter = Netter("CNY")
    for i in range(0, len(rows), chunk):
        netter.add(rows[i : i + chunk])
    result = netter.result()
    live = [(payer, payee, units) for payer, payee, units, void in rows if not void]
    expected = {}
    for p in PARTICIPANTS:
        received = [u for _, payee, u in live if payee == p]
        paid = [u for payer, _, u in live if payer == p]
        if received or paid:
            expected[p] = (len(received), sum(received), len(paid), sum(paid))
    assert result.totals == expected
    voided = [units for *_, units, void in rows if void]
    assert result.voided == (len(voided), sum(voided))
    assert result == dataclasses.replace(net(live, "CNY"), voided=result.voided)


@given(st.lists(obligation, max_size=100), st.randoms())
def test_order_does_not_matter(obs: list[tuple[str, str, int]], rnd: object) -> None:
    shuffled = list(obs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert net(obs, "HKD") == net(shuffled, "HKD")


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999999.99"), places=2))
def test_minor_units_are_exact(amount: Decimal) -> None:
    assert from_minor(to_minor(amount, "CNY"), "CNY") == amount


@pytest.mark.parametrize(
    ("obs", "message"),
    [
        ([("A", "A", 5)], "invalid obligation"),
        ([("A", "B", 0)], "invalid obligation"),
        ([("A", "B", -3)], "invalid obligation"),
    ],
)
def test_invalid_obligations_are_refused(obs: list[tuple[str, str, int]], message: str) -> None:
    with pytest.raises(NettingError, match=message):
        net(obs, "CNY")


def test_amounts_the_currency_cannot_carry_are_refused() -> None:
    with pytest.raises(NettingError, match="more than 2 decimals"):
        to_minor(Decimal("1.005"), "CNY")
    with pytest.raises(NettingError, match="no minor unit"):
        to_minor(Decimal("1"), "XXX")
    assert to_minor(Decimal("1250000.00"), "CNY") == 125_000_000


def test_a_worked_example() -> None:
    # A pays B 100, B pays C 70, C pays A 50: gross 220, net debits A 50 (=100-50), B 0...
    result = net([("A", "B", 100), ("B", "C", 70), ("C", "A", 50)], "CNY")
    assert result.positions == {"A": -50, "B": 30, "C": 20}
    assert result.net == 50 and result.gross == 220
    assert result.efficiency == pytest.approx(1 - 50 / 220)
