"""The service end to end over a real broker: plain Kafka clients in, plain Kafka clients out.

The gateway runs in-process (its own consumer group, producer and state store: each test runs
once on SQLite and once on PostgreSQL) against the
broker of the fixtures; the test publishes with a bare aiokafka producer, as a partner would,
and reads the outbound topics with a bare aiokafka consumer.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from gateway.config import StateSection
from gateway.idempotency import extract_keys
from gateway.iso20022.profiles import ProfileSet
from gateway.iso20022.reader import read_message
from tests.harness import Running, gateway_config, running_gateway, sample

pytestmark = pytest.mark.kafka


@pytest.fixture
def workers(request: pytest.FixtureRequest) -> int:
    """gateway.workers: 0 (a thread) unless a test asks for worker processes."""
    return int(getattr(request, "param", 0))


@pytest.fixture
async def gateway(
    kafka_bootstrap: str, state: StateSection, workers: int
) -> AsyncIterator[Running]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    config = gateway_config(prefix, state)
    config = dataclasses.replace(
        config, gateway=dataclasses.replace(config.gateway, workers=workers)
    )
    async with running_gateway(config, kafka_bootstrap) as running:
        yield running


@pytest.mark.parametrize("workers", [0, 2], indirect=True, ids=["thread", "2-workers"])
async def test_messages_cross_to_the_other_side_and_status_reports_flow_back(
    gateway: Running, profiles: dict[str, ProfileSet]
) -> None:
    await gateway.publish("onshore", sample("onshore", "pacs.008.001.08"))
    await gateway.publish(
        "offshore", sample("offshore", "pacs.008.001.08"), sample("offshore", "sese.023.001.09")
    )
    offshore_out = await gateway.read(gateway.config.offshore.outbound_topic, 1)
    onshore_out = await gateway.read(gateway.config.onshore.outbound_topic, 2)
    assert len(offshore_out) == 1 and len(onshore_out) == 2
    for record, side in [(r, "offshore") for r in offshore_out] + [
        (r, "onshore") for r in onshore_out
    ]:
        msg = read_message(record.value)
        profiles[side].validate(msg)
        assert record.key.startswith(b"msg:")
        headers = dict(record.headers)
        assert headers["message-type"] == msg.msg_def.encode()
        assert headers["source-topic"].endswith(b".inbound")
    kinds = sorted(dict(r.headers)["message-type"] for r in onshore_out)
    assert kinds == [b"pacs.008.001.08", b"sese.023.001.09"]

    # The offshore side's status on the onshore payment goes back to the onshore sender.
    await gateway.publish("offshore", sample("offshore", "pacs.002.001.10"))
    back = await gateway.read(gateway.config.onshore.outbound_topic, 3)
    status = [r for r in back if dict(r.headers)["message-type"] == b"pacs.002.001.10"]
    assert len(status) == 1
    answer = read_message(status[0].value)
    assert answer.header_text("To/FIId/FinInstnId/BICFI") == "HPCBCNSHXXX"
    assert answer.doc_text("FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId") == "ON-MSG-P8-0001"

    obligations = await gateway.store.obligations()
    assert sorted((o.reference, o.amount.amount, status) for o, status in obligations) == [
        ("0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01", Decimal("1250000.00"), "open"),
        ("5e9d2a7b-3c84-4f1e-a6b2-8d0c4e7f1a22", Decimal("1250000.00"), "open"),
        ("sese:OFF-SESE-0001", Decimal("10125000.00"), "open"),
    ]
    assert await gateway.read(gateway.config.kafka.dlq_topic, 0, settle=0.5) == []


async def test_duplicates_resends_and_key_reuse(gateway: Running) -> None:
    original = sample("onshore", "pacs.008.001.08")
    resend = original.replace(b"</CreDt>", b"</CreDt>\n    <PssblDplct>true</PssblDplct>")
    changed = original.replace(b">1250000.00<", b">1250000.01<", 1)
    # A resend under a new BizMsgIdr, found by its UETR: also answered with the same result.
    renamed = resend.replace(b"ON-BIZ-P8-0001", b"ON-BIZ-P8-0001-R")
    # Keyed by idempotency key, as partners publish: one partition, so order is kept.
    key = extract_keys(read_message(original)).message.encode()
    await gateway.publish("onshore", original, original, resend, renamed, changed, key=key)
    offshore_out = await gateway.read(gateway.config.offshore.outbound_topic, 3, settle=2.5)
    # The copy is not re-processed; the flagged resends are answered with the same result.
    assert len(offshore_out) == 3
    assert offshore_out[0].value == offshore_out[1].value == offshore_out[2].value
    assert (
        offshore_out[0].key
        == offshore_out[1].key
        == extract_keys(read_message(original)).message.encode()
    )
    # A different message under a used key is a duplicate: DU01 to the sender, DLQ copy.
    rejects = await gateway.read(gateway.config.onshore.outbound_topic, 1)
    assert len(rejects) == 1 and dict(rejects[0].headers)["reject-reason"] == b"DU01"
    reject = read_message(rejects[0].value)
    assert reject.doc_text("FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd") == "DU01"
    dlq = await gateway.read(gateway.config.kafka.dlq_topic, 1)
    assert len(dlq) == 1 and dlq[0].value == changed
    assert len(await gateway.store.obligations()) == 1


async def test_poison_and_hostile_records_are_rejected_and_the_partition_keeps_flowing(
    gateway: Running,
) -> None:
    good = sample("onshore", "pacs.009.001.08")
    hostile = [
        b"\x00\x01 not xml at all",
        b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>',
        good + b"<!--" + b"x" * (2 * 1024 * 1024) + b"-->",
        b"",
        sample("offshore", "pacs.008.001.08"),  # the other dialect: invalid on this side
    ]
    # One key: one partition, so the good message queues behind every bad one.
    await gateway.publish("onshore", *hostile, good, key=b"same-partition")
    translated = await gateway.read(gateway.config.offshore.outbound_topic, 1)
    assert (
        len(translated) == 1 and dict(translated[0].headers)["message-type"] == b"pacs.009.001.08"
    )
    rejects = await gateway.read(gateway.config.onshore.outbound_topic, len(hostile))
    assert len(rejects) == len(hostile)
    assert {dict(r.headers)["reject-reason"] for r in rejects} == {b"FF01"}
    assert all(read_message(r.value).msg_def == "admi.002.001.01" for r in rejects)
    dlq = await gateway.read(gateway.config.kafka.dlq_topic, len(hostile))
    assert len(dlq) == len(hostile)
    kinds = sorted(dict(r.headers)["error-kind"] for r in dlq)
    assert kinds == sorted([b"not-xml", b"forbidden-markup", b"too-large", b"empty", b"schema"])
    big = next(r for r in dlq if dict(r.headers)["error-kind"] == b"too-large")
    assert dict(big.headers)["truncated-from"] == str(len(hostile[2])).encode()
    assert hostile[2].startswith(big.value)
    assert {r.value for r in dlq if r is not big} == set(hostile) - {hostile[2]}


async def test_a_status_that_overtook_its_original_waits_on_the_retry_topics(
    gateway: Running,
) -> None:
    status = sample("offshore", "pacs.002.001.10")
    never = status.replace(
        b"0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01", b"0b7c3f2e-6d1a-4c55-9e8b-000000000000"
    )
    for old, new in [
        (b"OFF-BIZ-P2-0001", b"OFF-BIZ-P2-0099"),
        (b"OFF-MSG-P2-0001", b"OFF-MSG-P2-0099"),
        (b"ON-MSG-P8-0001", b"ON-MSG-P8-0099"),
    ]:
        never = never.replace(old, new)
    await gateway.publish("offshore", status, never)
    # Both are seen, cannot be correlated, and wait for their second attempt.
    waiting = await gateway.read(gateway.config.kafka.retry_topic(2), 2, settle=0)
    assert len(waiting) == 2
    await gateway.publish("onshore", sample("onshore", "pacs.008.001.08"))

    back = await gateway.read(gateway.config.onshore.outbound_topic, 1)
    assert len(back) == 1
    answered = back[0]
    # The overtaking status went round the retry topics, then correlated and crossed over.
    assert dict(answered.headers)["message-type"] == b"pacs.002.001.10"
    assert int(dict(answered.headers)["attempt"]) >= 2
    assert dict(answered.headers)["source-topic"] == gateway.config.offshore.inbound_topic.encode()
    translated = read_message(answered.value)
    assert (
        translated.doc_text("FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId")
        == "ON-MSG-P8-0001"
    )
    # The one whose original never came: every attempt used, then rejected to its sender and
    # dead-lettered.
    rejected = await gateway.read(gateway.config.offshore.outbound_topic, 2)
    rejected = [r for r in rejected if "reject-reason" in dict(r.headers)]
    assert len(rejected) == 1 and dict(rejected[0].headers)["attempt"] == b"3"
    # A status report is not answered with another status report: admi.002 names it.
    answer = read_message(rejected[0].value)
    assert answer.msg_def == "admi.002.001.01"
    assert answer.doc_text("admi.002.001.01/RltdRef/Ref") == "OFF-BIZ-P2-0099"
    dlq = await gateway.read(gateway.config.kafka.dlq_topic, 1)
    assert len(dlq) == 1 and dlq[0].value == never
    assert dict(dlq[0].headers)["error-kind"] == b"uncorrelated"
    retried = await gateway.read(gateway.config.kafka.retry_topic(2), 2, settle=0.5)
    assert {r.value for r in retried} >= {never}
    assert all(float(dict(r.headers)["not-before"]) > 0 for r in retried)
    # Both were decided at last: no later answer about their payments waits behind them.
    assert await gateway.store.waiting() == []


async def test_a_reject_is_logged_once_with_its_ids_and_reason(
    gateway: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """Every committed reject is one log line (key, origin, reason); a copy of the rejected
    record, delivered again, is neither logged nor dead-lettered a second time."""
    import logging

    caplog.set_level(logging.WARNING, logger="gateway.pipeline")
    # Readable, but not valid in its profile: its type is known, its content refused.
    broken = sample("onshore", "pacs.008.001.08").replace(b">SHAR<", b">NONE<", 1)
    await gateway.publish("onshore", broken, broken, key=b"same-partition")
    dlq = await gateway.read(gateway.config.kafka.dlq_topic, 1, settle=2.5)
    assert len(dlq) == 1
    # The reject names its own type; the DLQ copy the input's.
    (reject,) = await gateway.read(gateway.config.onshore.outbound_topic, 1, settle=0.5)
    own = read_message(reject.value).msg_def
    assert dict(reject.headers)["message-type"] == own.encode() != b"pacs.008.001.08"
    assert dict(reject.headers)["reject-reason"] == b"FF01"
    assert dict(dlq[0].headers)["message-type"] == b"pacs.008.001.08"
    lines = [r for r in caplog.records if r.getMessage().startswith("rejected ")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert getattr(lines[0], "reason", None) == "FF01"
    assert "onshore.inbound:" in getattr(lines[0], "origin", "")
