"""Closing settlement cycles: on schedule, on command, and after a crash.

A close goes through states recorded in the store, each step safe to repeat:
  open --(cut-off passed: a batch or the scheduler; or an operator's command)--> closing
  closing --(this instance holds the close lease; nets the frozen obligations, builds the
             instruction, the report, each participant's camt.053 and the camt.054 of each
             one whose position moves; records them and queues them in the outbox in one
             transaction, only while it still holds the lease; the camt.054s wait)
             --> instructed
  instructed --(the RTGS's pacs.002: ACSC; the camt.054s queued)--> settled
             |  (RJCT; the camt.054s dropped)--> failed
A cycle with nothing to move goes from closing to settled directly.

Everything emitted is built from the frozen cycle alone (its obligations, its recorded
cut-off), with ids derived from the cycle: a close interrupted at any step and redone, here or
by another instance after the lease ran out, emits the same bytes, and the store records them
once. A failed cycle stays failed: the operator decides (retry or unwind by policy); nothing is
reopened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.clock import Clock, now_utc8
from gateway.config import Config
from gateway.correlations import Correlation, cycle_key
from gateway.iso20022.ids import derive_id
from gateway.reference import ReferenceData
from gateway.settlement.instruction import (
    Instructed,
    settlement_request,
    settlement_transfers,
)
from gateway.settlement.ledger import Rules
from gateway.settlement.netting import Netting, NettingError
from gateway.settlement.notification import behind_each, notifications
from gateway.settlement.report import participant_record, summary, to_json
from gateway.settlement.schedule import Schedule, parse_cut_offs
from gateway.settlement.statement import statements
from gateway.settlement.statuses import CycleStatus
from gateway.state.base import CycleRecord, OutboxRow, StateStore

log = logging.getLogger(__name__)

# Told of every cycle transition: (cycle record after it, what happened).
Listener = Callable[[CycleRecord, str], Awaitable[None]]


@dataclass(frozen=True)
class Instruction:
    key: str  # the record key: the cycle, or cycle:participant
    correlation: str  # how its answers find it: cycle:<id>[:<participant>]
    issued: Instructed  # with the ids it was issued with (none read back from its bytes)


@dataclass
class Close:
    """What closing a cycle records and emits."""

    status: CycleStatus
    report: dict[str, object]
    rows: list[OutboxRow] = field(default_factory=list)
    correlations: list[Correlation] = field(default_factory=list)
    awaiting: list[str] = field(default_factory=list)  # instruction MsgIds to be confirmed
    on_settled: list[OutboxRow] = field(default_factory=list)  # queued once it is settled
    reference: str | None = None  # the cycle's settlement reference (pacs.029 MsgId, or the
    # transfers' common EndToEndId)


def _emitted(
    topic: str, key: str, value: bytes, message_type: str, cycle: str, **extra: str
) -> OutboxRow:
    """A record a close emits, with the headers every output carries: its type, its
    idempotency key (the record key: the same on a close redone), the cycle as correlation id.
    No source-* headers: no input record caused it."""
    headers = (
        ("message-type", message_type.encode()),
        ("idempotency-key", key.encode()),
        ("correlation-id", cycle.encode()),
        *((name, text.encode()) for name, text in extra.items()),
    )
    return OutboxRow(topic, key.encode(), value, headers)


def rules_for(config: Config, schedule: Schedule, now: datetime) -> Rules:
    s = config.settlement
    return Rules(now, schedule.next_cut_off, s.cap_currency, s.cap_policy, s.offsetting)


class CycleManager:
    def __init__(
        self,
        config: Config,
        store: StateStore,
        reference: ReferenceData,
        clock: Clock = now_utc8,
        owner: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.reference = reference  # the directory, charset and profiles a close issues with
        self.clock = clock
        self.schedule = Schedule(parse_cut_offs(config.settlement.cut_offs), reference.calendars)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.listeners: list[Listener] = []

    def rules(self) -> Rules:
        return rules_for(self.config, self.schedule, self.clock())

    async def run(self, stop: asyncio.Event) -> None:
        """Close what is due and finish what is closing, every tick, until `stop`."""
        interval = self.config.settlement.tick_ms / 1000
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:
                # The store may be down (the store logs its outage, once): the pipeline
                # retries and stops on that; the next tick tries again. Nothing half-done is
                # lost (every step is repeatable).
                if not self.store.is_transient(exc):
                    log.exception("settlement tick failed")
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

    async def tick(self) -> list[str]:
        """Freeze the open cycles whose cut-off has passed; finish every frozen one. The
        cycles this call finished."""
        now = self.clock()
        # Only the open and closing cycles: the settled ones (and their reports) pile up.
        open_cycles = await self.store.cycles(status=CycleStatus.OPEN)
        for cycle in open_cycles:
            due = datetime.fromisoformat(cycle.due_at) if cycle.due_at else None
            if due is not None and now >= due:
                await self.store.freeze(cycle.currency, self.rules(), cycle.id)
        finished = []
        for cycle in await self.store.cycles(status=CycleStatus.CLOSING):
            if await self.finish(cycle):
                finished.append(cycle.id)
        # Held payments wait for room: a new cycle makes some (a close that crashed after
        # recording itself has not released them yet). A freeze opens the next cycle in the
        # same currency, so the currencies with an open cycle are still these.
        for currency in sorted({c.currency for c in open_cycles}):
            await self.store.release_held(currency, self.rules())
        return finished

    async def close_now(self, currency: str) -> str | None:
        """An operator's close: freeze the currency's open cycle now and finish it. Its id, or
        None when the currency has no cycle."""
        frozen = await self.store.freeze(currency, self.rules())
        if frozen is not None:
            for cycle in await self.store.cycles(currency):
                if cycle.id == frozen and cycle.status == CycleStatus.CLOSING:
                    await self.finish(cycle)
        return frozen

    async def finish(self, cycle: CycleRecord) -> bool:
        """Net a frozen cycle, queue its instructions, report and statements, record it: once."""
        lease = self.config.settlement.close_lease_seconds
        if not await self.store.take_close(cycle.id, self.owner, lease):
            return False  # another instance is closing it
        try:
            close = await self._build(cycle)
        except NettingError as exc:
            log.error("cycle %s cannot settle: %s", cycle.id, exc)
            close = Close(CycleStatus.FAILED, {"cycle": cycle.id, "error": str(exc)})
        done = await self.store.finish_close(
            cycle.id,
            self.owner,
            close.status,
            to_json(close.report),
            close.reference,
            close.rows,
            close.correlations,
            close.awaiting,
            close.on_settled,
        )
        if done:
            log.info("cycle %s closed: %s", cycle.id, close.status)
            await self.store.release_held(cycle.currency, self.rules())
            await self._tell(cycle.currency, cycle.id)
        return done

    async def _build(self, cycle: CycleRecord) -> Close:
        netting = await self.store.net_cycle(cycle.id, cycle.currency)
        kept = await self.store.positions(cycle.id)
        if kept != netting.positions:
            # The running positions (kept by the batches for the caps) and the netting of
            # the obligations are two computations of one thing: never settle on a mismatch.
            raise NettingError(f"running positions {kept} differ from the netting")
        cut_off = datetime.fromisoformat(cycle.cut_off) if cycle.cut_off else self.clock()
        opened = datetime.fromisoformat(cycle.opened_at) if cycle.opened_at else None
        instructions = self._instructions(cycle.id, netting, cut_off)
        if not instructions:  # nothing moves: settled as it stands
            reference = None
        elif self.config.settlement.instruction == "pacs.029":
            reference = instructions[0].issued.msg_id
        else:  # the transfers' common EndToEndId
            reference = derive_id("SI", cycle.id, cycle.currency)
        saving = await self.store.liquidity(cycle.id)
        report = summary(cycle.id, cycle.cut_off, netting, reference, saving)
        rtgs = self.config.settlement.rtgs_side
        close = Close(
            CycleStatus.INSTRUCTED if instructions else CycleStatus.SETTLED,
            report,
            reference=reference,
        )
        for i in instructions:
            headers = (
                ("message-type", i.issued.msg_def.encode()),
                ("idempotency-key", i.correlation.encode()),
                ("correlation-id", cycle.id.encode()),
            )
            topic = self.config.side(rtgs).outbound_topic
            close.rows.append(OutboxRow(topic, i.key.encode(), i.issued.data, headers))
            close.awaiting.append(i.issued.msg_id)
            close.correlations.append(
                Correlation(
                    key=i.correlation,
                    source=rtgs,
                    sender_bic=None,
                    biz_msg_idr=None,
                    msg_id=i.issued.msg_id,
                    msg_def=i.issued.msg_def,
                    created=cycle.cut_off,
                    outbound_biz_msg_idr=i.issued.biz_msg_idr,
                    outbound_msg_id=i.issued.msg_id,
                    instructing=self.config.gateway.bic,
                    receiver=self.config.side(rtgs).system_bic,  # only it answers
                )
            )
        close.rows += self._report_rows(report)
        for bic, side, data in statements(
            netting,
            cycle.id,
            opened,
            cut_off,
            reference,
            self.config,
            self.reference.directory.current(),
            self.reference.charset,
            self.reference.profiles,
        ):
            topic = self.config.side(side).outbound_topic
            close.rows.append(
                _emitted(topic, f"{cycle.id}:{bic}", data, "camt.053.001.08", cycle.id)
            )
        notices = await self._notifications(cycle, netting, cut_off, reference)
        # A cycle settled as it stands (nothing moves) has nothing to wait for.
        (close.rows if close.status == CycleStatus.SETTLED else close.on_settled).extend(notices)
        return close

    async def _notifications(
        self, cycle: CycleRecord, netting: Netting, cut_off: datetime, reference: str | None
    ) -> list[OutboxRow]:
        """Each moving participant's camt.054, on its side's outbound topic."""
        details = None
        if self.config.notifications.detail == "payments":
            details = behind_each(await self.store.cycle_obligations(cycle.id))
        rows = []
        for bic, side, data in notifications(
            netting,
            cycle.id,
            cut_off,
            reference,
            self.config,
            self.reference.directory.current(),
            self.reference.charset,
            self.reference.profiles,
            details,
        ):
            topic = self.config.side(side).outbound_topic
            key = f"{cycle.id}:{bic}:camt.054"
            rows.append(_emitted(topic, key, data, "camt.054.001.08", cycle.id))
        return rows

    def _instructions(self, cycle: str, netting: Netting, cut_off: datetime) -> list[Instruction]:
        """What the RTGS is asked to settle: one pacs.029, or one pacs.009 per position."""
        directory = self.reference.directory.current()
        charset = self.reference.charset
        profiles = self.reference.profiles[self.config.settlement.rtgs_side]
        if self.config.settlement.instruction == "pacs.029":
            request = settlement_request(
                netting, cycle, cut_off, self.config, directory, charset, profiles
            )
            return [] if request is None else [Instruction(cycle, cycle_key(cycle), request)]
        return [
            Instruction(f"{cycle}:{bic}", cycle_key(cycle, bic), transfer)
            for bic, transfer in settlement_transfers(
                netting, cycle, cut_off, self.config, directory, charset, profiles
            )
        ]

    def _report_rows(self, report: dict[str, object]) -> list[OutboxRow]:
        """The cycle's summary, then one record per participant, on the reports topic."""
        topic = self.config.settlement.reports_topic
        cycle = str(report["cycle"])
        summary = to_json(report).encode()
        rows = [_emitted(topic, cycle, summary, "cycle-summary", cycle, report="cycle-summary")]
        participants = report["participants"]
        assert isinstance(participants, list)
        for row in participants:
            value = participant_record(report, row).encode()
            key = f"{cycle}:{row['participant']}"
            rows.append(_emitted(topic, key, value, "participant", cycle, report="participant"))
        return rows

    async def _tell(self, currency: str, closed: str) -> None:
        """Listeners learn of the closed cycle and of the one open after it."""
        if not self.listeners:
            return
        for cycle in await self.store.cycles(currency):
            if cycle.id == closed or cycle.status == CycleStatus.OPEN:
                for listener in self.listeners:
                    await listener(cycle, "closed" if cycle.id == closed else "opened")
