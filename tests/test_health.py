"""/readyz (database, Redis, scheduler heartbeat) and /metrics (each named metric appears and moves after the action
that should move it), on both backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from tests.alerts.test_lifecycle import approved_and_issued
from tests.conftest import LiveServer, _truncate, make_settings
from tests.realtime.test_citizen import INSIDE, report
from tests.realtime.wsclient import Citizen
from tests.tcpproxy import TcpProxy
from tests.waiting import wait_until
from tocsin.bus import InProcessBus
from tocsin.db import Database, open_database
from tocsin.main import create_app
from tocsin.models import SchedulerHeartbeat
from tocsin.realtime.counters import DeliveryRecorder
from tocsin.realtime.hub import Client, Device, Hub
from tocsin.scheduler.leader import HEARTBEAT_NAME, leader_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@asynccontextmanager
async def app_client(database_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own settings on the session's database, emptied afterwards like the harness does."""
    app = create_app(make_settings(database_url, tmp_path, **overrides), migrate_on_start=False)
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client
    finally:
        database = open_database(database_url, pool=False)
        try:
            await _truncate(database)
        finally:
            await database.dispose()


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class TestReadiness:
    async def test_ready_only_with_a_fresh_scheduler_heartbeat(
        self, database_url: str, tmp_path: Path, is_postgis: bool
    ) -> None:
        async with app_client(database_url, tmp_path, scheduler_heartbeat_max_age_seconds=1.5) as client:
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert response.headers["retry-after"]
            checks = response.json()["checks"]
            assert checks["database"]["ok"] is True
            assert checks["scheduler"]["ok"] is False
            if not is_postgis:
                return  # embedded: the scheduler runs in-process (next test)
            database = open_database(database_url)
            leader = leader_for(database, InProcessBus(), 0.5)
            stop = asyncio.Event()
            task = asyncio.create_task(leader.run(stop))
            try:
                ready = await wait_until(lambda: ready_or_none(client), what="ready", seconds=30)
                assert ready.json()["checks"]["scheduler"]["ok"] is True
                first = await beat_at(database)
                await wait_until(lambda: later_beat(database, first), what="the heartbeat to advance", seconds=30)
                assert ("tocsin_scheduler_heartbeat_age_seconds", frozenset()) in await scrape(client)
            finally:
                stop.set()
                await task
                await database.dispose()
            stale = await wait_until(lambda: not_ready_or_none(client), what="the heartbeat to go stale", seconds=30)
            assert "heartbeat" in stale.json()["checks"]["scheduler"]["detail"]

    async def test_embedded_is_ready_with_its_in_process_scheduler(
        self, database_url: str, tmp_path: Path, is_postgis: bool
    ) -> None:
        if is_postgis:
            pytest.skip("production runs `tocsin scheduler`; the heartbeat test covers it")
        async with app_client(database_url, tmp_path, run_scheduler=True) as client:
            response = await wait_until(lambda: ready_or_none(client), what="ready", seconds=30)
            assert response.json()["checks"]["scheduler"]["detail"] == "runs in this process"

    async def test_redis_is_checked_when_configured(self, database_url: str, tmp_path: Path, redis_url: str) -> None:
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        with TcpProxy(redis_port) as proxy:
            proxy.start()
            url = f"redis://127.0.0.1:{proxy.port}/0"
            async with app_client(database_url, tmp_path, redis_url=url, run_scheduler=True) as client:
                reconnects = REGISTRY.get_sample_value("tocsin_bus_reconnects_total") or 0.0
                first = await client.get("/readyz")
                assert first.json()["checks"]["redis"] == {"ok": True, "detail": "answers"}
                proxy.stop()
                down = await wait_until(lambda: redis_down(client), what="redis to be reported down", seconds=30)
                assert down.status_code == 503
                await wait_until(
                    lambda: (REGISTRY.get_sample_value("tocsin_bus_reconnects_total") or 0.0) > reconnects,
                    what="a bus reconnect to be counted",
                    seconds=30,
                )
                proxy.start()
                await wait_until(lambda: redis_up(client), what="redis to be reported up again", seconds=30)


async def beat_at(database: Database) -> datetime:
    async with database.sessions() as session:
        beat = (
            await session.execute(select(SchedulerHeartbeat.beat_at).where(SchedulerHeartbeat.name == HEARTBEAT_NAME))
        ).scalar_one()
    return beat


async def later_beat(database: Database, first: datetime) -> bool:
    return await beat_at(database) > first


async def ready_or_none(client: httpx.AsyncClient) -> httpx.Response | None:
    response = await client.get("/readyz")
    return response if response.status_code == 200 else None


async def not_ready_or_none(client: httpx.AsyncClient) -> httpx.Response | None:
    response = await client.get("/readyz")
    return response if response.status_code == 503 else None


