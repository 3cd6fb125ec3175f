"""Deterministic identifiers for what the gateway emits.

An output's BizMsgIdr is derived from the input's idempotency key, so translating the same input
again (a redelivery, a restart, a replay) yields the same id and consumers can deduplicate.
"""

from __future__ import annotations

import hashlib


def derive_id(prefix: str, *parts: str, length: int = 35) -> str:
    """prefix + upper-case hex of sha256(parts); fits Max35Text (>= 128 bits with a 3-character
    prefix). Hex rather than base32: Python's base32 encoder is pure Python and costs ~15 us."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest().upper()
    return (prefix + digest)[:length]
