"""Signatures over Kafka, both stores: a gateway that requires them, fed a good payment and
one of each bad signature. Each bad one is answered with its ISO reason and dead-lettered,
and has no effect: no obligation, no correlation, no claim on the genuine message's ids (the
good one, sent after all of them under the same ids, goes through). What the gateway
publishes is signed with its key."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import xmlsec
from lxml import etree

from gateway.config import StateSection
from gateway.iso20022.reader import read_message
from gateway.signatures import DS
from tests.conftest import SAMPLES
from tests.harness import gateway_config, running_gateway
from tests.signing import directory_with, identity, signed, signed_by_hand, signing_config
from tests.test_signatures import _moved_into_the_document, _with_a_second_signature, tamper

pytestmark = pytest.mark.kafka

PAYMENT = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()


async def test_no_bad_signature_has_any_effect_and_the_outputs_are_signed(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path
) -> None:
    hpcb, hpcb_rsa = identity("HPCBCNSHXXX"), identity("HPCBCNSHXXX", kind="rsa")
    expired = identity("HPCBCNSHXXX", valid_from_days=-30, valid_to_days=-1)
    jadb, stranger, gateway_key = identity("JADBCNBJXXX"), identity("X"), identity("GW")
    directory = directory_with(
        tmp_path, {"HPCBCNSHXXX": [hpcb, hpcb_rsa, expired], "JADBCNBJXXX": [jadb]}
    )
    base = signing_config(tmp_path, directory, gateway_key)
    good = signed(PAYMENT, hpcb)
    bad = {
        "DS21": PAYMENT,
        "DS0A": tamper(good, b">1250000.00<", b">1250000.01<"),
        "DS0E": signed(PAYMENT, jadb),
        "DS0D": signed(PAYMENT, expired),
        "DS0B": signed_by_hand(PAYMENT, hpcb_rsa, algorithm=xmlsec.constants.TransformRsaSha1),
    }
    more_bad = [
        ("DS0A", tamper(good, b"ON-BIZ-P8-0001", b"ON-BIZ-P8-0002")),
        ("DS0E", signed(PAYMENT, stranger)),
        ("DS0B", signed_by_hand(PAYMENT, hpcb, uri="#doc", reference_id="doc")),
        ("DS0B", signed_by_hand(PAYMENT, hpcb, uri="http://attacker.example/doc")),
        ("DS0B", _with_a_second_signature(good)),
        ("DS0B", _moved_into_the_document(good)),
    ]
    cases = [*bad.items(), *more_bad]
    config = gateway_config(f"s{uuid.uuid4().hex[:10]}", state, base=base)
    async with running_gateway(config, kafka_bootstrap) as gateway:
        # Every bad one first, all carrying the genuine payment's ids; the good one last.
        await gateway.publish("onshore", *(data for _, data in cases), good)
        rejects = await gateway.read(config.onshore.outbound_topic, len(cases))
        translated = await gateway.read(config.offshore.outbound_topic, 1)
        dead = await gateway.read(config.kafka.dlq_topic, len(cases))
        obligations = await gateway.store.obligations()

    assert sorted(dict(r.headers)["reject-reason"].decode() for r in rejects) == sorted(
        code for code, _ in cases
    )
    assert len(dead) == len(cases)
    # The genuine payment went through, once: the refused copies claimed nothing of its ids.
    assert len(translated) == 1 and len(obligations) == 1
    assert obligations[0][0].reference == "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"
    key = xmlsec.Key.from_memory(gateway_key.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    for record in [*rejects, *translated]:
        root = etree.fromstring(record.value)
        (signature,) = root.findall(f".//{{{DS}}}Signature")
        ctx = xmlsec.SignatureContext()
        ctx.key = key
        ctx.verify(signature)
        read_message(record.value)
