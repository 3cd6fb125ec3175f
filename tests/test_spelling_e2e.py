"""One message, one meaning over Kafka, both stores, signatures required: each message is
signed as its sender means it, then respelled without touching what the signature covers.

- A customer transfer with `SttlmMtd` COVE, written `CO<!---->VE`: refused NARR, as COVE is.
- An institution transfer with COVE written `CO<![CDATA[VE]]>`: an advice, no obligation.
- A payment whose amount is `1250<!---->000.00`: booked for 1,250,000.00, no crash.
(The genuine payment sent again with a comment in its UETR: tests/test_authorisation_e2e.py.)
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.config import StateSection
from tests.conftest import SAMPLES
from tests.harness import gateway_config, running_gateway
from tests.signing import directory_with, identity, signed, signing_config
from tests.test_authorisation_e2e import reasons

pytestmark = pytest.mark.kafka


def _replaced(data: bytes, *edits: tuple[bytes, bytes]) -> bytes:
    for old, new in edits:
        assert data.count(old) >= 1, old
        data = data.replace(old, new)
    return data


async def test_a_respelled_value_means_what_was_signed(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path
) -> None:
    hpcb, klbk = identity("HPCBCNSHXXX"), identity("KLBKHKHHXXX")
    directory = directory_with(tmp_path, {"HPCBCNSHXXX": [hpcb], "KLBKHKHHXXX": [klbk]})
    base = signing_config(tmp_path, directory, identity("SHHKCNSHGWY"))
    payment = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()
    cover = _replaced(
        signed(_replaced(payment, (b"<SttlmMtd>CLRG", b"<SttlmMtd>COVE")), hpcb),
        (b"<SttlmMtd>COVE", b"<SttlmMtd>CO<!---->VE"),
    )
    amount = _replaced(
        signed(
            _replaced(
                payment,
                (b"0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01", b"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d"),
                (b"ON-BIZ-P8-0001", b"ON-BIZ-P8-0002"),
                (b"ON-MSG-P8-0001", b"ON-MSG-P8-0002"),
            ),
            hpcb,
        ),
        (b">1250000.00<", b">1250<!---->000.00<"),
    )
    institution = (SAMPLES / "offshore" / "pacs.009.001.08.xml").read_bytes()
    advice = _replaced(
        signed(_replaced(institution, (b"<SttlmMtd>CLRG", b"<SttlmMtd>COVE")), klbk),
        (b"<SttlmMtd>COVE", b"<SttlmMtd>CO<![CDATA[VE]]>"),
    )
    config = gateway_config(f"c{uuid.uuid4().hex[:10]}", state, base=base)
    async with running_gateway(config, kafka_bootstrap) as gateway:
        await gateway.publish("onshore", cover, amount)
        await gateway.publish("offshore", advice)
        onshore = await gateway.read(config.onshore.outbound_topic, 2)  # the reject, the advice
        offshore = await gateway.read(config.offshore.outbound_topic, 1)
        dead = await gateway.read(config.kafka.dlq_topic, 1)
        obligations = await gateway.store.obligations()

    assert reasons(onshore) == ["NARR"] and len(dead) == 1
    assert reasons(offshore) == []
    assert b"<!--" not in b"".join(r.value for r in [*onshore, *offshore])
    # The advice books nothing; the respelled amount is the amount that was signed.
    assert [(o.payer, o.payee, o.amount.amount) for o, _ in obligations] == [
        ("HPCBCNSHXXX", "VHBKHKHHXXX", Decimal("1250000.00"))
    ]
