"""Deterministic identifiers for what the gateway emits.

An output's BizMsgIdr is derived from the input's idempotency key, so translating the same input
again (a redelivery, a restart, a replay) yields the same id and consumers can deduplicate.
"""

from __future__ import annotations

import base64
import hashlib


def derive_id(prefix: str, *parts: str, length: int = 35) -> str:
    """prefix + base32 of sha256(parts); fits Max35Text. Collisions need ~2^100 inputs."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    body = base64.b32encode(digest).decode("ascii").rstrip("=")
    return (prefix + body)[:length]
