"""Synthetic citizens at work: the scenario's population (devices.py) as simulated phones speaking the real citizen
protocol.

Connected devices say hello with the exercise's join token, so they get this exercise's alerts and nothing else. On
an alert they note the moment (the reach figures), acknowledge it with the scenario's rate and delay, and check in
(vulnerable people ask for help more often). Some move during the exercise. Report waves make the devices in an area
report; an infrastructure failure cuts some devices off: they queue their reports and resend them when they are
back, replaying the alerts they missed. All delays are scenario time (LiveClock), so they follow pauses and speed
changes. The random choices come from the exercise's seed: a rerun behaves the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tocsin import geo
from tocsin.exercises.scenario import Failure, ReportWave, Scenario, minutes
from tocsin.exercises.simulation.devices import Receipt, SyntheticDevice, random_points
from tocsin.exercises.simulation.links import Link, LinkClosed
from tocsin.kernel.exercise_clock import LiveClock, now

log = logging.getLogger(__name__)

RECONNECT_WALL_SECONDS = (0.5, 5.0)  # first wait, longest wait (doubling, with jitter)
CONNECT_STAGGER_SECONDS = 0.005  # between devices coming up: 2,000 devices over ten seconds
RESEND_WALL_SECONDS = 2.0  # after `rate_limited` or `unavailable` for a report
# Refusals that will not change by trying again: the device gives up.
FINAL_REFUSALS = frozenset({"exercise_ended", "exercise_unknown", "exercise_required", "device_in_use"})
MOVER_SHARE = 0.1  # commuters: move to another area once during the exercise
# What a failure of a service makes people report, and the share of those affected who do.
FAILURE_REPORTS = {
    "power": ("power_outage", 0.3),
    "telecom": ("telecom_outage", 0.2),
    "internet": ("telecom_outage", 0.2),
    "water": ("water_supply", 0.3),
    "roads": ("road_blocked", 0.2),
}
# Which failures take phones off the network, and the share of those affected it takes.
FAILURE_DISCONNECTS = {"telecom": 1.0, "internet": 1.0, "power": 0.4}
# What people in an area of this kind see and may report once warned (their own situation).
AREA_REPORTS = {
    "flood_zone": "flooding",
    "fire_zone": "fire",
    "plume_footprint": "smoke",
    "shaking_zone": "structural_damage",
}

Connect = Callable[[], Awaitable[Link]]


class Population:
    """Runs the devices of one exercise; `receipts` and `stats` are collected by the runner."""

    def __init__(
        self,
        scenario: Scenario,
        devices: list[SyntheticDevice],
        *,
        exercise_id: str,
        join_token: str,
        clock: LiveClock,
        connect: Connect,
        seed: int,
    ) -> None:
        self.scenario = scenario
        self.devices = devices
        self.exercise_id = exercise_id
        self.join_token = join_token
        self.clock = clock
        self.connect = connect
        self.rng = random.Random(seed + 1)
        self.behaviour = scenario.population.behaviour
        self.shapes = {area.id: geo.from_geojson(area.geometry) for area in scenario.areas}
        self.kinds = {area.id: area.kind for area in scenario.areas}
        self.tasks: set[asyncio.Task[None]] = set()
        self.receipts: list[Receipt] = []
        self.stats = {"lost_connection": 0, "queued_reports_resent": 0, "reports_sent": 0, "acks_sent": 0}
        self.stopping = False

    # ---- lifecycle --------------------------------------------------------------------------------------------------

    def start(self) -> None:
        for index, device in enumerate(self.devices):
            if device.connected:
                device.back_online.set()
                self._spawn(self._live(device, delay=index * CONNECT_STAGGER_SECONDS))
        movers = [d for d in self.devices if d.connected and self.rng.random() < MOVER_SHARE]
        end = minutes(self.scenario.duration) * 60
        for device in movers:
            self._spawn(self._move(device, at=self.rng.uniform(0.1, 0.6) * end))

    async def stop(self) -> None:
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(d.link.close() for d in self.devices if d.link is not None), return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if self.stopping:
            work.close()
            return
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a synthetic citizen failed", exc_info=task.exception())

    # ---- one device's connection --------------------------------------------------------------------------------

    def _hello(self, device: SyntheticDevice) -> str:
        hello: dict[str, Any] = {
            "type": "hello",
            "id": "hello",
            "device_id": device.device_id,
            "location": {"lon": device.location[0], "lat": device.location[1]},
            "languages": [device.lang],
            "exercise": {"id": self.exercise_id, "token": self.join_token},
        }
        if device.last_seq is not None:
            hello["last_seq"] = device.last_seq
        return json.dumps(hello)

    async def _live(self, device: SyntheticDevice, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)
        wait = RECONNECT_WALL_SECONDS[0]
        while not self.stopping and device.connected:
            await device.back_online.wait()
            try:
                device.link = await self.connect()
                await device.link.send(self._hello(device))
                device.online = True
                for text in list(device.pending.values()):  # what was not acknowledged goes again
                    await device.link.send(text)
                while True:
                    self._on_message(device, json.loads(await device.link.recv()))
                    wait = RECONNECT_WALL_SECONDS[0]
            except (LinkClosed, OSError):
                pass
            finally:
                device.online = False
            if device.cut_off:
                continue  # waits for back_online
            await asyncio.sleep(wait * self.rng.uniform(0.5, 1.5))
            wait = min(wait * 2, RECONNECT_WALL_SECONDS[1])

    async def _send(self, device: SyntheticDevice, message: dict[str, Any]) -> bool:
        if not device.online or device.link is None:
            return False
        with contextlib.suppress(LinkClosed, OSError):
            await device.link.send(json.dumps(message))
            return True
        return False

    def _on_message(self, device: SyntheticDevice, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "alert":
            device.last_seq = max(device.last_seq or 0, int(message.get("seq") or 0))
            self._on_alert(device, message)
            self._say_received(device, [message])
        elif kind == "snapshot":
            for alert in message.get("alerts", []):
                self._on_alert(device, alert)
            self._say_received(device, message.get("alerts", []))
        elif kind == "ack" and message.get("id") in device.pending:
            report_id = str(message["id"])
            del device.pending[report_id]
            if report_id in device.queued_offline:
                device.queued_offline.discard(report_id)
                self.stats["queued_reports_resent"] += 1
        elif kind == "error":
            self._on_error(device, message)

    def _on_error(self, device: SyntheticDevice, message: dict[str, Any]) -> None:
        code, message_id = message.get("code"), message.get("id")
        if code in FINAL_REFUSALS:
            device.connected = False  # its loop ends; the link closes from the server's side
        elif code in ("rate_limited", "unavailable") and message_id in device.pending:
            self._spawn(self._resend(device, str(message_id)))

    async def _resend(self, device: SyntheticDevice, report_id: str) -> None:
        await asyncio.sleep(RESEND_WALL_SECONDS * self.rng.uniform(0.5, 1.5))
        text = device.pending.get(report_id)
        if text is not None and device.online and device.link is not None:
            with contextlib.suppress(LinkClosed, OSError):
                await device.link.send(text)

    def _say_received(self, device: SyntheticDevice, alerts: list[dict[str, Any]]) -> None:
        """Like a real app: tell the server which alerts are in hand (the `received` count)."""
        alert_ids = [str(alert["alert_id"]) for alert in alerts if alert.get("alert_id")]
        if alert_ids:
            self._spawn(self._send_received(device, alert_ids[:100]))

    async def _send_received(self, device: SyntheticDevice, alert_ids: list[str]) -> None:
        await self._send(device, {"type": "received", "alert_ids": alert_ids})

    # ---- behaviour ------------------------------------------------------------------------------------------------

    def _on_alert(self, device: SyntheticDevice, alert: dict[str, Any]) -> None:
        alert_id = str(alert.get("alert_id") or "")
        if not alert_id or alert_id in device.received:
            return
        device.received.add(alert_id)
        at = now()
        self.receipts.append(Receipt(alert_id, device.device_id, at, self.clock.seconds(at)))
        if alert.get("msgType") == "Cancel" or self.rng.random() >= self.behaviour.ack_rate:
            return
        self._spawn(self._respond(device, alert_id))

    async def _respond(self, device: SyntheticDevice, alert_id: str) -> None:
        low, high = self.behaviour.ack_delay_seconds
        await self.clock.sleep(self.rng.uniform(low, high))
        if await self._send(device, {"type": "ack_alert", "alert_id": alert_id}):
            self.stats["acks_sent"] += 1
        if self.rng.random() >= self.behaviour.checkin_rate:
            return
        await self.clock.sleep(self.rng.uniform(60, 900))
        need_help = self.behaviour.need_help_share * (3 if device.vulnerable else 1)
        status = "need_help" if self.rng.random() < min(need_help, 1.0) else "safe"
        checkin: dict[str, Any] = {"type": "checkin", "alert_id": alert_id, "status": status}
        if status == "need_help":
            checkin["location"] = {"lon": device.location[0], "lat": device.location[1]}
        await self._send(device, checkin)
        kind = self.kinds.get(device.area)
        if kind in AREA_REPORTS and self.rng.random() < self.behaviour.need_help_share * 2:
            await self.clock.sleep(self.rng.uniform(60, 1_800))  # then the water reaches their street
            await self.report(device, AREA_REPORTS[kind], "It has reached our street now.")

    async def _move(self, device: SyntheticDevice, *, at: float) -> None:
        await self.clock.sleep_until(at)
        others = [area for area in self.shapes if area != device.area]
        if not others:
            return
        target = self.rng.choice(others)
        device.location = random_points(self.shapes[target], 1, self.rng)[0]
        lon, lat = device.location
        await self._send(device, {"type": "location", "id": "move", "location": {"lon": lon, "lat": lat}})

    async def report(self, device: SyntheticDevice, category: str, text: str) -> None:
        """Send a report, or keep it until the device is back online (then it goes again, same id)."""
        report_id = str(uuid.uuid4())
        lon, lat = device.location
        message = {
            "type": "report",
            "id": report_id,
            "category": category,
            "text": text,
            "location": {"lon": round(lon, 6), "lat": round(lat, 6)},
            "observed_at": now().isoformat(),
        }
        device.pending[report_id] = json.dumps(message)
        self.stats["reports_sent"] += 1
        if not await self._send(device, message):
            device.queued_offline.add(report_id)

    def in_area(self, area: str) -> list[SyntheticDevice]:
        return [d for d in self.devices if d.connected and d.area == area]

    def report_wave(self, wave: ReportWave, scale: float) -> None:
        """`count` reports (scaled to the devices brought up) from the area's devices, spread over `over_minutes`."""
        candidates = self.in_area(wave.area)
        if not candidates:
            return
        count = max(1, round(wave.count * scale))
        start = self.clock.seconds()
        for index in range(count):
            device = candidates[index % len(candidates)]
            at = start + self.rng.uniform(0, wave.over_minutes * 60)
            self._spawn(self._report_at(device, at, wave.category, self.rng.choice(wave.texts)))

    async def _report_at(self, device: SyntheticDevice, at: float, category: str, text: str) -> None:
        await self.clock.sleep_until(at)
        await self.report(device, category, text)

    def failure(self, failure: Failure) -> None:
        """Cut off a share of the area's devices (telecom, internet, power) and make some report what they lost."""
        affected = [d for d in self.in_area(failure.area) if self.rng.random() < failure.share]
        disconnect_share = FAILURE_DISCONNECTS.get(failure.service, 0.0)
        cut = [d for d in affected if self.rng.random() < disconnect_share]
        category, reporting_share = FAILURE_REPORTS[failure.service]
        for device in affected:
            if device not in cut and self.rng.random() < reporting_share:
                self._spawn(self.report(device, category, f"No {failure.service} here since a few minutes."))
        for device in cut:
            self._cut(device)
            if self.rng.random() < reporting_share:  # written now, sent when the network is back
                self._spawn(self.report(device, category, f"We had no {failure.service} for a while."))
        if failure.until is not None:
            self._spawn(self._restore(cut, minutes(failure.until) * 60))

    def _cut(self, device: SyntheticDevice) -> None:
        device.cut_off = True
        device.online = False
        device.back_online.clear()
        self.stats["lost_connection"] += 1
        if device.link is not None:
            self._spawn(device.link.close())

    async def _restore(self, devices: list[SyntheticDevice], at: float) -> None:
        await self.clock.sleep_until(at)
        for device in devices:  # not all in the same millisecond: a network comes back cell by cell
            device.cut_off = False
            device.back_online.set()
            await asyncio.sleep(CONNECT_STAGGER_SECONDS)
