"""The two sides of the gateway."""

from __future__ import annotations

from typing import Literal

Side = Literal["onshore", "offshore"]
SIDES: tuple[Side, ...] = ("onshore", "offshore")


def other_side(side: Side) -> Side:
    return "offshore" if side == "onshore" else "onshore"
