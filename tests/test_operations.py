"""What an operator sees and does, over real sockets: MQTT events on a Mosquitto that
authenticates and authorises as in production, the retained cycle state, the control topic,
and the Prometheus metrics scraped over HTTP and parsed with Prometheus's own text parser."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from gateway.config import MqttSection, StateSection
from tests.conftest import ROOT
from tests.harness import gateway_config, http_get, running_gateway, sample
from tests.ops_io import Listener, command, scrape
from tests.servers import Mosquitto, running

pytestmark = [pytest.mark.kafka, pytest.mark.mqtt]

PREFIX = "cgw"
ACL = f"""# Anonymous clients (operators' consoles, dashboards): read the gateway's events, write
# only the control topic named after their own client id (each test has its own prefix
# level below cgw/).
topic read {PREFIX}/#
pattern write {PREFIX}/+/control/%c

user gateway
topic readwrite {PREFIX}/#
"""


@pytest.fixture(scope="module")
def secured_mosquitto() -> Iterator[Mosquitto]:
    yield from running(Mosquitto(users={"gateway": "gw-secret"}, acl=ACL), "Mosquitto")


async def test_events_metrics_and_the_control_topic(
    kafka_bootstrap: str, secured_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = f"{PREFIX}/{uuid.uuid4().hex[:8]}"
    config = gateway_config(
        f"o{uuid.uuid4().hex[:10]}", StateSection(sqlite_path=str(tmp_path / "s.sqlite3"))
    )
    config = dataclasses.replace(
        config,
        mqtt=MqttSection(
            host=secured_mosquitto.host,
            port=secured_mosquitto.port,
            client_id=f"gateway-{uuid.uuid4().hex[:6]}",
            username="gateway",
            password="gw-secret",
            prefix=prefix,
            control_clients=("ops-console",),
        ),
    )
    async with (
        Listener(secured_mosquitto, prefix, "dashboard") as seen,
        running_gateway(config, kafka_bootstrap, operated=True) as gw,
    ):
        assert gw.ops is not None and gw.ops.http_port
        await seen.wait_for(f"{prefix}/health", status="ready")
        await gw.publish("onshore", sample("onshore", "pacs.008.001.08"), b"<Document/>")
        await seen.wait_for(
            f"{prefix}/message/onshore", status="translated", message_type="pacs.008.001.08"
        )
        rejected = await seen.wait_for(f"{prefix}/message/onshore", status="rejected")
        assert rejected["reason"] == "FF01"
        # Ids and codes only: no names, accounts or text of the payment.
        assert all("上海" not in json.dumps(p, ensure_ascii=False) for _, p, _ in seen.got)

        # Not on the allow-list: refused, answered, counted; the cycle stays open.
        await command(
            secured_mosquitto,
            "intruder",
            f"{prefix}/control/intruder",
            {"command": "cycle.close", "currency": "CNY"},
        )
        refused = await seen.wait_for(f"{prefix}/control/intruder/result")
        assert refused == {"accepted": False, "error": "not authorised"}
        # Posing as an allowed client: the broker's ACL drops it before the gateway sees it.
        await command(
            secured_mosquitto,
            "intruder",
            f"{prefix}/control/ops-console",
            {"command": "cycle.close", "currency": "CNY"},
        )
        await asyncio.sleep(1)
        assert [c.status for c in await gw.store.cycles()] == ["open"]

        await command(
            secured_mosquitto,
            "ops-console",
            f"{prefix}/control/ops-console",
            {"command": "cycle.close", "currency": "CNY"},
        )
        done = await seen.wait_for(f"{prefix}/control/ops-console/result")
        assert done == {"accepted": True, "command": "cycle.close", "cycle": "CNY-000001"}
        closed = await seen.wait_for(f"{prefix}/cycle/CNY", cycle="CNY-000001")
        assert closed["status"] == "instructed" and closed["obligations"] == 1
        await seen.wait_for(f"{prefix}/cycle/CNY/open", cycle="CNY-000002")
        await command(
            secured_mosquitto, "ops-console", f"{prefix}/control/ops-console", {"command": "reboot"}
        )
        unknown = await seen.wait_for(f"{prefix}/control/ops-console/result", accepted=False)
        assert "unknown command" in unknown["error"]

        published = (
            "connect_gateway_records_published_total",
            (("topic", config.offshore.outbound_topic),),
        )
        for _ in range(50):  # the relay publishes what the close queued within its poll
            status, body = await http_get(gw.ops.http_port, "/metrics")
            assert status == 200
            m = scrape(body)
            if m.get(published, 0) >= 3:  # the payment, the pacs.029, VHBK's camt.053
                break
            await asyncio.sleep(0.1)
        on = (("side", "onshore"),)
        assert (
            m[("connect_gateway_messages_processed_total", (("outcome", "translated"), *on))] == 1
        )
        assert m[("connect_gateway_messages_processed_total", (("outcome", "rejected"), *on))] == 1
        assert m[("connect_gateway_messages_rejected_total", (("reason", "FF01"), *on))] == 1
        assert m[("connect_gateway_dead_lettered_total", on)] == 1
        assert m[("connect_gateway_control_commands_refused_total", ())] == 1
        assert m[("connect_gateway_processing_seconds_count", ())] == 2
        assert (
            m[
                (
                    "connect_gateway_cycles_closed_total",
                    (("currency", "CNY"), ("status", "instructed")),
                )
            ]
            == 1
        )
        assert (
            m[
                (
                    "connect_gateway_cycle_position",
                    (("currency", "CNY"), ("participant", "HPCBCNSHXXX")),
                )
            ]
            == -1250000.0
        )
        assert m[published] == 3
        assert (
            m[("connect_gateway_mqtt_connected", ())] == 1 and m[("connect_gateway_ready", ())] == 1
        )

    # Every event matches the schema documented for partners and operators.
    schema = json.loads(
        (ROOT / "docs" / "events.md").read_text().split("```json\n")[1].split("```")[0]
    )
    events = [p for t, p, _ in seen.got if "/control/" not in t]
    assert len(events) >= 6
    for payload in events:
        jsonschema.validate(payload, schema)

    # A dashboard that connects later gets the latest state at once (retained).
    async with Listener(secured_mosquitto, prefix, "late-dashboard") as late:
        retained = await late.wait_for(f"{prefix}/cycle/CNY", wait=5)
        assert retained["cycle"] == "CNY-000001"
        assert (await late.wait_for(f"{prefix}/health", wait=5))["status"] == "stopped"
        assert all(r for t, _, r in late.got if t.endswith(("/cycle/CNY", "/health")))


async def test_a_paused_side_waits_in_kafka_and_resumes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = gateway_config(
        f"p{uuid.uuid4().hex[:10]}", StateSection(sqlite_path=str(tmp_path / "s.sqlite3"))
    )
    async with running_gateway(config, kafka_bootstrap, operated=True) as gw:
        assert gw.ops is not None
        assert await gw.ops.command({"command": "side.pause", "side": "onshore"}) == {
            "side": "onshore",
            "paused": ["onshore"],
        }
        await gw.publish("onshore", sample("onshore", "pacs.008.001.08"))
        await gw.publish("offshore", sample("offshore", "pacs.008.001.08"))
        assert len(await gw.read(config.onshore.outbound_topic, 1)) == 1  # offshore flows
        assert await gw.read(config.offshore.outbound_topic, 0, settle=2) == []
        await gw.ops.command({"command": "side.resume", "side": "onshore"})
        assert len(await gw.read(config.offshore.outbound_topic, 1)) == 1


@pytest.mark.kafka
async def test_ready_means_the_consumer_has_its_partitions(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """/readyz answers 200 only once the group has given the instance its partitions; before
    that it says which check is missing. A record published once it is ready is consumed."""
    config = gateway_config(
        f"r{uuid.uuid4().hex[:10]}", StateSection(sqlite_path=str(tmp_path / "s.sqlite3"))
    )
    async with running_gateway(config, kafka_bootstrap, operated=True) as gw:
        assert gw.ops is not None and gw.ops.http_port
        async with asyncio.timeout(60):
            while True:
                status, body = await http_get(gw.ops.http_port, "/readyz")
                checks = json.loads(body)["checks"]
                if status == 200:
                    break
                assert checks["broker"] and checks["state"] and not checks["consumer"], checks
                await asyncio.sleep(0.05)
        consumer = gw.pipeline.consumer
        assert checks["consumer"] and consumer is not None and consumer.assignment()
        await gw.publish("onshore", sample("onshore", "pacs.008.001.08"))
        assert len(await gw.read(config.offshore.outbound_topic, 1, settle=0)) == 1


async def test_the_directory_is_watched_while_idle(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Its version, the versions refused and each signer's certificate expiry are metrics,
    and a broken rotation shows without any message arriving (it used to be noticed only
    when a message needed the directory)."""
    from tests.signing import directory_with, identity, signing_config

    directory = directory_with(tmp_path, {"HPCBCNSHXXX": [identity("HPCBCNSHXXX")]})
    config = gateway_config(
        f"o{uuid.uuid4().hex[:10]}", StateSection(sqlite_path=str(tmp_path / "s.sqlite3"))
    )
    # The gateway's own key: valid for 30 days, so its expiry is told from the participants'.
    signing = signing_config(tmp_path, directory, identity("SHHKCNSHGWY", valid_to_days=30))
    config = dataclasses.replace(
        config,
        translation=dataclasses.replace(config.translation, directory=str(directory)),
        security=signing.security,
    )
    version = next(
        line.split('"')[1]
        for line in directory.read_text().splitlines()
        if line.startswith("version")
    )

    async def metrics(gw: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        _, body = await http_get(gw.ops.http_port, "/metrics")  # type: ignore[attr-defined]
        return scrape(body)

    async with running_gateway(config, kafka_bootstrap, operated=True) as gw:
        assert gw.ops is not None
        for _ in range(600):  # a hang guard of ~60 s
            seen = await metrics(gw)
            if seen.get(("connect_gateway_directory_version_info", (("version", version),))) == 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no directory version metric: {sorted(seen)[:20]}")
        (expiry,) = [
            value
            for (name, labels), value in seen.items()
            if name == "connect_gateway_certificate_expiry_seconds"
            and ("participant", "HPCBCNSHXXX") in labels
        ]
        assert 300 * 86400 < expiry < 366 * 86400  # the test certificate: valid for a year
        own = seen[("connect_gateway_signing_certificate_expiry_seconds", ())]
        assert 29 * 86400 < own <= 30 * 86400
        assert seen[("connect_gateway_directory_versions_refused", ())] == 0
        directory.write_text(directory.read_text() + "\n[[participant]]\nbic = 'BROKEN'\n")
        for _ in range(600):  # no message is sent: the watch re-reads the file (guard ~60 s)
            seen = await metrics(gw)
            if seen[("connect_gateway_directory_versions_refused", ())] == 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the broken version was not noticed while idle")
        assert seen.get(("connect_gateway_directory_version_info", (("version", version),))) == 1


def test_the_metrics_say_which_build_runs_and_how_the_process_does() -> None:
    """build_info, the process's and the interpreter's series, and no `_created` series."""
    from gateway import __version__
    from gateway.ops.metrics import Metrics

    metrics = Metrics()
    metrics.processed.labels("onshore", "translated").inc()
    seen = scrape(metrics.render())
    builds = [dict(labels) for name, labels in seen if name == "connect_gateway_build_info"]
    assert [b["version"] for b in builds] == [__version__]
    assert any(name.startswith("process_cpu_seconds") for name, _ in seen)
    assert any(name == "python_info" for name, _ in seen)
    assert not any(name.endswith("_created") for name, _ in seen)


async def test_the_held_queues_are_metrics(
    kafka_bootstrap: str, state: StateSection, tmp_path: Path
) -> None:
    """A payment held for its payer's cap shows in connect_gateway_held_payments and
    connect_gateway_held_amount (by currency and payer), read from the shared store, so every
    instance shows the same queue."""
    from gateway.config import TranslationSection
    from tests.harness import capped_directory
    from tests.test_reports import payment

    config = gateway_config(f"q{uuid.uuid4().hex[:10]}", state)
    directory = capped_directory(tmp_path, {"HPCBCNSHXXX": "2000000.00"})
    config = dataclasses.replace(config, translation=TranslationSection(directory=directory))
    async with running_gateway(config, kafka_bootstrap, operated=True) as gw:
        assert gw.ops is not None and gw.ops.http_port
        await gw.publish("onshore", payment(1, "1250000.00"), key=b"HPCB")
        await gw.publish("onshore", payment(2, "900000.00"), key=b"HPCB")  # over the cap: held
        assert len(await gw.read(config.offshore.outbound_topic, 1)) == 1
        labels = (("currency", "CNY"), ("participant", "HPCBCNSHXXX"))
        for _ in range(300):  # the queues are read every 10 s (a hang guard of ~60 s)
            _, body = await http_get(gw.ops.http_port, "/metrics")
            seen = scrape(body)
            if seen.get(("connect_gateway_held_payments", labels)) == 1:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(sorted(k for k in seen if "held" in k[0]))
        assert seen[("connect_gateway_held_amount", labels)] == 900000.0
        assert seen[("connect_gateway_outbox_unsent_records", ())] >= 0
