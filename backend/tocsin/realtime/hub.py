"""This worker's connected devices, where they are, and their send queues.

Fan-out tests an alert's area against every device position in one vectorised pass (shapely 2 `contains_xy` over
arrays; `intersects` over the array of saved-place geometries), serialises the message once per language, and puts the
bytes on each matching device's bounded queue. Nothing here awaits a send: each device has its own writer task, and a
device whose queue is full is closed with 1013 (try again later) and replays what it missed when it reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from tocsin import metrics
from tocsin.alerts.schemas import SEVERITY_RANK
from tocsin.realtime.counters import DeliveryRecorder
from tocsin.realtime.transport import DirectWrites

log = logging.getLogger(__name__)

QUEUE_SIZE = 64
HELD_LIMIT = 1_000  # live messages kept for one device while its replay runs
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_NORMAL = 1000
FALLBACK_LANGUAGE = "en"

# What waits in a device's queue: (the alerts the frame carries, the frame), or a close code, or None (stop).
Queued = tuple[tuple[uuid.UUID, ...], str] | int | None


@dataclass
class PreparedAlert:
    """An issued CAP message, ready to send: its targeting geometry and one encoded payload per language."""

    seq: int
    alert_id: uuid.UUID
    msg_type: str
    status: str
    scope: str
    exercise_id: str | None
    categories: frozenset[str]
    severity_rank: int
    geometry: BaseGeometry | None
    languages: list[str]  # in the alert's order
    bodies: dict[str, dict[str, Any]]  # language -> message body without seq
    texts: dict[str, str] = field(default_factory=dict)  # language -> encoded `alert` message (with seq)

    @property
    def ids(self) -> tuple[uuid.UUID]:
        return (self.alert_id,)

    def language_for(self, preferred: list[str]) -> str:
        """The device's first language the alert has (by primary subtag), else English, else the alert's first."""
        for wanted in [*preferred, FALLBACK_LANGUAGE]:
            primary = wanted.split("-")[0].lower()
            for language in self.languages:
                if language.split("-")[0].lower() == primary:
                    return language
        return self.languages[0]


@dataclass
class Device:
    """What the hub knows of one connected device; the location never leaves memory."""

    device_id: str
    languages: list[str] = field(default_factory=list)
    categories: frozenset[str] = frozenset()
    min_severity_rank: int = 0
    exercise_id: str | None = None
    location: tuple[float, float] | None = None  # lon, lat
    places: list[BaseGeometry] = field(default_factory=list)

    def wants(self, alert: PreparedAlert) -> bool:
        # Citizens get Public messages only (Restricted/Private ones are for their addressees). Exercise traffic
        # reaches only that exercise's devices, and an exercise's devices get only its traffic (a synthetic citizen
        # must not answer a real alert); Test/System/Draft reach no citizen; real alerts reach every other device.
        if alert.scope != "Public":
            return False
        if self.exercise_id is not None and alert.exercise_id != self.exercise_id:
            return False
        if alert.status == "Exercise":
            if alert.exercise_id is None or alert.exercise_id != self.exercise_id:
                return False
        elif alert.status != "Actual":
            return False
        if alert.msg_type == "Cancel":
            return True
        if self.categories and not (self.categories & alert.categories):
            return False
        return alert.severity_rank >= self.min_severity_rank

    def inside(self, geometry: BaseGeometry | None) -> bool:
        if geometry is None:
            return False
        if self.location is not None and shapely.contains_xy(geometry, *self.location):
            return True
        return any(geometry.intersects(place) for place in self.places)


class Client:
    """One connection: its device, a bounded queue, and the hook that closes it.

    `direct`, when the connection offers it (the lean listener), writes a frame to the socket without awaiting (like
    `websockets.broadcast`) and says whether it could. Fan-out uses it only while nothing is queued or being sent for
    this device, so frames keep their order; otherwise the message waits in the queue for the writer task.
    """

    def __init__(
        self,
        device: Device,
        close: Callable[[int], None],
        queue_size: int = QUEUE_SIZE,
        direct: DirectWrites | None = None,
        written: Callable[[tuple[uuid.UUID, ...]], None] | None = None,
    ) -> None:
        self.device = device
        self.direct = direct
        self.written = written  # notes the alerts of a frame written to the socket
        self.sending = False  # the writer task is inside a send
        # An int is a close code the writer applies after sending what came before it.
        self.queue: asyncio.Queue[Queued] = asyncio.Queue(queue_size)
        self.close = close
        self.slot = -1
        self.closed = False
        # While replaying from the database, live messages wait here (seq, alert ids, text).
        self.held: list[tuple[int, tuple[uuid.UUID, ...], str]] | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued or being sent for this device: a frame written now keeps the order."""
        return not self.sending and self.queue.empty()

    async def put(self, alert_ids: tuple[uuid.UUID, ...], text: str) -> None:
        """Wait for room (replay: the writer is draining the same queue)."""
        if not self.closed:
            await self.queue.put((alert_ids, text))

    def offer(self, alert_ids: tuple[uuid.UUID, ...], text: str) -> bool:
        if self.closed:
            return False
        if self.direct is not None and self.idle and self.direct.write_now(text):
            if alert_ids and self.written is not None:
                self.written(alert_ids)
            return True
        try:
            self.queue.put_nowait((alert_ids, text))
            return True
        except asyncio.QueueFull:
            self.closed = True
            metrics.QUEUE_DROPS.inc()
            self.close(CLOSE_TRY_AGAIN_LATER)
            return False


