"""Liquidity saving end to end over Kafka, on both stores: two participants, each over its
cap, with payments to each other: both are held, then released together by offsetting, and
nothing else changes (a third payer's payment that cannot fit stays held). What the operator
sees: `connect-gateway liquidity`, the cycle report's liquidity figures, the metrics and the
MQTT event. With offsetting off, the two stay held."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema
import pytest

from gateway.config import MqttSection, SettlementSection, StateSection, TranslationSection
from tests.conftest import ROOT
from tests.harness import capped_directory, gateway_config, http_get, running_gateway, sample
from tests.ops_io import Listener, scrape
from tests.servers import Mosquitto

UETR = "0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01"


def hpcb_pays_vhbk() -> bytes:  # 1,250,000.00: over HPCB's cap of 1,000,000.00
    return sample("onshore", "pacs.008.001.08")


def vhbk_pays_hpcb() -> bytes:  # 1,100,000.00: over VHBK's cap of 1,000,000.00
    return sample("offshore", "pacs.008.001.08").replace(b">1250000.00<", b">1100000.00<")


def jadb_pays_vhbk() -> bytes:  # 3,000,000.00: more than JADB's cap allows, whatever happens
    return (
        sample("onshore", "pacs.008.001.08")
        .replace(b"HPCBCNSHXXX", b"JADBCNBJXXX")
        .replace(b"313290012345", b"313100054321")
        .replace(b"-0001<", b"-0003<")
        .replace(UETR.encode(), str(uuid.UUID(int=3, version=4)).encode())
        .replace(b">1250000.00<", b">3000000.00<")
    )


def types(records: list[object]) -> list[bytes]:
    return [dict(r.headers).get("message-type", b"") for r in records]  # type: ignore[attr-defined]


@pytest.mark.mqtt
@pytest.mark.parametrize("offsetting", ["multilateral", "off"])
async def test_two_payers_over_their_caps_are_released_together_by_offsetting(
    kafka_bootstrap: str, state: StateSection, mosquitto: Mosquitto, tmp_path: Path, offsetting: str
) -> None:
    caps = {"HPCBCNSHXXX": "1000000.00", "VHBKHKHHXXX": "1000000.00", "JADBCNBJXXX": "1000000.00"}
    directory = capped_directory(tmp_path, caps)
    config = gateway_config(
        f"l{uuid.uuid4().hex[:10]}",
        state,
        SettlementSection(cut_offs=(), offsetting=offsetting),
    )
    prefix = f"liquidity/{uuid.uuid4().hex[:8]}"
    config = dataclasses.replace(
        config,
        translation=TranslationSection(directory=directory),
        mqtt=MqttSection(
            host=mosquitto.host,
            port=mosquitto.port,
            client_id=f"gateway-{uuid.uuid4().hex[:6]}",
            prefix=prefix,
        ),
    )
    async with (
        Listener(mosquitto, prefix, f"dashboard-{uuid.uuid4().hex[:6]}") as dashboard,
        running_gateway(config, kafka_bootstrap, operated=True) as gw,
    ):
        assert gw.ops is not None and gw.cycles is not None
        await gw.publish("onshore", jadb_pays_vhbk(), key=b"JADB")
        await gw.publish("onshore", hpcb_pays_vhbk(), key=b"HPCB")
        await gw.publish("offshore", vhbk_pays_hpcb(), key=b"VHBK")
        for _ in range(1200):  # a hang guard of ~60 s
            if gw.pipeline.processed >= 3:
                break
            await asyncio.sleep(0.05)
        held = {h.payer: h.status for h in await gw.store.held()}
        if offsetting == "off":
            assert held == dict.fromkeys(("JADBCNBJXXX", "HPCBCNSHXXX", "VHBKHKHHXXX"), "queued")
            assert await gw.store.obligations() == []
            return
        # Released together, each to the other side, as a credit release would publish them.
        assert held == {
            "JADBCNBJXXX": "queued",
            "HPCBCNSHXXX": "released",
            "VHBKHKHHXXX": "released",
        }
        to_offshore = await gw.read(config.offshore.outbound_topic, 1)
        to_onshore = await gw.read(config.onshore.outbound_topic, 1)
        assert types(to_offshore) == types(to_onshore) == [b"pacs.008.001.08"]
        assert UETR.encode() in to_offshore[0].value
        positions = await gw.store.positions("CNY-000001")
        assert positions == {"HPCBCNSHXXX": -15000000, "VHBKHKHHXXX": 15000000}  # fen

        # What the operator sees now: nothing more to release; JADB's payment still waits.
        toml = tmp_path / "gateway.toml"
        stored = (
            f'backend = "postgres"\npostgres_dsn = "{state.postgres_dsn}"\n'
            if state.backend == "postgres"
            else f'sqlite_path = "{state.sqlite_path}"\n'
        )
        toml.write_text(f'[state]\n{stored}[translation]\ndirectory = "{directory}"\n')
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gateway.cli", "--config", str(toml), "liquidity",
             "--format", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        by = {p["participant"]: p for p in shown["participants"]}
        assert by["HPCBCNSHXXX"]["position"] == "-150000.00"
        assert by["HPCBCNSHXXX"]["headroom"] == "850000.00"
        (jadb,) = by["JADBCNBJXXX"]["held"]
        assert jadb["amount"] == "3000000.00" and jadb["to"] == ["VHBKHKHHXXX"]
        assert shown["offset_would_release"]["payments"] == [] and shown["held"] == 1

        # Metrics: one run, two payments, 2,350,000 gross less 150,000 net change.
        for _ in range(150):  # the store is read every 10 s (a hang guard of ~30 s)
            _, body = await http_get(gw.ops.http_port, "/metrics")
            seen = scrape(body)
            if seen.get(("connect_gateway_offset_released_payments", ())) == 2:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(sorted(k for k in seen if "offset" in k[0]))
        assert seen[("connect_gateway_offset_runs", ())] == 1
        assert seen[("connect_gateway_liquidity_saved", ())] == 2200000.0
        event = await dashboard.wait_for(f"{prefix}/liquidity/CNY", offset_released=2)
        assert event["liquidity_saved"] == "2200000.00" and event["held"] == 1
        schema = json.loads(
            (ROOT / "docs" / "events.md").read_text().split("```json\n")[1].split("```")[0]
        )
        jsonschema.validate(event, schema)

        # The cycle's report.
        assert await gw.cycles.close_now("CNY") == "CNY-000001"
        (cycle,) = [c for c in await gw.store.cycles() if c.id == "CNY-000001"]
        assert cycle.summary is not None
        liquidity = json.loads(cycle.summary)["liquidity"]
        assert liquidity["offsetting_runs"] == 1 and liquidity["offset_released"] == 2
        assert liquidity["offset_gross"] == "2350000.00"
        assert liquidity["liquidity_saved"] == "2200000.00"
        assert liquidity["held_released"] == 2 and liquidity["held_seconds_max"] >= 0