async def redis_down(client: httpx.AsyncClient) -> httpx.Response | None:
    response = await client.get("/readyz")
    return response if not response.json()["checks"]["redis"]["ok"] else None


async def redis_up(client: httpx.AsyncClient) -> bool:
    response = await client.get("/readyz")
    return bool(response.json()["checks"]["redis"]["ok"])


class TestMetrics:
    async def test_each_metric_moves_after_its_action(self, live: LiveServer) -> None:
        before = await scrape(live.client)
        device = f"dev-{uuid.uuid4().hex[:12]}"
        citizen, messages = await Citizen.connect(live.ws_url, device_id=device, location=INSIDE)
        connected = await scrape(live.client)
        assert value(connected, "tocsin_connections", kind="citizen") == 1
        assert ("tocsin_connections", frozenset({("kind", "operator")})) in connected
        last_seq = messages[0]["seq"]
        alert = await approved_and_issued(live)
        assert (await citizen.receive_type("alert"))["alert_id"] == alert["id"]
        await citizen.send(report())
        await citizen.receive_type("ack")
        await citizen.close()
        again, _ = await Citizen.connect(live.ws_url, device_id=device, location=INSIDE, last_seq=last_seq)
        await again.close()
        missing_id = uuid.uuid4()
        missing = await live.client.get(f"/api/v1/alerts/{missing_id}")
        assert missing.status_code in (401, 404)
        after = await scrape(live.client)
        for name in (
            "tocsin_fanout_seconds_count",
            "tocsin_replay_seconds_count",
            "tocsin_deliveries_total",
            "tocsin_reports_ingested_total",
            "tocsin_report_ingest_seconds_count",
            "tocsin_report_ack_seconds_count",
        ):
            assert value(after, name) > value(before, name), name
        route = {"method": "GET", "route": "/api/v1/alerts/{alert_id}", "status": str(missing.status_code)}
        assert (
            value(after, "tocsin_http_requests_total", **route)
            == value(before, "tocsin_http_requests_total", **route) + 1
        )
        assert value(after, "tocsin_http_request_seconds_count", method="GET", route=route["route"]) >= 1
        routes = {dict(labels).get("route", "") for _name, labels in after}
        assert not any(str(missing_id) in route or alert["id"] in route for route in routes)  # never a raw path
        for name in ("tocsin_bus_reconnects_total", "tocsin_queue_drops_total", "tocsin_scheduler_lag_seconds"):
            assert (name, frozenset()) in after, name

    def test_a_full_queue_counts_a_drop(self) -> None:
        closed: list[int] = []
        hub = Hub(DeliveryRecorder(open_database("sqlite+aiosqlite:///:memory:")))
        client = Client(Device("drop-test"), closed.append, queue_size=1)
        hub.add(client)
        drops = REGISTRY.get_sample_value("tocsin_queue_drops_total") or 0.0
        assert client.offer((), "first")
        assert not client.offer((), "second")
        assert closed == [1013]
        assert REGISTRY.get_sample_value("tocsin_queue_drops_total") == drops + 1

    async def test_the_scheduler_lag_is_observed(self, database_url: str, tmp_path: Path, is_postgis: bool) -> None:
        if is_postgis:
            pytest.skip("the heartbeat test reads the production scheduler's figures")
        lag = REGISTRY.get_sample_value("tocsin_scheduler_lag_seconds")
        async with app_client(database_url, tmp_path, run_scheduler=True, scheduler_interval_seconds=0.2):
            await wait_until(
                lambda: REGISTRY.get_sample_value("tocsin_scheduler_lag_seconds") != lag,
                what="a lag figure",
                seconds=30,
            )

    async def test_invented_methods_and_unknown_paths_share_one_series(self, live: LiveServer) -> None:
        for method in ("BREW", "PROPFIND", "X-ANYTHING"):
            await live.client.request(method, f"/nowhere/{uuid.uuid4()}")
        samples = await scrape(live.client)
        methods = {dict(labels).get("method") for name, labels in samples if name == "tocsin_http_requests_total"}
        routes = {dict(labels).get("route") for name, labels in samples if name == "tocsin_http_requests_total"}
        assert "other" in methods
        assert not methods & {"BREW", "PROPFIND", "X-ANYTHING"}
        assert not any(route and route.startswith("/nowhere") for route in routes)

    async def test_metrics_can_be_restricted_to_networks(self, database_url: str, tmp_path: Path) -> None:
        async with app_client(database_url, tmp_path, metrics_allowed_networks="10.0.0.0/8") as client:
            refused = await client.get("/metrics")
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "forbidden"
        async with app_client(database_url, tmp_path, metrics_allowed_networks="10.0.0.0/8, 127.0.0.0/8") as client:
            assert (await client.get("/metrics")).status_code == 200
