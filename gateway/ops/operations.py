"""What an operator sees of a running gateway, and the commands it takes.

The pipeline and the cycle manager report here (`processed`, `published`, `cycle_changed`);
this object turns that into metrics and MQTT events, answers /metrics, /healthz and /readyz,
watches readiness (broker, state store, MQTT) and announces each change, and carries out
operators' commands (cycle close, pause/resume a side).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.clock import Clock, now_utc8
from gateway.config import Config
from gateway.ops import http
from gateway.ops.events import Events
from gateway.ops.metrics import Metrics
from gateway.ops.mqtt import CommandError, MqttLink
from gateway.settlement.netting import from_minor
from gateway.sides import SIDES
from gateway.state.base import CycleRecord, OutboxRow, StateStore

if TYPE_CHECKING:
    from gateway.cycles import CycleManager
    from gateway.pipeline import Pipeline

log = logging.getLogger(__name__)
# The held queues are read from the store every this many readiness ticks (seconds): a query,
# not a per-message cost.
QUEUE_WATCH_TICKS = 10


class Operations:
    def __init__(
        self, config: Config, store: StateStore, bootstrap: str, clock: Clock = now_utc8
    ) -> None:
        self.config = config
        self.store = store
        self.bootstrap = bootstrap
        self.metrics = Metrics()
        self.clock = clock
        self.events = Events(config.mqtt.buffer_limit, clock, self.metrics.mqtt_dropped.inc)
        self.mqtt = (
            MqttLink(config.mqtt, self.events, self.command, self.metrics.mqtt_refused.inc)
            if config.mqtt.host
            else None
        )
        self.pipeline: Pipeline | None = None
        self.cycles: CycleManager | None = None
        self.checks: dict[str, bool] = {}
        self.ready = False
        self.http_port: int | None = None
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._directory_versions: set[str] = set()
        self._offset_runs = 0  # the store's count when last seen

    def attach(self, pipeline: Pipeline, cycles: CycleManager) -> None:
        self.pipeline = pipeline
        self.cycles = cycles
        pipeline.telemetry = self
        cycles.listeners.append(self.cycle_changed)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        ops = self.config.ops
        self._server = await http.serve(
            ops.http_host,
            ops.http_port,
            {"/metrics": self._metrics, "/healthz": self._healthz, "/readyz": self._readyz},
        )
        self.http_port = self._server.sockets[0].getsockname()[1]
        log.info("metrics and probes on http://%s:%d", ops.http_host, self.http_port)
        if self.mqtt is not None:
            self._tasks.append(asyncio.create_task(self.mqtt.run(), name="mqtt"))
        self._tasks.append(asyncio.create_task(self._watch(), name="readiness"))

    async def stop(self) -> None:
        self.events.emit("health", retain=True, status="stopped", checks=self.checks)
        if self.mqtt is not None:
            await self.mqtt.flush(3.0)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- readiness ------------------------------------------------------------------------------
    async def check(self) -> dict[str, bool]:
        checks = {"broker": await self._broker_reachable(), "state": await self._store_answers()}
        if self.pipeline is not None:
            # Ready means consuming: the group has given this instance its partitions.
            checks["consumer"] = self.pipeline.joined.is_set()
        if self.mqtt is not None:
            checks["mqtt"] = self.mqtt.connected
        return checks

    async def _broker_reachable(self) -> bool:
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
            except (OSError, TimeoutError, ValueError):
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    async def _store_answers(self) -> bool:
        try:
            # Shielded: the probe gives up after 2 s, the ping itself is not cancelled (a
            # query cancelled mid-flight can leave its connection never released).
            await asyncio.wait_for(asyncio.shield(self.store.ping()), 2)
        except Exception:
            return False
        return True

    def _watch_directory(self) -> None:
        """The directory is re-read here too, not only when a message needs it: a broken
        rotation shows while the gateway is idle (its version, refusals and certificate
        expiries are metrics an alert can watch)."""
        if self.pipeline is None:
            return
        reloading = self.pipeline.reference.directory
        directory = reloading.current()
        m = self.metrics
        if directory.version not in self._directory_versions:
            m.directory_version.clear()
            self._directory_versions = {directory.version}
        m.directory_version.labels(directory.version).set(1)
        m.directory_refused.set(reloading.failures)
        now = self.clock()
        # Every enrolled certificate, rebuilt each time: a revoked one leaves no stale series.
        m.certificate_expiry.clear()
        for signatory in directory.signatories:
            for c in signatory.certificates:
                seconds = (c.not_after - now).total_seconds()
                m.certificate_expiry.labels(signatory.bic, c.fingerprint[:16]).set(seconds)
        signer = self.pipeline.reference.signer
        if signer is not None:
            left = signer.certificate.not_after - now
            m.signing_certificate_expiry.set(left.total_seconds())

    async def _watch_queues(self) -> None:
        """The relay's backlog and the held queues by payer, as gauges (a queue that empties
        is dropped, not left at its last value)."""
        backlog = await self.store.backlog()
        m = self.metrics
        m.outbox_unsent.set(backlog.unsent)
        cap_currency = self.config.settlement.cap_currency
        m.offset_runs.set(backlog.offset_runs)
        m.offset_released.set(backlog.offset_released)
        saved = from_minor(backlog.offset_saved, cap_currency)
        m.liquidity_saved.set(float(saved))
        if backlog.offset_runs != self._offset_runs:
            # Offsetting released payments since the last look (this instance's or another's):
            # an event with the totals and the gridlock left, once per change.
            self._offset_runs = backlog.offset_runs
            self.events.emit(
                f"liquidity/{cap_currency}",
                retain=True,
                offset_runs=backlog.offset_runs,
                offset_released=backlog.offset_released,
                liquidity_saved=str(saved),
                held=sum(n for (c, _), (n, _) in backlog.queues.items() if c == cap_currency),
            )
        m.held_payments.clear()
        m.held_amount.clear()
        for (currency, payer), (count, units) in backlog.queues.items():
            m.held_payments.labels(currency, payer).set(count)
            m.held_amount.labels(currency, payer).set(float(from_minor(units, currency)))

    async def _watch(self, interval: float = 1.0) -> None:
        ticks = 0
        while True:
            self._watch_directory()
            if ticks % QUEUE_WATCH_TICKS == 0:
                with contextlib.suppress(Exception):  # the store's outage is its check's to say
                    # Shielded, as the ping is: a stop cancels this task, and a query cancelled
                    # mid-flight can leave its connection never released (the store's close
                    # then waited for it: a stop that never ended).
                    await asyncio.shield(self._watch_queues())
            ticks += 1
            checks = await self.check()
            ready = all(checks.values())
            self.metrics.mqtt_connected.set(1 if self.mqtt and self.mqtt.connected else 0)
            self.metrics.ready.set(1 if ready else 0)
            if checks != self.checks:
                changed = {k for k in checks if checks[k] != self.checks.get(k)}
                if self.checks and changed != {"state"}:  # the store logs its own outage
                    (log.info if ready else log.warning)("readiness: %s", checks)
                self.checks, self.ready = checks, ready
                self.events.emit(
                    "health", retain=True, status="ready" if ready else "not-ready", checks=checks
                )
            await asyncio.sleep(interval)

    async def _metrics(self) -> tuple[int, str, bytes]:
        return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render()

    async def _healthz(self) -> tuple[int, str, bytes]:
        return 200, "application/json", b'{"status":"alive"}\n'

    async def _readyz(self) -> tuple[int, str, bytes]:
        checks = await self.check()
        ready = all(checks.values())
        body = json.dumps({"ready": ready, "checks": checks}).encode() + b"\n"
        return (200 if ready else 503), "application/json", body

    # -- what the pipeline and the cycles report -----------------------------------------------
    def processed(self, records: Sequence[tuple[Any, str, str, str, str, str]]) -> None:
        """(record, side, message type, outcome, reason, idempotency key) per record of a
        committed batch."""
        now = time.time()
        m = self.metrics
        for record, side, msg_type, outcome, reason, key in records:
            m.messages_in.labels(side, msg_type).inc()
            m.processed.labels(side, outcome).inc()
            if record.timestamp:
                m.latency.observe(max(0.0, now - record.timestamp / 1000))
            if outcome == "rejected":
                m.rejected.labels(side, reason).inc()
                m.dead_lettered.labels(side).inc()
            elif outcome == "retry":
                m.retried.labels(side).inc()
            if outcome == "duplicate":  # said once, not just counted (a re-sent sample)
                log.info(
                    "duplicate, not processed again: %s:%d:%d key %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    key,
                    extra={"idempotency_key": key},
                )
            else:
                self.events.emit(
                    f"message/{side}",
                    status=outcome,
                    side=side,
                    message_type=msg_type,
                    idempotency_key=key,
                    reason=reason or None,
                    source=f"{record.topic}:{record.partition}:{record.offset}",
                )

    def lag(self, topic: str, partition: int, behind: int) -> None:
        self.metrics.lag.labels(topic, str(partition)).set(behind)

    def published(self, rows: Sequence[OutboxRow]) -> None:
        for row in rows:
            self.metrics.published.labels(row.topic).inc()

    async def cycles_answered(self, ids: set[str]) -> None:
        """The RTGS answered instructions of these cycles (in a committed batch)."""
        for cycle in await self.store.cycles():
            if cycle.id in ids:
                await self.cycle_changed(cycle, cycle.status)

    async def cycle_changed(self, cycle: CycleRecord, what: str) -> None:
        if what == "opened":
            self.events.emit(
                f"cycle/{cycle.currency}/open",
                retain=True,
                event=what,
                cycle=cycle.id,
                currency=cycle.currency,
                status=cycle.status,
                opened_at=cycle.opened_at,
                due_at=cycle.due_at,
            )
            return
        report = json.loads(cycle.summary) if cycle.summary else {}
        self.metrics.cycles_closed.labels(cycle.currency, cycle.status).inc()
        for row in report.get("participants", []):
            self.metrics.cycle_position.labels(cycle.currency, row["participant"]).set(
                float(row["position"])
            )
        self.events.emit(
            f"cycle/{cycle.currency}",
            retain=True,
            event=what,
            cycle=cycle.id,
            currency=cycle.currency,
            status=cycle.status,
            cut_off=cycle.cut_off,
            reason=cycle.reason,
            instruction_id=cycle.instruction_id,
            obligations=report.get("obligations"),
            gross=report.get("gross"),
            net=report.get("net"),
            efficiency=report.get("efficiency"),
        )

    # -- operators' commands -------------------------------------------------------------------
    async def command(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command["command"]
        if name == "cycle.close":
            currency = str(command.get("currency", "CNY"))
            if self.cycles is None:
                raise CommandError("settlement cycles are not running here")
            frozen = await self.cycles.close_now(currency)
            if frozen is None:
                raise CommandError(f"no {currency} cycle: nothing has been booked in {currency}")
            return {"cycle": frozen}
        if name in ("side.pause", "side.resume"):
            side = command.get("side")
            if side not in SIDES or self.pipeline is None:
                raise CommandError(f"side must be one of {list(SIDES)}")
            self.pipeline.pause_side(side, name == "side.pause")
            return {"side": side, "paused": sorted(self.pipeline.paused_sides)}
        raise CommandError(f"unknown command {name!r}: cycle.close, side.pause, side.resume")
