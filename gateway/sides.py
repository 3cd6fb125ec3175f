"""The two sides of the gateway."""

from __future__ import annotations

from typing import Literal

Side = Literal["onshore", "offshore"]
SIDES: tuple[Side, ...] = ("onshore", "offshore")


def other_side(side: Side) -> Side:
    return "offshore" if side == "onshore" else "onshore"


def side_named(name: str) -> Side:
    """A side as stored or sent as text (checked: a store's text is not trusted to be one)."""
    for side in SIDES:
        if name == side:
            return side
    raise ValueError(f"not a side: {name!r}")
