"""Production topology on one machine: two real API worker processes, real Redis, real PostGIS.

An alert issued through worker A reaches a device on worker B; with Redis killed mid-run every device still gets
every alert (the workers catch up from the database), live or on replay; counts and feeds resume with Redis.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.alerts.factories import INSIDE_FAENZA, alert_body
from tests.conftest import IN_CI, PASSWORD, _truncate
from tests.realtime.operators import nothing_more, open_feed, read_events
from tests.realtime.wsclient import Citizen
from tests.waiting import wait_until
from tocsin.auth import service as users
from tocsin.auth.schemas import Role, UserCreate
from tocsin.db import open_database
from tocsin.kernel.channels import ALERTS_CHANNEL
from tocsin.testing import free_port, wait_healthy, without_tocsin_settings

INSIDE = {"lon": INSIDE_FAENZA[0], "lat": INSIDE_FAENZA[1]}
SECRET = "two-worker-test-secret-key-0123456789abcdef"


@dataclass
class Redis:
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout != b"PONG\n":
            assert time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


async def alert_subscribers(port: int) -> bool:
    """True once both workers are subscribed to the alert channel of this Redis."""
    client = aioredis.Redis(port=port)
    try:
        [(_, count)] = await client.pubsub_numsub(ALERTS_CHANNEL)
    finally:
        await client.aclose()
    return int(count) >= 2


@pytest.fixture
def redis_server() -> Iterator[Redis]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is needed for the cross-worker tests")
        pytest.skip("redis-server is not installed")
    redis = Redis(free_port())
    redis.start()
    yield redis
    redis.kill()


@dataclass
class Worker:
    url: str
    ws_url: str
    process: subprocess.Popen[bytes]
    log: Any

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self.log.close()


def start_worker(database_url: str, redis_port: int, data_dir: Path) -> Worker:
    port = free_port()
    env = without_tocsin_settings(
        TOCSIN_MODE="production",
        TOCSIN_DATABASE_URL=database_url,
        TOCSIN_SECRET_KEY=SECRET,
        TOCSIN_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        TOCSIN_DATA_DIR=str(data_dir),
        TOCSIN_RUN_SCHEDULER="false",
        TOCSIN_REALTIME_POLL_SECONDS="1",
    )
    log = (data_dir / f"worker-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tocsin.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, seconds=60, log=data_dir / f"worker-{port}.log")
    return Worker(url, f"ws://127.0.0.1:{port}", process, log)


@pytest.fixture
async def workers(database_url: str, redis_server: Redis, tmp_path: Path) -> AsyncIterator[tuple[Worker, Worker]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several workers is the production topology: PostGIS + Redis")
    database = open_database(database_url, pool=False)
    async with database.sessions() as session:
        for name, role in (("olga", Role.operator), ("anna", Role.approver)):
            await users.create_user(session, data=UserCreate(username=name, password=PASSWORD, roles=[role]))
        await session.commit()
    pair = (
        start_worker(database_url, redis_server.port, tmp_path),
        start_worker(database_url, redis_server.port, tmp_path),
    )
    try:
        yield pair
    finally:
        for worker in pair:
            worker.stop()
        await _truncate(database)
        await database.dispose()


async def issue(worker: Worker, headline: str) -> str:
    async with httpx.AsyncClient(base_url=worker.url) as client:
        tokens = {}
        for name in ("olga", "anna"):
            response = await client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
            assert response.status_code == 200, response.text
            tokens[name] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        body = alert_body()
        body["info"][0]["headline"] = headline
        alert = (await client.post("/api/v1/alerts", json=body, headers=tokens["olga"])).json()
        await client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=tokens["anna"])
        issued = await client.post(f"/api/v1/alerts/{alert['id']}/issue", headers=tokens["anna"])
        assert issued.json()["state"] == "issued"
        return str(alert["id"])


class TestCrossWorker:
    async def test_alert_issued_on_a_reaches_device_on_b(self, workers: tuple[Worker, Worker]) -> None:
        a, b = workers
        on_a, _ = await Citizen.connect(a.ws_url, location=INSIDE)
        on_b, _ = await Citizen.connect(b.ws_url, location=INSIDE)
        alert_id = await issue(a, "one")
        assert (await on_b.receive_type("alert"))["alert_id"] == alert_id
        assert (await on_a.receive_type("alert"))["alert_id"] == alert_id
        await on_a.close()
        await on_b.close()

    async def test_redis_down_mid_run_loses_nothing(self, workers: tuple[Worker, Worker], redis_server: Redis) -> None:
        a, b = workers
        live_b, _ = await Citizen.connect(b.ws_url, location=INSIDE)
        away, first = await Citizen.connect(b.ws_url, device_id="away-device-1", location=INSIDE)
        last_seq = first[0]["seq"]
        await away.close()
        before = await issue(a, "before")
        assert (await live_b.receive_type("alert"))["alert_id"] == before
        redis_server.kill()
        during = [await issue(a, f"during {i}") for i in range(3)]
        got = [(await live_b.receive_type("alert", wait=15))["alert_id"] for _ in during]
        assert got == during  # live, from the database, with the bus down
        redis_server.start()
        await wait_until(lambda: alert_subscribers(redis_server.port), what="both workers to resubscribe", seconds=30)
        after = await issue(a, "after")
        assert (await live_b.receive_type("alert", wait=15))["alert_id"] == after
        back, messages = await Citizen.connect(b.ws_url, device_id="away-device-1", location=INSIDE, last_seq=last_seq)
        replayed = [m["alert_id"] for m in messages if m["type"] == "alert"]
        assert replayed == [before, *during, after]
        await live_b.close()
        await back.close()


async def report_on(worker: Worker, text: str) -> int:
    async with httpx.AsyncClient(base_url=worker.url) as client:
        report = {
            "id": str(uuid.uuid4()),
            "device_id": "device-on-a",
            "category": "flooding",
            "text": text,
            "location": INSIDE,
            "observed_at": datetime.now(UTC).isoformat(),
        }
        answer = await client.post("/api/v1/reports", json=report)
        assert answer.status_code == 201, answer.text
        return int(answer.json()["report_id"])


class TestOperatorFeedAcrossWorkers:
    async def test_reports_posted_while_redis_is_down_reach_an_open_feed_once_each(
        self, workers: tuple[Worker, Worker], redis_server: Redis
    ) -> None:
        a, b = workers
        async with httpx.AsyncClient(base_url=b.url) as client:
            signed_in = await client.post("/api/v1/auth/token", data={"username": "olga", "password": PASSWORD})
        feed, _ = await open_feed(b.ws_url, signed_in.json()["access_token"])
        before = await report_on(a, "before")
        assert [e["report"]["id"] for e in await read_events(feed, 1)] == [before]
        redis_server.kill()
        during = [await report_on(a, f"during {n}") for n in range(3)]
        redis_server.start()
        after = await report_on(a, "after")
        got = await read_events(feed, 4, wait=30)
        rest = await nothing_more(feed)
        await feed.close()
        assert [e["report"]["id"] for e in got] == [*during, after]
        assert rest == []
