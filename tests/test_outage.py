"""PostgreSQL and Redis outages: processes started while they are down wait for them; requests while the database is
unreachable get a JSON 503 with Retry-After; a sustained outage writes one log line per kind of failure, not one per
report. The outages are real: a loopback TCP proxy to the shared services, started late and stopped on purpose."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.alerts.factories import alert_body
from tests.conftest import PASSWORD, REPO, make_settings
from tests.realtime.test_citizen import INSIDE
from tests.tcpproxy import TcpProxy
from tests.test_health import app_client
from tests.waiting import wait_until, wait_until_sync
from tocsin.auth import service as users
from tocsin.auth.schemas import Role, UserCreate
from tocsin.bus import InProcessBus
from tocsin.db import open_database
from tocsin.main import create_app
from tocsin.reports.schemas import ReportIn
from tocsin.reports.writer import ReportRefused, ReportWriter
from tocsin.testing import free_port, wait_healthy, without_tocsin_settings

SECRET = "outage-test-secret-key-that-is-long-enough"


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}").geturl()


def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=10).status_code
    except httpx.TransportError:
        return None


@pytest.fixture
def postgis_url(database_url: str, is_postgis: bool) -> str:
    if not is_postgis:
        pytest.skip("an unreachable server is a PostgreSQL outage; an embedded SQLite file has no such state")
    return database_url


@pytest.fixture
def proxies(postgis_url: str, redis_url: str) -> Iterator[tuple[TcpProxy, TcpProxy]]:
    database = TcpProxy(urlsplit(postgis_url).port or 5432)
    redis = TcpProxy(urlsplit(redis_url).port or 6379)
    try:
        yield database, redis
    finally:
        database.close()
        redis.close()


class TestStartWhileDown:
    def test_serve_and_scheduler_wait_for_the_database_and_redis_then_run(
        self, postgis_url: str, redis_url: str, proxies: tuple[TcpProxy, TcpProxy], tmp_path: Path
    ) -> None:
        database, redis = proxies
        port = free_port()
        env = without_tocsin_settings(
            TOCSIN_MODE="production",
            TOCSIN_SECRET_KEY=SECRET,
            TOCSIN_DATABASE_URL=through(database, postgis_url),
            TOCSIN_REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
            TOCSIN_DATA_DIR=str(tmp_path),
        )
        logs = {name: tmp_path / f"{name}.log" for name in ("serve", "scheduler")}
        commands = {"serve": ["serve", "--port", str(port)], "scheduler": ["scheduler"]}
        processes = {}
        for name, arguments in commands.items():
            with logs[name].open("w") as log:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "tocsin.cli", *arguments], env=env, stdout=log, stderr=log, cwd=REPO
                )
        base = f"http://127.0.0.1:{port}"

        def logged(name: str, text: str) -> bool:
            assert processes[name].poll() is None, logs[name].read_text()
            return text in logs[name].read_text()

        try:
            for name in processes:
                wait_until_sync(
                    functools.partial(logged, name, "database unavailable (attempt 2"),
                    what=f"{name} to retry",
                    seconds=60,
                )
            database.start()
            for name in processes:
                wait_until_sync(
                    functools.partial(logged, name, "redis unavailable (attempt"),
                    what=f"{name} to wait for redis",
                    seconds=60,
                )
            redis.start()
            wait_healthy(base, processes["serve"], seconds=60, log=logs["serve"])
            wait_until_sync(lambda: status_of(f"{base}/readyz") == 200, what="the scheduler's heartbeat", seconds=60)
            assert "database available after" in logs["serve"].read_text()

            database.stop()
            refused = httpx.get(f"{base}/api/v1/alerts", timeout=30)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "unavailable"
            assert int(refused.headers["retry-after"]) > 0
            health = httpx.get(f"{base}/healthz", timeout=30)
            assert (health.status_code, health.json()["error"]["code"]) == (503, "unavailable")
            ready = httpx.get(f"{base}/readyz", timeout=30)
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"]["ok"] is False

            database.start()
            wait_until_sync(lambda: status_of(f"{base}/api/v1/alerts") == 200, what="the server to recover", seconds=60)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(timeout=30)
        # Each kind of failure logs its traceback once per interval, never once per request or retry.
        assert logs["serve"].read_text().count("Traceback") <= 3


class TestLogThrottling:
    async def test_a_sustained_outage_logs_each_kind_of_failure_once(
        self, postgis_url: str, proxies: tuple[TcpProxy, TcpProxy], caplog: pytest.LogCaptureFixture
    ) -> None:
        proxy = proxies[0].start()
        database = open_database(through(proxy, postgis_url))
        writer = ReportWriter(database, InProcessBus())
        writer.start()

        def report() -> ReportIn:
            return ReportIn(
                id=uuid.uuid4(), category="flooding", text="water", location=INSIDE, observed_at=datetime.now(UTC)
            )

        try:
            await writer.submit("outage-device", report())  # stored: the database answers
            proxy.stop()
            caplog.set_level(logging.WARNING, logger="tocsin.reports.writer")
            refused = 0
            for _round in range(20):  # 20 group commits of 10 reports each, every one of them failing
                results = await asyncio.gather(
                    *(writer.submit(f"outage-device-{i}", report()) for i in range(10)), return_exceptions=True
                )
                refused += sum(isinstance(result, ReportRefused) for result in results)
        finally:
            await writer.stop()
            await database.dispose()
        assert refused == 200
        lines = [r for r in caplog.records if r.name == "tocsin.reports.writer"]
        kinds = {record.getMessage().split(" (")[0] for record in lines}
        assert len(lines) == len(kinds) <= 3, [r.getMessage() for r in lines]


class TestSqliteWriteLocked:
    async def test_a_write_lock_held_by_another_process_gets_a_json_503(
        self, database_url: str, is_postgis: bool, tmp_path: Path
    ) -> None:
        """Embedded mode's real outage: another process (a backup, a long `tocsin glossary load`) holds the SQLite
        write lock longer than the busy timeout."""
        if is_postgis:
            pytest.skip("PostgreSQL: the unreachable-server test above")
        async with app_client(database_url, tmp_path, sqlite_busy_seconds=0.5) as client:
            database = open_database(database_url, pool=False)
            try:
                async with database.sessions() as session:
                    await users.create_user(
                        session, data=UserCreate(username="olga", password=PASSWORD, roles=[Role.operator])
                    )
                    await session.commit()
            finally:
                await database.dispose()
            token = await client.post("/api/v1/auth/token", data={"username": "olga", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            holder = sqlite3.connect(database_url.split("///", 1)[1])
            holder.execute("BEGIN IMMEDIATE")
            try:
                refused = await client.post("/api/v1/alerts", json=alert_body("en"), headers=headers)
            finally:
                holder.rollback()
                holder.close()
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "unavailable"
            assert int(refused.headers["retry-after"]) > 0
            stored = await client.post("/api/v1/alerts", json=alert_body("en"), headers=headers)
            assert stored.status_code == 201, stored.text


class TestUnrelatedErrors:
    async def test_a_timeout_or_connection_error_outside_the_database_is_a_logged_json_500(
        self, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = create_app(make_settings(database_url, tmp_path), migrate_on_start=False)

        @app.get("/test-only/timeout")
        async def times_out() -> None:
            raise TimeoutError("a call to some other service timed out")

        @app.get("/test-only/refused")
        async def refused() -> None:
            raise ConnectionRefusedError("some other service refused")

        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                for path in ("/test-only/timeout", "/test-only/refused"):
                    response = await client.get(path)
                    assert response.status_code == 500, (path, response.text)
                    assert response.json()["error"]["code"] == "internal"
                healthy = await client.get("/healthz")
        assert healthy.status_code == 200  # the database itself was reachable all along
        assert not [r for r in caplog.records if "database unavailable" in r.getMessage()]


class TestWhatCountsAsUnreachable:
    """What asyncpg raises while PostgreSQL starts or stops reaches the routes wrapped in a plain DBAPIError (seen in
    benchmarks/faults.py as 500s during a restart): it is an outage (503), while a real SQL error is not."""

    @staticmethod
    def _wrapped(cause: BaseException) -> Exception:
        from sqlalchemy.exc import DBAPIError

        try:
            try:
                raise cause
            except BaseException as driver_error:
                raise DBAPIError("SELECT 1", None, driver_error) from driver_error
        except DBAPIError as wrapped:
            return wrapped

    def test_a_server_starting_up_or_shutting_down_is_unreachable(self) -> None:
        from asyncpg import exceptions as asyncpg_errors

        from tocsin.resilience import database_unreachable

        for cause in (
            asyncpg_errors.CannotConnectNowError("the database system is starting up"),
            asyncpg_errors.AdminShutdownError("terminating connection due to administrator command"),
        ):
            assert database_unreachable(self._wrapped(cause)), cause

    def test_a_real_sql_error_is_not_an_outage(self) -> None:
        from asyncpg import exceptions as asyncpg_errors

        from tocsin.resilience import database_unreachable

        assert not database_unreachable(self._wrapped(asyncpg_errors.UniqueViolationError("duplicate key")))


class TestCitizensDuringAnOutage:
    async def test_a_hello_gets_unavailable_and_1013_then_joins_when_the_database_is_back(
        self, postgis_url: str, proxies: tuple[TcpProxy, TcpProxy], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        import uvicorn
        import websockets

        from tests.realtime.wsclient import Citizen

        proxy = proxies[0].start()
        app = create_app(make_settings(through(proxy, postgis_url), tmp_path), migrate_on_start=False)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        try:
            await wait_until(lambda: server.started, what="the server started")
            ws_url = f"ws://127.0.0.1:{port}"
            proxy.stop()
            caplog.set_level(logging.WARNING, logger="tocsin.realtime.handshake")
            for attempt in range(5):
                async with websockets.connect(f"{ws_url}/ws/citizen", compression=None) as connection:
                    hello = {"type": "hello", "id": f"h{attempt}", "device_id": f"outage-{attempt}", "location": INSIDE}
                    await connection.send(json.dumps(hello))
                    answer = json.loads(await asyncio.wait_for(connection.recv(), 30))
                    assert answer == {**answer, "type": "error", "code": "unavailable", "id": f"h{attempt}"}
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await asyncio.wait_for(connection.recv(), 10)
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 1013
            said = [r for r in caplog.records if r.name == "tocsin.realtime.handshake"]
            assert len(said) == 1, [r.getMessage() for r in said]  # once, not once per device
            assert not said[0].exc_info  # one line, no traceback
            proxy.start()
            citizen, messages = await Citizen.connect(ws_url, device_id="outage-back", location=INSIDE)
            assert messages[0]["type"] == "welcome"
            await citizen.connection.close()
        finally:
            server.should_exit = True
            await task
