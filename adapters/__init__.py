"""Dialect adapters: each side's rules, owned by its own package. Neither imports the other."""

from __future__ import annotations

from gateway.codec.context import Dialect
from gateway.sides import Side


def dialect(side: Side) -> Dialect:
    if side == "onshore":
        from .onshore import DIALECT as onshore

        return onshore
    from .offshore import DIALECT as offshore

    return offshore
