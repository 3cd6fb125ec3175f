"""The PostgreSQL state store goes away and comes back while the gateway runs.

A record that arrives meanwhile waits (the batch is retried in place, with backoff and jitter)
and is processed once the database is back; what was accepted before is still there. The
database is the test's own cluster, since the test stops it.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from gateway.config import StateSection
from gateway.embedded_broker import BrokerStartError
from tests.harness import gateway_config, running_gateway, sample
from tests.servers import Postgres

pytestmark = pytest.mark.kafka


async def test_the_gateway_waits_for_its_database_and_loses_nothing(kafka_bootstrap: str) -> None:
    server = Postgres()
    try:
        await asyncio.to_thread(server.start)
    except BrokerStartError as exc:
        server.stop()
        pytest.fail(f"cannot start PostgreSQL: {exc}", pytrace=False)
    try:
        conn = await asyncpg.connect(server.dsn())
        await conn.execute("CREATE DATABASE gateway")
        await conn.close()
        state = StateSection(backend="postgres", postgres_dsn=server.dsn("gateway"))
        config = gateway_config(f"db{uuid.uuid4().hex[:10]}", state, transient_retry_seconds=90)
        async with running_gateway(config, kafka_bootstrap) as gw:
            await gw.publish("onshore", sample("onshore", "pacs.008.001.08"))
            assert len(await gw.read(config.offshore.outbound_topic, 1, settle=0)) == 1

            await asyncio.to_thread(server.stop, True)  # the database goes away
            await gw.publish("onshore", sample("onshore", "pacs.009.001.08"))
            await asyncio.sleep(4)  # the batch meets the outage and is retried in place
            assert gw.task is not None and not gw.task.done()
            assert len(await gw.read(config.offshore.outbound_topic, 1, settle=0.5)) == 1
            await asyncio.to_thread(server.start)  # back, same port, same data

            out = await gw.read(config.offshore.outbound_topic, 2, wait=90)
            # Outputs are at least once: a row published just before the database went
            # away may be published again after, as the same record (key and bytes).
            by_key: dict[bytes, set[bytes]] = {}
            for r in out:
                by_key.setdefault(r.key, set()).add(r.value)
            assert all(len(values) == 1 for values in by_key.values())
            kinds = sorted({dict(r.headers)["message-type"] for r in out})
            assert kinds == [b"pacs.008.001.08", b"pacs.009.001.08"] and len(by_key) == 2
            assert len(await gw.store.obligations()) == 2
            assert (await gw.store.counts())["unsent"] == 0
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_connection_never_released_does_not_keep_the_store_from_closing(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg's close waits for every connection to be released; one leaked by a
    cancellation at the wrong moment never is. The store drops it after its bound, so a stop
    ends (the 60 s here is a hang guard, not a speed goal)."""
    from gateway.state import postgres

    monkeypatch.setattr(postgres, "CLOSE_SECONDS", 1, raising=False)
    store = postgres.PostgresStore(postgres_dsn)
    await store.open()
    await store.pool.acquire()  # never released, as after the cancellation
    async with asyncio.timeout(60):
        await store.close()
    # Its server session is gone too: nothing of the store stays connected.
    watcher = await asyncpg.connect(postgres_dsn)
    try:
        async with asyncio.timeout(60):
            # The server's view, polled: it notices a dropped socket in its own time.
            while await watcher.fetchval(  # noqa: ASYNC110
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid != pg_backend_pid()"
            ):
                await asyncio.sleep(0.1)
    finally:
        await watcher.close()
