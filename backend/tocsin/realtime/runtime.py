"""The real-time parts of one worker, built in the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from tocsin.bus import Bus
from tocsin.config import Settings
from tocsin.db import Database
from tocsin.kernel import exercise_clock
from tocsin.kernel.channels import ALERTS_CHANNEL, EXERCISES_CHANNEL, REPORTS_CHANNEL, USERS_CHANNEL
from tocsin.models import Device, Exercise
from tocsin.realtime import protocol
from tocsin.realtime.counters import DeliveryRecorder
from tocsin.realtime.dispatcher import AlertDispatcher
from tocsin.realtime.feed import OperatorFeed
from tocsin.realtime.hub import Hub
from tocsin.realtime.ratelimit import Limiter
from tocsin.reports.writer import ReportWriter
from tocsin.resilience import ThrottledLog, describe

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)  # once a minute per kind while the database is down


class Realtime:
    def __init__(self, settings: Settings, database: Database, bus: Bus) -> None:
        self.settings = settings
        self.database = database
        self.bus = bus
        self.deliveries = DeliveryRecorder(database)
        self.hub = Hub(self.deliveries)
        self.dispatcher = AlertDispatcher(database, self.hub, settings.realtime_poll_seconds)
        self.writer = ReportWriter(database, bus)
        self.operators = OperatorFeed(database)
        burst = max(10.0, settings.device_messages_per_minute / 2)
        self.device_messages = Limiter(settings.device_messages_per_minute, burst)
        self.ip_messages = Limiter(settings.ip_messages_per_minute, settings.ip_messages_per_minute / 2)
        self.device_reports = Limiter(settings.device_reports_per_minute, max(5.0, settings.device_reports_per_minute))
        self.ip_reports = Limiter(settings.ip_reports_per_minute, settings.ip_reports_per_minute / 3)
        self.ip_new_devices = Limiter(settings.ip_new_devices_per_minute, settings.ip_new_devices_per_minute / 2)
        self.counts_task: asyncio.Task[None] | None = None
        self.touch_task: asyncio.Task[None] | None = None
        self.ended_task: asyncio.Task[None] | None = None
        self.operator_task: asyncio.Task[None] | None = None

    def subscribe(self) -> None:
        """Before the bus starts: Redis subscribes to the channels that have handlers."""
        self.bus.subscribe(ALERTS_CHANNEL, self.dispatcher.on_bus_event)
        self.bus.subscribe(REPORTS_CHANNEL, self.on_report_event)
        self.bus.subscribe(EXERCISES_CHANNEL, self.on_exercise_event)
        self.bus.subscribe(USERS_CHANNEL, self.on_user_event)
        self.bus.on_resubscribed(self.operators.catch_up)  # what was published while the bus was away

    async def on_exercise_event(self, message: dict[str, Any]) -> None:
        """An exercise that ended takes its devices with it: one stop ends all of its traffic on every worker."""
        if message.get("state") in exercise_clock.ENDED:
            self.hub.close_exercise(
                str(message["id"]), protocol.encode(protocol.error("exercise_ended", "the exercise has ended"))
            )

    async def start(self) -> None:
        self.deliveries.start()
        await self.dispatcher.start()
        self.writer.start()
        self.counts_task = asyncio.create_task(self._push_counts())
        self.touch_task = asyncio.create_task(self._touch_connected())
        self.ended_task = asyncio.create_task(self._close_ended_exercises())
        self.operator_task = asyncio.create_task(self._watch_operators())

    async def stop(self) -> None:
        self.hub.close_all(1001)
        for task in (self.counts_task, self.touch_task, self.ended_task, self.operator_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.writer.stop()
        await self.dispatcher.stop()
        await self.deliveries.stop()

    async def on_report_event(self, message: dict[str, Any]) -> None:
        if message.get("type") == "report_batch":
            await self.operators.on_events(message["events"])
            return
        if message.get("type") != "report_status":
            return
        if message.get("device_id"):
            own = {k: message[k] for k in ("report_id", "client_id", "status", "at")}
            self.hub.send_to_device(str(message["device_id"]), protocol.encode({"type": "report_status", **own}))
        if message.get("seq") is not None:  # exercise reports have none: their triage stays in the exercise
            await self.operators.on_events([{k: v for k, v in message.items() if k != "device_id"}])

    async def on_user_event(self, message: dict[str, Any]) -> None:
        """An account changed: its open operator consoles are checked again at once."""
        if isinstance(message.get("user_id"), int):
            await self.operators.recheck(message["user_id"])

    async def _watch_operators(self, recheck_seconds: float = 30) -> None:
        """The safety net under the bus: poll the feed's record, and re-check every console's account."""
        next_recheck = 0.0
        while True:
            await asyncio.sleep(self.settings.realtime_poll_seconds)
            if not self.operators.consoles:
                continue
            try:
                await self.operators.catch_up()
                now = asyncio.get_running_loop().time()
                if now >= next_recheck:
                    next_recheck = now + recheck_seconds
                    await self.operators.recheck()
            except Exception as exc:
                _failures.failure("feed_poll", "the operator feed's poll failed (%s)", describe(exc), exc_info=True)

    async def _close_ended_exercises(self, every_seconds: float = 5) -> None:
        """The bus is the fast path: if a worker missed an exercise's end, this closes its devices within seconds."""
        while True:
            await asyncio.sleep(every_seconds)
            connected = {c.device.exercise_id for c in self.hub.by_device.values() if c.device.exercise_id}
            if not connected:
                continue
            try:
                async with self.database.sessions() as session:
                    rows = await session.execute(
                        select(Exercise.id).where(Exercise.id.in_(connected), Exercise.state.in_(exercise_clock.ENDED))
                    )
                    ended = list(rows.scalars())
            except Exception:
                log.exception("looking for ended exercises failed")
                continue
            for exercise_id in ended:
                await self.on_exercise_event({"id": exercise_id, "state": "stopped"})

    async def _touch_connected(self, every_seconds: float = 600) -> None:
        """Connected devices count as seen, so retention never purges a device (and its places) while it listens."""
        while True:
            await asyncio.sleep(every_seconds)
            device_ids = list(self.hub.by_device)
            try:
                for start in range(0, len(device_ids), 1_000):
                    async with self.database.sessions() as session:
                        await session.execute(
                            update(Device)
                            .where(Device.id.in_(device_ids[start : start + 1_000]))
                            .values(last_seen_at=datetime.now(UTC))
                        )
                        await session.commit()
            except Exception:
                log.exception("refreshing last-seen times failed")

    async def _push_counts(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.operators.consoles:
                continue
            try:
                await self.push_counts()
            except Exception as exc:
                _failures.failure("push_counts", "pushing alert counts failed (%s)", describe(exc), exc_info=True)

    async def push_counts(self) -> None:
        alert_ids = [a.alert_id for a in await self.dispatcher.active_alerts()]
        if not alert_ids:
            return
        for alert_id, counts in (await self.deliveries.totals(alert_ids)).items():
            if self.operators.last_counts.get(alert_id) != counts:
                self.operators.last_counts[alert_id] = counts
                self.operators.broadcast({"type": "alert_counts", "alert_id": str(alert_id), **counts})