class Hub:
    def __init__(self, deliveries: DeliveryRecorder) -> None:
        self.deliveries = deliveries
        self.clients: list[Client | None] = []
        self.free: list[int] = []
        self.xs = np.full(0, np.nan)
        self.ys = np.full(0, np.nan)
        self.by_device: dict[str, Client] = {}
        self._places: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None
        self.last_seq = 0  # set by the dispatcher before each fan-out
        # Set by the lean listener: writes one frame to many connections at once, returns the clients written.
        self.write_batch: Callable[[list[Client], str], list[Client]] | None = None

    # ---- membership --------------------------------------------------------------------------------------------

    def add(self, client: Client) -> int:
        """Register (synchronously, so no fan-out interleaves); returns the last sequence number fanned out."""
        if self.free:
            slot = self.free.pop()
            self.clients[slot] = client
        else:
            slot = len(self.clients)
            self.clients.append(client)
            if slot >= len(self.xs):
                size = max(1024, 2 * len(self.xs))
                self.xs = np.concatenate([self.xs, np.full(size - len(self.xs), np.nan)])
                self.ys = np.concatenate([self.ys, np.full(size - len(self.ys), np.nan)])
        client.slot = slot
        previous = self.by_device.get(client.device.device_id)
        if previous is not None and previous is not client:
            previous.closed = True
            previous.close(1008)  # the same device connected again: the newer connection wins
        self.by_device[client.device.device_id] = client
        self.set_location(client, client.device.location)
        self._places = None
        return self.last_seq

    def remove(self, client: Client) -> None:
        if client.slot < 0 or self.clients[client.slot] is not client:
            return
        self.clients[client.slot] = None
        self.xs[client.slot] = np.nan
        self.ys[client.slot] = np.nan
        self.free.append(client.slot)
        if self.by_device.get(client.device.device_id) is client:
            del self.by_device[client.device.device_id]
        self._places = None
        client.slot = -1

    def set_location(self, client: Client, location: tuple[float, float] | None) -> None:
        client.device.location = location
        if client.slot >= 0:
            self.xs[client.slot] = np.nan if location is None else location[0]
            self.ys[client.slot] = np.nan if location is None else location[1]

    def set_places(self, client: Client, places: list[BaseGeometry]) -> None:
        client.device.places = places
        self._places = None

    @property
    def connected(self) -> int:
        return len(self.clients) - len(self.free)

    # ---- fan-out -----------------------------------------------------------------------------------------------

    def _place_arrays(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        if self._places is None:
            geometries: list[BaseGeometry] = []
            owners: list[int] = []
            for slot, client in enumerate(self.clients):
                if client is not None:
                    geometries.extend(client.device.places)
                    owners.extend([slot] * len(client.device.places))
            self._places = (np.array(geometries, dtype=object), np.array(owners, dtype=np.int64))
        return self._places

    def matching_slots(self, geometry: BaseGeometry) -> np.ndarray[Any, Any]:
        """Slots of devices whose location lies in the area or one of whose places touches it."""
        shapely.prepare(geometry)
        count = len(self.clients)
        hits = shapely.contains_xy(geometry, self.xs[:count], self.ys[:count])
        slots = np.flatnonzero(hits)
        places, owners = self._place_arrays()
        if len(places):
            place_hits = shapely.intersects(geometry, places)
            slots = np.union1d(slots, owners[place_hits])
        return slots

    @metrics.FANOUT_SECONDS.time()
    def fan_out(self, alert: PreparedAlert) -> int:
        """Queue the alert for every matching device on this worker. Synchronous by design: see Client.held."""
        self.last_seq = alert.seq
        if alert.geometry is None:
            return 0
        matched: list[str] = []
        chosen: dict[tuple[str, ...], str] = {}  # device language preferences -> the alert's language for them
        batches: dict[str, list[Client]] = {}  # language -> idle lean connections, written with one encoding
        ids = alert.ids
        for slot in self.matching_slots(alert.geometry):
            client = self.clients[int(slot)]
            if client is None or client.closed or not client.device.wants(alert):
                continue
            matched.append(client.device.device_id)
            preferences = tuple(client.device.languages)
            language = chosen.get(preferences)
            if language is None:
                language = chosen[preferences] = alert.language_for(client.device.languages)
            if client.held is not None:
                client.held.append((alert.seq, ids, alert.texts[language]))
                if len(client.held) > HELD_LIMIT:  # replaying for too long: reconnect and replay from the database
                    client.closed = True
                    client.close(CLOSE_TRY_AGAIN_LATER)
            elif self.write_batch is not None and client.direct is not None and client.idle:
                batches.setdefault(language, []).append(client)
            else:
                client.offer(ids, alert.texts[language])
        # Noted before the batched writes below: a device may answer the moment its frame is out.
        if matched:
            self.deliveries.target(alert.alert_id, matched)
        for language, batch in batches.items():
            text = alert.texts[language]
            written = self.write_batch(batch, text) if self.write_batch is not None else []
            if written:
                self.deliveries.wrote(alert.alert_id, [client.device.device_id for client in written])
            done = {id(client) for client in written}
            for client in batch:
                if id(client) not in done:
                    client.offer(ids, text)  # not writable right now: the queue takes it
        metrics.DELIVERIES.inc(len(matched))
        return len(matched)

    def send_to_device(self, device_id: str, text: str) -> bool:
        client = self.by_device.get(device_id)
        return client.offer((), text) if client is not None else False

    def close_exercise(self, exercise_id: str, farewell: str) -> int:
        """Say why, then close every connection of this exercise's devices (the writer closes after the message)."""
        closed = 0
        for client in list(self.by_device.values()):
            if client.device.exercise_id == exercise_id and not client.closed:
                client.offer((), farewell)
                client.closed = True
                try:
                    client.queue.put_nowait(CLOSE_NORMAL)
                except asyncio.QueueFull:
                    client.close(CLOSE_NORMAL)
                closed += 1
        return closed

    def close_all(self, code: int = 1001) -> None:
        for client in self.clients:
            if client is not None and not client.closed:
                client.closed = True
                client.close(code)


def severity_rank(severity: str | None) -> int:
    return SEVERITY_RANK.get(severity or "Unknown", 0)
