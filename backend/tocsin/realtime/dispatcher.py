"""From the database to the hub: which alert events this worker has fanned out, and catching up on the rest.

A bus message is only a wake-up call: on each one (and every `poll_seconds` anyway, in case the bus lost it) the
dispatcher reads every event after the last one it handled, in sequence order, from the database. Sequence numbers
are handed out in commit order, so reading "after N" never skips an event that commits late; with Redis down, alerts
still reach every device on every worker, a poll interval later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import geo, metrics
from tocsin.alerts import service as alerts
from tocsin.alerts.schemas import SEVERITY_RANK, CapAlert
from tocsin.db import Database
from tocsin.models import Alert, AlertArea, AlertEvent
from tocsin.realtime import protocol
from tocsin.realtime.hub import Client, Hub, PreparedAlert
from tocsin.resilience import ThrottledLog

log = logging.getLogger(__name__)

MAX_AREA_VERTICES_SENT = 2_000
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
REPLAY_PAGE = 200
REREAD_SECONDS = 0.25  # an answer for an alert not in the cached active list reads it again, at most this often
ACTIVE_LIMIT = 5_000  # active alerts considered for snapshots


class Unrenderable(Exception):
    """An issued message that can never be turned into what a device is sent (not a failure to read it)."""


def alert_body(alert: Alert, message: CapAlert, language: str, geometry: BaseGeometry | None) -> dict[str, Any]:
    """What a device shows: one info (in `language`), the area, and how this message relates to earlier ones."""
    info = next(i for i in message.info if i.lang == language)
    outline = geometry
    tolerance = 0.0005
    while outline is not None and shapely.get_num_coordinates(outline) > MAX_AREA_VERTICES_SENT and tolerance < 1:
        outline = geometry.simplify(tolerance, preserve_topology=True) if geometry is not None else None
        tolerance *= 2
    return {
        "alert_id": str(alert.id),
        "identifier": alert.identifier,
        "msgType": alert.msg_type,
        "status": alert.status,
        "marking": None if alert.status == "Actual" else alert.status.upper(),
        "references": str(alert.references_alert_id) if alert.references_alert_id else None,
        "sent": message.sent.isoformat(),
        "language": info.lang,
        "category": list(info.category),
        "event": info.event,
        "responseType": list(info.responseType),
        "urgency": info.urgency,
        "severity": info.severity,
        "certainty": info.certainty,
        "headline": info.headline,
        "description": info.description,
        "instruction": info.instruction,
        "web": info.web,
        "contact": info.contact,
        "onset": info.onset.isoformat() if info.onset else None,
        "expires": info.expires.isoformat() if info.expires else None,
        "areaDesc": [area.areaDesc.strip() for area in info.area],
        "geometry": geo.to_geojson(outline),
    }


def render(alert: Alert, geometries: list[BaseGeometry], seq: int) -> PreparedAlert:
    message = alerts.cap_content(alert)
    if not message.info:
        raise Unrenderable("the message has no info")
    geometry = geo.union_geometries(geometries)
    languages = list(dict.fromkeys(info.lang for info in message.info))
    bodies = {language: alert_body(alert, message, language, geometry) for language in languages}
    prepared = PreparedAlert(
        seq=seq,
        alert_id=alert.id,
        msg_type=alert.msg_type,
        status=alert.status,
        scope=alert.scope,
        exercise_id=alert.exercise_id,
        categories=frozenset(c for info in message.info for c in info.category),
        severity_rank=max(SEVERITY_RANK.get(info.severity, 0) for info in message.info),
        geometry=geometry,
        languages=languages,
        bodies=bodies,
    )
    prepared.texts = {
        language: protocol.encode({"type": "alert", "seq": seq, **body}) for language, body in bodies.items()
    }
    return prepared


class AlertDispatcher:
    def __init__(self, database: Database, hub: Hub, poll_seconds: float = 1.0) -> None:
        self.database = database
        self.hub = hub
        self.poll_seconds = poll_seconds
        self.last_seq = 0
        self.wakeup = asyncio.Event()
        self.lock = asyncio.Lock()
        self.active_lock = asyncio.Lock()
        self.cache: OrderedDict[uuid.UUID, PreparedAlert] = OrderedDict()
        self.active: list[PreparedAlert] = []
        self.active_at = 0.0
        self.active_seq = -1
        self.task: asyncio.Task[None] | None = None
        self.failure_log = ThrottledLog(log)  # this worker's read failures, said once a minute per kind

    async def start(self) -> None:
        async with self.database.sessions() as session:
            self.last_seq = int(
                (await session.execute(select(func.coalesce(func.max(AlertEvent.seq), 0)))).scalar() or 0
            )
        self.hub.last_seq = self.last_seq
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def on_bus_event(self, _message: dict[str, Any]) -> None:
        self.wakeup.set()

    async def _loop(self) -> None:
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (failures - 1)))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), timeout=self.poll_seconds)
            self.wakeup.clear()
            try:
                await self.catch_up()
                failures = 0
            except Exception as exc:
                failures += 1
                self.failure_log.failure(
                    "catch_up",
                    "reading alert events after seq %d failed (%s: %s); attempt %d, retrying",
                    self.last_seq,
                    type(exc).__name__,
                    exc,
                    failures,
                )

    async def catch_up(self) -> int:
        """Fan out every event after the last one handled, in order. The sequence never passes an event that could
        not be read: what was read before it goes out, then the failure is raised and the caller retries from it."""
        handled = 0
        async with self.lock:
            while True:
                ready: list[tuple[AlertEvent, PreparedAlert | None]] = []
                failure: Exception | None = None
                try:
                    async with self.database.sessions() as session:
                        rows = (
                            (
                                await session.execute(
                                    select(AlertEvent)
                                    .where(AlertEvent.seq > self.last_seq)
                                    .order_by(AlertEvent.seq)
                                    .limit(100)
                                )
                            )
                            .scalars()
                            .all()
                        )
                        for row in rows:
                            ready.append((row, await self._prepare_event(session, row)))
                except Exception as exc:
                    if not ready:
                        raise
                    failure = exc
                if not ready:
                    return handled
                for row, alert in ready:
                    self._fan_out(row, alert)
                    handled += 1
                if failure is not None:
                    raise failure

    def _fan_out(self, event: AlertEvent, alert: PreparedAlert | None) -> None:
        self.last_seq = event.seq
        if alert is None:
            self.hub.last_seq = event.seq
            return
        try:
            self.hub.fan_out(alert)  # synchronous: no await between last_seq and the enqueues
        except Exception:  # a bug; devices get it in their snapshot or on replay
            log.exception("fanning out alert %s (seq %d) failed", alert.alert_id, event.seq)

    async def _prepare_event(self, session: AsyncSession, event: AlertEvent) -> PreparedAlert | None:
        """The message to send for an event, None for events that send nothing. A failure to read raises; only a
        message that can never be rendered is skipped, loudly."""
        if event.kind != "issued":
            return None
        try:
            return await self.prepare(session, event.alert_id, event.seq)
        except Unrenderable as exc:
            log.error(
                "alert %s (seq %d) can never be rendered (%s); no device will get it", event.alert_id, event.seq, exc
            )
            return None

    async def prepare(self, session: AsyncSession, alert_id: uuid.UUID, seq: int) -> PreparedAlert:
        """Read (errors propagate: the caller retries) then render (errors are permanent: Unrenderable)."""
        cached = self.cache.get(alert_id)
        if cached is not None and cached.seq == seq:
            return cached
        alert = await session.get(Alert, alert_id)
        if alert is None:
            raise Unrenderable("the alert is gone")
        geometries = await self._area(session, alert.id)
        if not geometries and alert.references_alert_id is not None:
            # An Update or Cancel without an area of its own goes where the message it follows went.
            geometries = await self._area(session, alert.references_alert_id)
        try:
            prepared = render(alert, list(geometries), seq)
        except Unrenderable:
            raise
        except Exception as exc:
            raise Unrenderable(f"{type(exc).__name__}: {exc}") from exc
        self.cache[alert_id] = prepared
        while len(self.cache) > 512:
            self.cache.popitem(last=False)
        return prepared

    @staticmethod
    async def _area(session: AsyncSession, alert_id: uuid.UUID) -> list[BaseGeometry]:
        query = select(AlertArea.geom).where(AlertArea.alert_id == alert_id, AlertArea.geom.is_not(None))
        return list((await session.execute(query)).scalars().all())

    # ---- one device: replay and snapshot ------------------------------------------------------------------------

    @metrics.timed(metrics.REPLAY_SECONDS)
    async def replay(self, client: Client, after: int, upto: int) -> int:
        """Queue every message for this device with after < seq <= upto, in order. Returns the last seq replayed.

        Page by page; the database session is closed before waiting for room in the device's queue, so a device
        that stops reading holds no connection."""
        last = after
        while last < upto and not client.closed:
            async with self.database.sessions() as session:
                rows = (
                    (
                        await session.execute(
                            select(AlertEvent)
                            .where(AlertEvent.seq > last, AlertEvent.seq <= upto, AlertEvent.kind == "issued")
                            .order_by(AlertEvent.seq)
                            .limit(REPLAY_PAGE)
                        )
                    )
                    .scalars()
                    .all()
                )
                page = [(row.seq, await self._prepare_event(session, row)) for row in rows]
            if not page:
                return upto
            for seq, alert in page:
                last = seq
                if alert is None or not client.device.wants(alert) or not client.device.inside(alert.geometry):
                    continue
                self.hub.deliveries.target(alert.alert_id, (client.device.device_id,))
                await client.put(alert.ids, alert.texts[alert.language_for(client.device.languages)])
        return max(last, upto) if not client.closed else last

    async def active_alerts(self) -> list[PreparedAlert]:
        """Issued, unexpired Alert/Update messages; refreshed at most once a second or after a new event, by one
        caller at a time (a reconnect storm after a restart runs the query once, not once per device)."""
        if self._active_fresh():
            return self.active
        async with self.active_lock:
            if self._active_fresh():
                return self.active
            await self._refresh_active()
        return self.active

    async def active_alert(self, alert_id: uuid.UUID) -> PreparedAlert | None:
        """The active alert with this id. Read afresh (at most every REREAD_SECONDS) when the cached list lacks it:
        another worker may have sent it before this one has fanned it out."""
        found = next((alert for alert in await self.active_alerts() if alert.alert_id == alert_id), None)
        if found is None and time.monotonic() - self.active_at > REREAD_SECONDS:
            async with self.active_lock:
                if time.monotonic() - self.active_at > REREAD_SECONDS:
                    await self._refresh_active()
            found = next((alert for alert in self.active if alert.alert_id == alert_id), None)
        return found

    def _active_fresh(self) -> bool:
        return self.active_seq == self.last_seq and time.monotonic() - self.active_at < 1.0

    async def _refresh_active(self) -> None:
        seq_now = self.last_seq
        async with self.database.sessions() as session:
            query = alerts.AlertQuery(active=True, public_only=False, limit=ACTIVE_LIMIT)
            found = await alerts.find_alerts(session, query=query)
            issued = {
                row.alert_id: row.seq
                for row in (
                    await session.execute(
                        select(AlertEvent).where(
                            AlertEvent.alert_id.in_([a.id for a in found]), AlertEvent.kind == "issued"
                        )
                    )
                ).scalars()
            }
            prepared = []
            for alert in found:
                try:
                    prepared.append(await self.prepare(session, alert.id, issued.get(alert.id, 0)))
                except Unrenderable as exc:
                    log.error("active alert %s can never be rendered (%s); left out of snapshots", alert.id, exc)
        self.active = prepared
        self.active_at = time.monotonic()
        self.active_seq = seq_now

    async def snapshot(self, client: Client, seq: int) -> tuple[tuple[uuid.UUID, ...], str]:
        """Active alerts that apply to the device, up to `seq` (later ones reach it as live `alert` messages): the
        alerts it carries (noted as meant for this device) and the encoded message."""
        applying = [
            alert
            for alert in await self.active_alerts()
            if alert.seq <= seq and client.device.wants(alert) and client.device.inside(alert.geometry)
        ]
        for alert in applying:
            self.hub.deliveries.target(alert.alert_id, (client.device.device_id,))
        bodies = [
            alert.bodies[alert.language_for(client.device.languages)] | {"alert_seq": alert.seq} for alert in applying
        ]
        text = protocol.encode({"type": "snapshot", "seq": seq, "alerts": bodies})
        return tuple(alert.alert_id for alert in applying), text
