"""The clients of `faults.py`: citizen devices, operator feeds and the staff who issue alerts, each recording what
it was acknowledged and what it received, to be compared with the database at the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

AREA = (11.80, 44.20, 11.95, 44.35)  # min lon, min lat, max lon, max lat: every device is inside, every alert covers it
RESEND_AFTER_SECONDS = 20.0  # a report with no answer for this long on an open socket is sent again (same id)
OPEN_TIMEOUT_SECONDS = 5.0


def area_polygon() -> list[list[list[float]]]:
    west, south, east, north = AREA
    return [[[west, south], [east, south], [east, north], [west, north], [west, south]]]


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


@dataclass
class Device:
    """One citizen app speaking docs/protocol.md: hello with last_seq, reports kept until acknowledged and resent
    with the same id after a reconnect, every alert acknowledged."""

    device_id: str
    lon: float
    lat: float
    report_interval: float
    reporting: bool = True
    last_seq: int | None = None
    first_seq: int | None = None  # welcome.seq of the first connection: every alert after it must arrive
    received: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, alert id, "live" | "replay")
    snapshot_ids: set[str] = field(default_factory=set)
    pending: dict[str, tuple[str, float]] = field(default_factory=dict)  # report id -> (message, last sent)
    acked: dict[str, float] = field(default_factory=dict)  # report id -> when the ack came
    alert_acked: set[str] = field(default_factory=set)
    alert_ack_pending: dict[str, float] = field(default_factory=dict)  # alert id -> last sent (0: send again)
    errors: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    sent: int = 0

    def _report(self) -> str:
        report_id = str(uuid.uuid4())
        message = {
            "type": "report",
            "id": report_id,
            "category": "flooding",
            "text": f"water rising near {self.device_id}",
            "location": {"lon": self.lon, "lat": self.lat},
            "observed_at": datetime.now(UTC).isoformat(),
        }
        text = json.dumps(message)
        self.pending[report_id] = (text, 0.0)
        self.sent += 1
        return report_id

    async def run(self, url: str, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                async with connect(url, compression=None, open_timeout=OPEN_TIMEOUT_SECONDS, close_timeout=1) as ws:
                    delay = 0.2
                    await self._session(ws, stop)
            except (OSError, TimeoutError, WebSocketException):
                pass
            finally:
                self.on_disconnect()
            await _pause(stop, delay)
            delay = min(delay * 2, 2.0)

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        hello: dict[str, Any] = {
            "type": "hello",
            "device_id": self.device_id,
            "location": {"lon": self.lon, "lat": self.lat},
            "languages": ["en"],
        }
        if self.last_seq is not None:
            hello["last_seq"] = self.last_seq
        await ws.send(json.dumps(hello))
        self.connections += 1
        replaying = True
        sender: asyncio.Task[None] | None = None
        closer = asyncio.create_task(self._close_on(stop, ws))
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "welcome" and self.first_seq is None:
                    self.first_seq = self.last_seq = int(message["seq"])
                elif kind == "alert":
                    seq, alert_id = int(message["seq"]), str(message["alert_id"])
                    self.received.append((seq, alert_id, "replay" if replaying else "live"))
                    self.last_seq = max(self.last_seq or 0, seq)
                    if alert_id not in self.alert_acked:
                        self.alert_ack_pending[alert_id] = time.monotonic()
                        await ws.send(self._ack_alert(alert_id))
                elif kind == "snapshot":
                    replaying = False
                    self.snapshot_ids.update(str(a["alert_id"]) for a in message.get("alerts", []))
                    if sender is None:
                        sender = asyncio.create_task(self._send_reports(ws))
                elif kind == "ack":
                    self._on_ack(message)
                elif kind == "error":
                    self.errors[str(message.get("code"))] += 1
                    answered = str(message.get("id"))
                    if answered in self.pending:
                        self.pending[answered] = (self.pending[answered][0], 0.0)  # resend on the next tick
                    elif answered.startswith("aa-") and answered[3:] in self.alert_ack_pending:
                        self.alert_ack_pending[answered[3:]] = 0.0
        except ConnectionClosed:
            pass
        finally:
            closer.cancel()
            if sender is not None:
                sender.cancel()

    @staticmethod
    async def _close_on(stop: asyncio.Event, ws: ClientConnection) -> None:
        await stop.wait()
        await ws.close()

    @staticmethod
    def _ack_alert(alert_id: str) -> str:
        return json.dumps({"type": "ack_alert", "id": f"aa-{alert_id}", "alert_id": alert_id})

    def _on_ack(self, message: dict[str, Any]) -> None:
        if message.get("alert_id") is not None and str(message.get("id", "")).startswith("aa-"):
            self.alert_acked.add(str(message["alert_id"]))
            self.alert_ack_pending.pop(str(message["alert_id"]), None)
        elif message.get("id") in self.pending:
            del self.pending[message["id"]]
            self.acked[message["id"]] = time.time()

    async def _send_reports(self, ws: ClientConnection) -> None:
        """Resend what is unacknowledged, then one new report every interval (offset per device)."""
        next_report = time.monotonic() + (hash(self.device_id) % 1000) / 1000 * self.report_interval
        while True:
            now = time.monotonic()
            if self.reporting and now >= next_report:
                self._report()
                next_report = now + self.report_interval
            for report_id, (text, sent_at) in list(self.pending.items()):
                if now - sent_at >= RESEND_AFTER_SECONDS or sent_at == 0.0:
                    self.pending[report_id] = (text, now)
                    await ws.send(text)
            for alert_id, sent_at in list(self.alert_ack_pending.items()):
                if now - sent_at >= RESEND_AFTER_SECONDS or sent_at == 0.0:
                    self.alert_ack_pending[alert_id] = now
                    await ws.send(self._ack_alert(alert_id))
            await asyncio.sleep(0.25)

    def on_disconnect(self) -> None:
        for report_id, (text, _) in list(self.pending.items()):
            self.pending[report_id] = (text, 0.0)
        for alert_id in self.alert_ack_pending:
            self.alert_ack_pending[alert_id] = 0.0


@dataclass
class OperatorFeed:
    """`/ws/operator`: records which reports it was told about and when it was connected. Authenticates with an
    `Authorization: Bearer` header (the server refuses a token in the URL) and resumes after a reconnect from the
    last `seq` it saw (`?since=`), as a console does."""

    name: str
    url: str
    seen: dict[str, float] = field(default_factory=dict)  # report client id -> when
    intervals: list[list[float]] = field(default_factory=list)  # [connected at, disconnected at]
    last_seq: int | None = None

    async def run(self, staff: Staff, stop: asyncio.Event) -> None:
        while not stop.is_set():
            token = await staff.token("operator")
            headers = {"Authorization": f"Bearer {token}"}
            try:
                url = self.url if self.last_seq is None else f"{self.url}?since={self.last_seq}"
                async with connect(url, additional_headers=headers, open_timeout=OPEN_TIMEOUT_SECONDS) as ws:
                    await self._follow(ws, stop)
            except (OSError, TimeoutError, WebSocketException):
                pass
            await _pause(stop, 0.5)

    async def _follow(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout=OPEN_TIMEOUT_SECONDS))
        if welcome.get("type") != "welcome":
            return
        if self.last_seq is None and isinstance(welcome.get("seq"), int):
            self.last_seq = welcome["seq"]
        interval = [time.time(), time.time()]
        self.intervals.append(interval)
        closer = asyncio.create_task(Device._close_on(stop, ws))
        try:
            async for raw in ws:
                message = json.loads(raw)
                if isinstance(message.get("seq"), int):
                    self.last_seq = max(self.last_seq or 0, message["seq"])
                if message.get("type") == "report_new":
                    self.seen.setdefault(str(message["report"]["client_id"]), time.time())
        except ConnectionClosed:
            pass
        finally:
            interval[1] = time.time()
            closer.cancel()


@dataclass
class IssuedAlert:
    label: str
    alert_id: str | None = None
    scheduled_for: datetime | None = None
    acknowledged: bool = False  # the issue call answered 200
    statuses: list[str] = field(default_factory=list)
    issuing: asyncio.Event = field(default_factory=asyncio.Event)  # set as the issue call goes out


class Staff:
    """The operator who drafts and the approver who approves and issues, over the REST API of any worker (the next
    one when a worker does not answer, as a reverse proxy would), retrying through faults until a deadline."""

    def __init__(self, base_urls: list[str], passwords: dict[str, str], deadline: float) -> None:
        self.clients = [httpx.AsyncClient(base_url=url, timeout=5.0) for url in base_urls]
        self.turn = 0
        self.passwords = passwords
        self.deadline = deadline
        self.tokens: dict[str, str] = {}
        self.issued: list[IssuedAlert] = []

    @property
    def http(self) -> httpx.AsyncClient:
        return self.clients[self.turn % len(self.clients)]

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def token(self, user: str) -> str:
        while user not in self.tokens:
            try:
                answer = await self.http.post(
                    "/api/v1/auth/token", data={"username": user, "password": self.passwords[user]}
                )
                if answer.status_code == 200:
                    self.tokens[user] = str(answer.json()["access_token"])
                    break
            except httpx.HTTPError:
                self.turn += 1
            await asyncio.sleep(0.5)
        return self.tokens[user]

    async def call(self, method: str, path: str, user: str, body: Any = None, log: list[str] | None = None) -> Any:
        """The JSON answer of the first 2xx, or None if the deadline passed; 4xx are final (None)."""
        until = time.monotonic() + self.deadline
        while time.monotonic() < until:
            headers = {"Authorization": f"Bearer {await self.token(user)}"}
            try:
                answer = await self.http.request(method, path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                self.turn += 1
                if log is not None:
                    log.append(type(exc).__name__)
                await asyncio.sleep(0.3)
                continue
            if log is not None:
                log.append(str(answer.status_code))
            if answer.is_success:
                return answer.json()
            if answer.status_code < 500:
                return None
            await asyncio.sleep(0.3)
        return None

    async def issue(self, label: str, at: datetime | None = None) -> IssuedAlert:
        record = IssuedAlert(label)
        self.issued.append(record)
        await self.carry_out(record, at)
        return record

    async def carry_out(self, record: IssuedAlert, at: datetime | None = None) -> None:
        """Draft (operator), approve and issue (approver): an Actual flood alert over the whole area."""
        label = record.label
        draft = {
            "template": "flood",
            "languages": ["en"],
            "variables": {"area_name": label, "river": "Lamone", "until_time": "18:00", "info_url": "https://x.test"},
            "area": {"areaDesc": label, "geometry": {"type": "Polygon", "coordinates": area_polygon()}},
        }
        created = await self.call("POST", "/api/v1/alerts/from-template", "operator", draft, record.statuses)
        if created is None:
            return
        record.alert_id = str(created["id"])
        if await self._advance(record, "approve", None, ("approved", "scheduled", "issued")):
            body = {"at": at.isoformat()} if at is not None else {}
            record.scheduled_for = at
            record.issuing.set()
            record.acknowledged = await self._advance(record, "issue", body, ("scheduled", "issued"))

    async def _advance(self, record: IssuedAlert, step: str, body: Any, done: tuple[str, ...]) -> bool:
        path = f"/api/v1/alerts/{record.alert_id}"
        if await self.call("POST", f"{path}/{step}", "approver", body, record.statuses) is not None:
            return True
        # A retried step may have gone through before its answer was lost: the alert's state says.
        state = await self.call("GET", path, "approver", None, record.statuses)
        return state is not None and state.get("state") in done

    async def counts(self, alert_id: str) -> dict[str, int] | None:
        answer = await self.call("GET", f"/api/v1/alerts/{alert_id}/counts", "operator")
        return {k: int(v) for k, v in answer.items() if k != "alert_id"} if answer is not None else None


async def probe_http(base_url: str, stop: asyncio.Event, seen: Counter[str], every: float = 0.5) -> None:
    """While the database is down: what do a database route and the health check answer?"""
    west, south, east, north = AREA
    paths = ("/healthz", f"/api/v1/alerts?active=true&lat={(south + north) / 2}&lon={(west + east) / 2}")
    async with httpx.AsyncClient(base_url=base_url, timeout=3.0) as http:
        while not stop.is_set():
            for path in paths:
                name = path.split("?")[0]
                try:
                    answer = await http.get(path)
                    kind = answer.headers.get("content-type", "-").split(";")[0]
                    seen[f"{name} {answer.status_code} {kind}"] += 1
                except httpx.HTTPError as exc:
                    seen[f"{name} {type(exc).__name__}"] += 1
            await _pause(stop, every)


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
