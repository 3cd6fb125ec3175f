"""Message definition identifiers and their XML namespaces."""

from __future__ import annotations

import re
from functools import lru_cache

ISO_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
HEAD = "head.001.001.02"
# The envelope the gateway writes around AppHdr + Document. Readers accept any root element.
ENVELOPE_NS = "urn:connect-gateway:envelope:1"

# The message definitions the gateway knows are registered in gateway/messages/.

_MSG_ID = re.compile(r"[a-z]{4}\.[0-9]{3}\.[0-9]{3}\.[0-9]{2}")


def ns(msg_def: str) -> str:
    return ISO_PREFIX + msg_def


@lru_cache(maxsize=256)  # a handful of namespaces recur on every message
def msg_def_of(namespace: str | None) -> str | None:
    """The message definition id of an ISO 20022 namespace, or None for any other namespace."""
    if not namespace or not namespace.startswith(ISO_PREFIX):
        return None
    candidate = namespace[len(ISO_PREFIX) :]
    return candidate if _MSG_ID.fullmatch(candidate) else None


def family(msg_def: str) -> str:
    """'pacs.008.001.08' -> 'pacs.008' (the business meaning, without the version)."""
    return msg_def[:8]
