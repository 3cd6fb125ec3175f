"""Closing settlement cycles: on schedule, on command, and after a crash.

A close goes through states recorded in the store, each step safe to repeat:
  open --(cut-off passed: a batch or the scheduler; or an operator's command)--> closing
  closing --(this instance holds the close lease; nets the frozen obligations, builds the
             instruction, the report and each participant's camt.053; records them and queues
             them in the outbox in one transaction, only while it still holds the lease)
             --> instructed
  instructed --(the RTGS's pacs.002: ACSC)--> settled   |  (RJCT)--> failed
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
from datetime import datetime

from gateway.clock import Clock, now_utc8
from gateway.config import Config
from gateway.iso20022.ids import derive_id
from gateway.iso20022.reader import read_message
from gateway.settlement.instruction import settlement_request
from gateway.settlement.ledger import Rules
from gateway.settlement.netting import NettingError
from gateway.settlement.report import participant_record, summary, to_json
from gateway.settlement.schedule import Schedule, parse_cut_offs
from gateway.settlement.statement import statements
from gateway.state.base import CycleRecord, OutboxRow, StateStore
from gateway.translation import SETTLEMENT_REQUEST, Correlation, Translator

log = logging.getLogger(__name__)

# Told of every cycle transition: (cycle record after it, what happened).
Listener = Callable[[CycleRecord, str], Awaitable[None]]


def rules_for(config: Config, schedule: Schedule, now: datetime) -> Rules:
    s = config.settlement
    return Rules(now, schedule.next_cut_off, s.cap_currency, s.cap_policy)


class CycleManager:
    def __init__(
        self,
        config: Config,
        store: StateStore,
        translator: Translator,
        clock: Clock = now_utc8,
        owner: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.translator = translator
        self.clock = clock
        self.schedule = Schedule(parse_cut_offs(config.settlement.cut_offs), translator.calendars)
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
            except Exception:
                # The store may be down: the pipeline retries and stops on that; the next
                # tick tries again. Nothing half-done is lost (every step is repeatable).
                log.exception("settlement tick failed")
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

    async def tick(self) -> list[str]:
        """Freeze the open cycles whose cut-off has passed; finish every frozen one. The
        cycles this call finished."""
        now = self.clock()
        for cycle in await self.store.cycles():
            due = datetime.fromisoformat(cycle.due_at) if cycle.due_at else None
            if cycle.status == "open" and due is not None and now >= due:
                await self.store.freeze(cycle.currency, self.rules(), cycle.id)
        finished = []
        cycles = await self.store.cycles()
        for cycle in cycles:
            if cycle.status == "closing" and await self.finish(cycle):
                finished.append(cycle.id)
        # Held payments wait for room: a new cycle makes some (a close that crashed after
        # recording itself has not released them yet).
        for currency in sorted({c.currency for c in cycles if c.status == "open"}):
            await self.store.release_held(currency, self.rules())
        return finished

    async def close_now(self, currency: str) -> str | None:
        """An operator's close: freeze the currency's open cycle now and finish it. Its id, or
        None when the currency has no cycle."""
        frozen = await self.store.freeze(currency, self.rules())
        if frozen is not None:
            for cycle in await self.store.cycles(currency):
                if cycle.id == frozen and cycle.status == "closing":
                    await self.finish(cycle)
        return frozen

    async def finish(self, cycle: CycleRecord) -> bool:
        """Net a frozen cycle, queue its instruction and reports, record it: once."""
        lease = self.config.settlement.close_lease_seconds
        if not await self.store.take_close(cycle.id, self.owner, lease):
            return False  # another instance is closing it
        try:
            status, report, rows, correlation, instruction_id = await self._build(cycle)
        except NettingError as exc:
            log.error("cycle %s cannot settle: %s", cycle.id, exc)
            report = {"cycle": cycle.id, "error": str(exc)}
            status, rows, correlation, instruction_id = "failed", [], None, None
        done = await self.store.finish_close(
            cycle.id, self.owner, status, to_json(report), instruction_id, rows, correlation
        )
        if done:
            log.info("cycle %s closed: %s", cycle.id, status)
            await self.store.release_held(cycle.currency, self.rules())
            await self._tell(cycle.id, "closed")
        return done

    async def _build(
        self, cycle: CycleRecord
    ) -> tuple[str, dict[str, object], list[OutboxRow], Correlation | None, str | None]:
        netting = await self.store.net_cycle(cycle.id, cycle.currency)
        kept = await self.store.positions(cycle.id)
        if kept != netting.positions:
            # The running positions (kept by the batches for the caps) and the netting of
            # the obligations are two computations of one thing: never settle on a mismatch.
            raise NettingError(f"running positions {kept} differ from the netting")
        totals = await self.store.participant_totals(cycle.id)
        cut_off = datetime.fromisoformat(cycle.cut_off) if cycle.cut_off else self.clock()
        instruction = settlement_request(
            netting,
            cycle.id,
            cut_off,
            self.config,
            self.translator.directory.current(),
            self.translator.charset,
            self.translator.profiles[self.config.settlement.rtgs_side],
        )
        opened = datetime.fromisoformat(cycle.opened_at) if cycle.opened_at else None

        def reports(instruction_id: str | None) -> tuple[dict[str, object], list[OutboxRow]]:
            report = summary(cycle.id, cycle.cut_off, netting, totals, instruction_id)
            rows = self._report_rows(report)
            for bic, side, data in statements(
                netting,
                totals,
                cycle.id,
                opened,
                cut_off,
                instruction_id,
                self.config,
                self.translator.directory.current(),
                self.translator.charset,
                self.translator.profiles,
            ):
                headers = (
                    ("message-type", b"camt.053.001.08"),
                    ("correlation-id", cycle.id.encode()),
                )
                key = f"{cycle.id}:{bic}".encode()
                rows.append(OutboxRow(self.config.side(side).outbound_topic, key, data, headers))
            return report, rows

        if instruction is None:  # nothing moves: settled as it stands
            report, rows = reports(None)
            return "settled", report, rows, None, None
        msg = read_message(instruction)
        msg_id = msg.doc_text("MulSttlmReq/GrpHdr/MsgId") or derive_id("GWS", cycle.id)
        biz_msg_idr = msg.header_text("BizMsgIdr") if msg.header is not None else None
        report, report_rows = reports(msg_id)
        rtgs = self.config.settlement.rtgs_side
        headers = (
            ("message-type", SETTLEMENT_REQUEST.encode()),
            ("idempotency-key", f"cycle:{cycle.id}".encode()),
            ("correlation-id", cycle.id.encode()),
        )
        rows = [
            OutboxRow(
                self.config.side(rtgs).outbound_topic, cycle.id.encode(), instruction, headers
            ),
            *report_rows,
        ]
        correlation = Correlation(
            key=f"cycle:{cycle.id}",
            source=rtgs,
            sender_bic=None,
            biz_msg_idr=None,
            msg_id=msg_id,
            msg_def=SETTLEMENT_REQUEST,
            created=cycle.cut_off,
            outbound_biz_msg_idr=biz_msg_idr or msg_id,
            outbound_msg_id=msg_id,
        )
        return "instructed", report, rows, correlation, msg_id

    def _report_rows(self, report: dict[str, object]) -> list[OutboxRow]:
        """The cycle's summary, then one record per participant, on the reports topic."""
        topic = self.config.settlement.reports_topic
        cycle = str(report["cycle"])
        rows = [
            OutboxRow(
                topic,
                cycle.encode(),
                to_json(report).encode(),
                (("report", b"cycle-summary"), ("correlation-id", cycle.encode())),
            )
        ]
        participants = report["participants"]
        assert isinstance(participants, list)
        for row in participants:
            rows.append(
                OutboxRow(
                    topic,
                    f"{cycle}:{row['participant']}".encode(),
                    participant_record(report, row).encode(),
                    (("report", b"participant"), ("correlation-id", cycle.encode())),
                )
            )
        return rows

    async def _tell(self, cycle_id: str, what: str) -> None:
        if not self.listeners:
            return
        for cycle in await self.store.cycles():
            if cycle.id == cycle_id:
                for listener in self.listeners:
                    await listener(cycle, what)
