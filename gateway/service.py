"""`connect-gateway run`: wire configuration, broker, state store and pipeline; stop cleanly.

With no bootstrap servers configured, the embedded broker is started and its bootstrap address
printed, so a partner can publish with any Kafka client. SIGTERM and SIGINT finish the batch in
flight, commit it, leave the consumer group and close the state store.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys

from gateway.config import Config
from gateway.cycles import CycleManager
from gateway.embedded_broker import BrokerStartError, EmbeddedBroker
from gateway.instance import InstanceConflict, check_ports, lock_state_file
from gateway.kafka_clients import connection_options
from gateway.ops import logs
from gateway.ops.operations import Operations
from gateway.pipeline import Pipeline
from gateway.reference import ReferenceDataError, preflight
from gateway.state import store_for
from gateway.state.base import StateStore
from gateway.topics import ensure_topics
from gateway.translation import Translator

log = logging.getLogger(__name__)

# Once SIGTERM or SIGINT asks for a stop: how long the pipeline may take to finish its batch,
# leave the group and relay what is left (its own steps are bounded below this), then how long
# its cancellation may take.
STOP_DEADLINE_SECONDS = 90
CANCEL_WAIT_SECONDS = 10


async def _say_what_the_state_holds(config: Config, store: StateStore, embedded: bool) -> None:
    """The state outlives a broker: a message seen before is a duplicate, whatever the broker
    remembers. Said at start, so a sample published again after a restart of the embedded
    broker (which forgets everything) is not a silent mystery."""
    counts = await store.counts()
    where = config.state.sqlite_path if config.state.backend == "sqlite" else "PostgreSQL"
    log.info(
        "state store (%s) holds %d idempotency keys, %d obligations, %d rows to publish",
        where,
        counts["claims"],
        counts["obligations"],
        counts["unsent"],
        extra={"claims": counts["claims"]},
    )
    if embedded and counts["claims"]:
        log.warning(
            "the embedded broker starts empty, but the state store %s remembers %d idempotency "
            "keys from earlier runs: a message published again is a duplicate and is not "
            "processed again (start from a new state.sqlite_path for a clean slate)",
            where,
            counts["claims"],
        )


async def serve(config: Config) -> int:
    logs.configure(config.ops.log_format, config.ops.log_level, config.ops.kafka_client_log_level)
    # `kill -USR1 <pid>` writes every thread's stack to stderr: what a stop that hangs waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        # Before the broker starts: what run cannot use is one line and exit 2, as in
        # `config check` (the same function), never a traceback in a restart loop.
        reference = await asyncio.to_thread(preflight, config)
    except ReferenceDataError as exc:
        print(f"connect-gateway: configuration: {exc}", file=sys.stderr)
        return 2
    try:
        check_ports(config)
        held = lock_state_file(config)  # held until the process ends
    except InstanceConflict as exc:
        print(f"connect-gateway: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before anything is started (the embedded broker is a child process): a signal from now
    # on asks for a stop; none kills the process half-way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    broker: EmbeddedBroker | None = None
    bootstrap = config.kafka.bootstrap_servers
    if not bootstrap:
        broker = EmbeddedBroker(port=config.kafka.embedded_port)
        try:
            bootstrap = await asyncio.to_thread(broker.start)
        except BrokerStartError as exc:
            print(f"connect-gateway: cannot start the embedded broker: {exc}", file=sys.stderr)
            return 1
        log.info(
            "embedded Kafka-compatible broker (memory storage) on bootstrap %s",
            bootstrap,
            extra={"bootstrap": bootstrap},
        )
    store = store_for(config.state)
    stuck = False  # the pipeline ignored even its cancellation (see _until_stopped)
    try:
        await ensure_topics(
            bootstrap,
            config.topics(),
            config.kafka.topic_partitions,
            config.kafka.topic_replication,
            options=connection_options(config.kafka),
        )
        await store.open()
        await _say_what_the_state_holds(config, store, embedded=broker is not None)
        pipeline = Pipeline(
            config, store, bootstrap, translator=Translator(config, reference=reference)
        )
        cycles = CycleManager(config, store, pipeline.reference)
        ops = Operations(config, store, bootstrap)
        ops.attach(pipeline, cycles)
        await ops.start()
        closing = asyncio.create_task(cycles.run(stop), name="settlement-cycles")

        async def announce() -> None:
            # Only once the group has given this instance its partitions: before that,
            # records published are not being consumed yet.
            await pipeline.joined.wait()
            probes = f"http://{config.ops.http_host}:{ops.http_port}"
            log.info(
                "gateway ready: consuming %s on %s; metrics and probes on %s",
                ", ".join(pipeline.side_of),
                bootstrap,
                probes,
                extra={"bootstrap": bootstrap, "probes": probes},
            )

        ready = asyncio.create_task(announce(), name="announce-ready")
        try:
            stuck = not await _until_stopped(
                asyncio.create_task(pipeline.run(stop), name="pipeline"), stop
            )
        finally:
            ready.cancel()
            stop.set()
            try:  # a close in progress is safe to cut: it is redone from the store
                await asyncio.wait_for(closing, 30)
            except TimeoutError:
                log.warning("the settlement tick did not end within 30 s; cancelled")
            await ops.stop()
        log.info("stopped after %d records", pipeline.processed)
    except Exception:
        # Logged like every other line (JSON when chosen), traceback included, and exit 1
        # for the supervisor: never a plain-text traceback among the JSON lines.
        log.exception("the service stopped on an error")
        return 1
    finally:
        await store.close()
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        if held is not None:
            held.close()  # the state file is free for the next instance
        _ignore_signals(loop)
    if stuck:
        # A task that ignores cancellation would keep asyncio.run from returning: the state is
        # consistent (see _until_stopped), so the process ends here, as SIGTERM asked.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _ignore_signals(loop: asyncio.AbstractEventLoop) -> None:
    """The stop is done but for the process's own exit: a signal from now on (a supervisor
    or operator asking again) must not kill it mid-exit. asyncio.run restores the default
    handlers when it closes the loop, and the default for SIGTERM ends the process (143), so
    the loop's handlers are handed back here, for ones that ignore."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)


async def _until_stopped(run: asyncio.Task[None], stop: asyncio.Event) -> bool:
    """The pipeline until it ends; once a stop is asked, at most STOP_DEADLINE_SECONDS more.
    A stop stuck anywhere (an endless rebalance, a client that never returns) is cut short,
    and nothing is lost: what the store committed stays, what it did not comes again (its
    offsets were not committed) and the claims dedupe it. Whether the pipeline ended (False:
    it ignored even its cancellation). A failure of the pipeline is raised."""
    asked = asyncio.create_task(stop.wait(), name="stop-asked")
    try:
        await asyncio.wait({run, asked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        asked.cancel()
    if not run.done():
        await asyncio.wait({run}, timeout=STOP_DEADLINE_SECONDS)
    if not run.done():
        log.warning(
            "the stop did not finish within %d s: cut short (committed work is kept, the rest "
            "is redelivered)",
            STOP_DEADLINE_SECONDS,
        )
        run.cancel()
        await asyncio.wait({run}, timeout=CANCEL_WAIT_SECONDS)
        if not run.done():
            log.error("the pipeline ignored its cancellation; the process exits")
            return False
    if not run.cancelled():
        run.result()
    return True
