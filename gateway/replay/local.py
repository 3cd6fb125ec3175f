"""A gateway in this process, on fresh topic names: what the end-to-end tests and the pytest
plugin run (`local_gateway`), and what a partner does with it (publish on a side, read a topic)
with plain Kafka clients."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

from gateway.clock import Clock, now_utc8
from gateway.config import (
    Config,
    KafkaSection,
    OpsSection,
    SettlementSection,
    SideSection,
    StateSection,
)
from gateway.cycles import CycleManager
from gateway.ops.operations import Operations
from gateway.pipeline import Pipeline
from gateway.replay.clients import publish, read_topic
from gateway.sides import SIDES, Side
from gateway.state import StateStore, store_for
from gateway.topics import ensure_topics


def local_config(
    prefix: str,
    state: StateSection,
    settlement: SettlementSection | None = None,
    base: Config | None = None,
    **kafka: Any,
) -> Config:
    """`base` (default: the built-in configuration) with this gateway's own topics, group,
    state and ports; its translation settings and, unless `settlement` is given, its
    settlement policies are kept, with no scheduled cut-off (a close happens on command)."""
    base = base or Config()
    sides = {
        side: SideSection(
            base.side(side).system_bic,
            base.side(side).biz_svc,
            f"{prefix}.{side}.inbound",
            f"{prefix}.{side}.outbound",
        )
        for side in SIDES
    }
    return dataclasses.replace(
        base,
        onshore=sides["onshore"],
        offshore=sides["offshore"],
        kafka=KafkaSection(
            **{
                "group_id": f"gw-{prefix}",
                "dlq_topic": f"{prefix}.dlq",
                "retry_topic_prefix": f"{prefix}.retry",
                "retry_delays_ms": (400, 800),
                "batch_max_records": 200,
                # The embedded broker holds a group join for half the session timeout: the
                # smallest real Kafka accepts by default keeps each start to ~3 s.
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
                **kafka,
            }
        ),
        state=state,
        settlement=dataclasses.replace(
            settlement or dataclasses.replace(base.settlement, cut_offs=()),
            reports_topic=f"{prefix}.reports",
        ),
        ops=OpsSection(http_port=0, log_format="text"),
    )


@dataclasses.dataclass
class LocalGateway:
    config: Config
    store: StateStore
    pipeline: Pipeline
    bootstrap: str
    task: asyncio.Task[None] | None = None
    cycles: CycleManager | None = None
    ops: Operations | None = None

    async def publish(self, side: Side, *payloads: bytes, key: bytes | None = None) -> None:
        await publish(
            self.bootstrap,
            self.config.side(side).inbound_topic,
            [(key if key is not None else str(uuid.uuid4()).encode(), p) for p in payloads],
        )

    async def read(
        self, topic: str, count: int, wait: float = 45.0, settle: float = 1.5
    ) -> list[Any]:
        return await read_topic(self.bootstrap, topic, count, wait, settle)


@contextlib.asynccontextmanager
async def local_gateway(
    config: Config, bootstrap: str, clock: Clock = now_utc8, operated: bool = False
) -> AsyncIterator[LocalGateway]:
    """The service in this process: topics created, store opened, pipeline and settlement
    cycles running on `clock`; stopped as SIGTERM stops it (the batch in flight finished and
    committed) when the block ends. `Running.task` ends early only if the service fails."""
    await ensure_topics(bootstrap, config.topics())
    store = store_for(config.state)
    await store.open()
    pipeline = Pipeline(config, store, bootstrap, clock=clock)
    cycles = CycleManager(config, store, pipeline.reference, clock)
    ops = None
    if operated:  # metrics, probes and MQTT, as the service runs them
        ops = Operations(config, store, bootstrap, clock)
        ops.attach(pipeline, cycles)
        await ops.start()
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    closing = asyncio.create_task(cycles.run(stop))
    try:
        yield LocalGateway(config, store, pipeline, bootstrap, task, cycles, ops)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await asyncio.wait_for(closing, 30)
        if ops is not None:
            await ops.stop()
        await store.close()
