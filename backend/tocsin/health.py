"""Health of one worker: `/healthz` (alive, database answers), `/readyz` (every dependency, one JSON entry per check),
`/metrics` (Prometheus), and the JSON 503 every route answers while the database cannot be reached."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text

from tocsin import backend, metrics
from tocsin.bus import RedisBus
from tocsin.config import Settings
from tocsin.db import Database
from tocsin.errors import error_body, refusals
from tocsin.models import SchedulerHeartbeat
from tocsin.resilience import UNREACHABLE, ThrottledLog, database_unreachable, describe
from tocsin.scheduler.leader import HEARTBEAT_NAME, SchedulerLeader

log = logging.getLogger(__name__)
unavailable_log = ThrottledLog(log)

RETRY_AFTER_SECONDS = 5
CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["health"])


class ReadinessCheck(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: str  # "ready" or "not_ready"
    checks: dict[str, ReadinessCheck]


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """200 once the database answers (a JSON 503 with Retry-After while it does not)."""
    database: Database = request.app.state.database
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    settings: Settings = request.app.state.settings
    return {"status": "ok", "mode": settings.mode.value}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "a dependency is not ready; the body names it, Retry-After says when to ask",
        }
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database answers, Redis answers (when configured), and a scheduler is running (its
    heartbeat is fresh, or it runs in this process). 200 or 503, with `{"status", "checks": {name: {"ok",
    "detail"}}}`."""
    state = request.app.state
    checks = {"database": await _check(_database_ready(state.database))}
    if isinstance(state.bus, RedisBus):
        checks["redis"] = await _check(_redis_ready(state.bus))
    checks["scheduler"] = await _check(_scheduler_ready(state.settings, state.database, state.scheduler_leader))
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    if ready:
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}, **refusals(403)})
async def prometheus_metrics(request: Request) -> Response:
    """This worker's metrics in the Prometheus text format (docs/operations.md). No personal data; restrict it with
    `TOCSIN_METRICS_ALLOWED_NETWORKS`."""
    settings: Settings = request.app.state.settings
    if not _may_read_metrics(settings, request.client.host if request.client else None):
        return JSONResponse(error_body("forbidden", "metrics are not served to this address"), status_code=403)
    await _refresh_scheduler_gauges(request.app.state.database, request.app.state.scheduler_leader)
    payload, content_type = metrics.exposition()
    return Response(payload, media_type=content_type)


def _may_read_metrics(settings: Settings, address: str | None) -> bool:
    networks = settings.metrics_networks
    if not networks:
        return True
    if address is None:
        return False
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in network for network in networks)


async def _check(probe: Any) -> dict[str, Any]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            detail: str = await probe
    except NotReady as exc:
        return {"ok": False, "detail": str(exc)}
    except Exception as exc:  # unreachable, timed out, refused: not ready, and the body says why
        return {"ok": False, "detail": describe(exc)}
    return {"ok": True, "detail": detail}


class NotReady(Exception):
    pass


async def _database_ready(database: Database) -> str:
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return "answers"


async def _redis_ready(bus: RedisBus) -> str:
    await bus.client.ping()
    return "answers"


async def _heartbeat_age(database: Database) -> tuple[float, float] | None:
    """(seconds since the active scheduler's last heartbeat, its reported lag), or None without one."""
    async with database.sessions() as session:
        row = (
            await session.execute(
                select(SchedulerHeartbeat.beat_at, SchedulerHeartbeat.lag_seconds).where(
                    SchedulerHeartbeat.name == HEARTBEAT_NAME
                )
            )
        ).first()
    if row is None:
        return None
    return max(0.0, (datetime.now(UTC) - row.beat_at).total_seconds()), float(row.lag_seconds)


async def _scheduler_ready(settings: Settings, database: Database, leader: SchedulerLeader | None) -> str:
    if leader is not None and leader.active:
        return "runs in this process"
    if backend.single_process(database.engine):
        raise NotReady("no scheduler runs in this process (embedded mode runs it in-process)")
    beat = await _heartbeat_age(database)
    if beat is None:
        raise NotReady("no scheduler has ever written a heartbeat; start `tocsin scheduler`")
    age, _lag = beat
    if age > settings.scheduler_heartbeat_max_age_seconds:
        raise NotReady(f"the scheduler's last heartbeat is {age:.0f}s old; is `tocsin scheduler` running?")
    return f"heartbeat {age:.1f}s ago"


async def _refresh_scheduler_gauges(database: Database, leader: SchedulerLeader | None) -> None:
    if leader is not None and leader.active:
        metrics.SCHEDULER_HEARTBEAT_AGE.set(0)
        return
    if backend.single_process(database.engine):
        return
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            beat = await _heartbeat_age(database)
    except Exception:  # the database is down: keep the last values, /readyz says why
        return
    if beat is not None:
        metrics.SCHEDULER_HEARTBEAT_AGE.set(beat[0])
        metrics.SCHEDULER_LAG.set(beat[1])


# ---- the database is unreachable: JSON 503 ------------------------------------------------------------------------


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    if not database_unreachable(exc):
        raise exc  # a real bug (constraint, syntax, an unrelated timeout): the server error handler logs it
    unavailable_log.failure(type(exc).__name__, "database unavailable (%s); answering 503", describe(exc))
    return JSONResponse(
        error_body("unavailable", "the database cannot be reached; try again shortly"),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_unavailable_handlers(app: FastAPI) -> None:
    for exception in (*UNREACHABLE, sa_exc.DBAPIError, OSError):
        app.add_exception_handler(exception, _database_unavailable)
