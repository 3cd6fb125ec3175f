"""The PostgreSQL state store goes away and comes back while the gateway runs.

A record that arrives meanwhile waits (the batch is retried in place, with backoff and jitter)
and is processed once the database is back; what was accepted before is still there. The
database is the test's own cluster, since the test stops it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from bench.translate import messages
from gateway.config import StateSection
from gateway.embedded_broker import BrokerStartError
from gateway.replay.clients import publish, read_topic
from gateway.topics import ensure_topics
from tests.harness import gateway_config, running_gateway, sample
from tests.servers import Postgres
from tests.test_crash import start_gateway, write_config

pytestmark = pytest.mark.kafka


async def own_database() -> tuple[Postgres, StateSection]:
    """A PostgreSQL cluster of the test's own (the test stops it) with a gateway database."""
    server = Postgres()
    try:
        await asyncio.to_thread(server.start)
    except BrokerStartError as exc:
        server.stop()
        pytest.fail(f"cannot start PostgreSQL: {exc}", pytrace=False)
    conn = await asyncpg.connect(server.dsn())
    await conn.execute("CREATE DATABASE gateway")
    await conn.close()
    return server, StateSection(backend="postgres", postgres_dsn=server.dsn("gateway"))


async def test_the_gateway_waits_for_its_database_and_loses_nothing(kafka_bootstrap: str) -> None:
    server, state = await own_database()
    try:
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

            # Outputs are at least once: a row published just before the database went
            # away may be published again after, as the same record (key and bytes). So the
            # read waits for two distinct keys, not two records (a repeat of the pacs.008
            # ended a read of two records before the pacs.009 came, seen in a test run).
            out = await read_topic(
                kafka_bootstrap, config.offshore.outbound_topic, 2, 90, distinct_keys=True
            )
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


async def test_sigterm_during_a_database_outage_exits_0_and_the_record_comes_again(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The database goes away while a batch is being committed: the batch is retried in place
    (kafka.transient_retry_seconds is long here), and SIGTERM still ends the service with exit
    0, without waiting the fault out. Its offsets were not committed, so the record is
    processed once the database is back, by the next start. The outage is logged by the store
    when it starts, not with a traceback every tick."""
    server, state = await own_database()
    proc = None
    try:
        config_file, config = write_config(tmp_path, state)
        config_file.write_text(
            config_file.read_text().replace("[kafka]\n", "[kafka]\ntransient_retry_seconds = 600\n")
        )
        log = tmp_path / "gateway.log"
        await ensure_topics(kafka_bootstrap, config.topics())
        proc = start_gateway(config_file, kafka_bootstrap, log)
        async with asyncio.timeout(90):
            while b"gateway ready" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()
                await asyncio.sleep(0.2)
        await publish(
            kafka_bootstrap,
            config.onshore.inbound_topic,
            [(b"k", sample("onshore", "pacs.008.001.08"))],
        )
        assert len(await read_topic(kafka_bootstrap, config.offshore.outbound_topic, 1)) == 1

        await asyncio.to_thread(server.stop, True)  # the database goes away
        await publish(
            kafka_bootstrap,
            config.onshore.inbound_topic,
            [(b"k", sample("onshore", "pacs.009.001.08"))],
        )
        await asyncio.sleep(3)  # the batch meets the outage and is retried in place
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 150)
        assert code == 0, log.read_text()[-3000:]
        # The fault was not waited out (its retry budget is 10 minutes): the batch was
        # abandoned at the stop, and the stop ended by itself, not cut short by the service.
        text = log.read_text()
        assert "the batch in flight is abandoned" in text, text[-3000:]
        assert "cut short" not in text and "settlement tick failed" not in text, text[-3000:]

        await asyncio.to_thread(server.start)  # back, with what was committed
        async with running_gateway(config, kafka_bootstrap) as gw:
            out = await gw.read(config.offshore.outbound_topic, 2, wait=90)
            kinds = {dict(r.headers)["message-type"] for r in out}
            assert kinds == {b"pacs.008.001.08", b"pacs.009.001.08"}
            assert len(await gw.store.obligations()) == 2
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await asyncio.to_thread(server.stop)


async def test_three_instances_ride_out_a_database_restart_quietly_and_stop_on_any_sigterm(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Three instances share a PostgreSQL store that restarts under them: each logs the outage
    once when it starts and once when it ends, and no traceback (asyncpg's pool included);
    every payment is applied once. Then each stops on SIGTERM, one of them signalled again
    and again all through its stop: every stop still ends with exit 0."""
    server, state = await own_database()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        config_file, config = write_config(tmp_path, state)
        await ensure_topics(kafka_bootstrap, config.topics())
        logs = [tmp_path / f"gateway-{i}.log" for i in range(3)]
        procs = [start_gateway(config_file, kafka_bootstrap, log) for log in logs]
        async with asyncio.timeout(120):
            for proc, log in zip(procs, logs, strict=True):
                while b"gateway ready" not in log.read_bytes():
                    assert proc.poll() is None, log.read_text()[-3000:]
                    await asyncio.sleep(0.2)
        payloads = messages(40, distinct=False, seed=7)
        topic = config.onshore.inbound_topic
        await publish(
            kafka_bootstrap, topic, [(str(i).encode(), p) for i, p in enumerate(payloads[:20])]
        )
        await read_topic(
            kafka_bootstrap, config.offshore.outbound_topic, 20, 90, distinct_keys=True
        )

        await asyncio.to_thread(server.stop, True)  # the database restarts under them
        await publish(
            kafka_bootstrap, topic, [(str(i).encode(), p) for i, p in enumerate(payloads[20:])]
        )
        await asyncio.sleep(4)  # every instance meets the outage (its settlement ticks, at least)
        await asyncio.to_thread(server.start)
        out = await read_topic(
            kafka_bootstrap, config.offshore.outbound_topic, 40, 120, distinct_keys=True
        )
        assert len({r.key for r in out}) == 40

        first, *others = procs
        for proc in others:
            proc.send_signal(signal.SIGTERM)
        # One instance is told again and again, all through its stop, as an impatient
        # supervisor or operator would: the stop must not be cut short.
        first.send_signal(signal.SIGTERM)
        async with asyncio.timeout(150):
            while first.poll() is None:
                first.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.05)
        codes = [first.returncode, *[await asyncio.to_thread(p.wait, 150) for p in others]]
        texts = [log.read_text() for log in logs]
        assert codes == [0, 0, 0], (codes, texts[0][-3000:])
        for text in texts:
            assert "Traceback" not in text, text[-5000:]
            assert text.count("state store unavailable") == 1, text[-3000:]
            assert text.count("state store available again") == 1, text[-3000:]
            assert "stopped after" in text, text[-3000:]
        async with running_gateway(config, kafka_bootstrap) as gw:
            assert len(await gw.store.obligations()) == 40
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        await asyncio.to_thread(server.stop)
