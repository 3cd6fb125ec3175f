"""pacs.009: financial institution credit transfer (also COV and ADV), carried whole. The
gateway issues one too, per net position, when settlement.instruction = "pacs.009"."""

from __future__ import annotations

from gateway.messages import MessageType
from gateway.messages.pacs008 import credit_transfer

TYPE: MessageType = credit_transfer(
    "pacs.009.001.08", "institution credit transfer", "FICdtTrf", "institution"
)
