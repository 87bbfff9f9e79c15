"""The application: `create_app(settings)`. Engine, bus and scheduler are built in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tocsin import health, metrics, migrate, resilience
from tocsin.alerts import router as alerts_router
from tocsin.alerts.templates import default_templates_dir
from tocsin.audit import router as audit_router
from tocsin.auth import router as auth_router
from tocsin.auth.limits import LoginLimiter
from tocsin.bus import create_bus
from tocsin.config import Mode, Settings
from tocsin.db import open_database
from tocsin.errors import error_body, install_error_handlers
from tocsin.exercises import router as exercises_router
from tocsin.exercises.simulation.runner import ExerciseRunner
from tocsin.glossary import router as glossary_router
from tocsin.glossary import service as glossary
from tocsin.kernel.work import unit_of_work
from tocsin.openapi import install_openapi
from tocsin.realtime import citizen, operator
from tocsin.realtime import router as realtime_router
from tocsin.realtime.listener import CitizenListener
from tocsin.realtime.runtime import Realtime
from tocsin.reports import router as reports_router
from tocsin.scheduler.leader import leader_for
from tocsin.web.serve import install_web

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodySizeLimit:
    """Refuse request bodies over the limit with 413, whether or not they announce their length."""

    def __init__(self, app: ASGIApp, *, default_limit: int, cap_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit
        self.cap_limit = cap_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.cap_limit if scope["path"].endswith("/alerts/cap") else self.default_limit
        if scope["path"] == glossary_router.IMPORT_PATH:
            limit = max(limit, glossary_router.IMPORT_MAX_BYTES)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = JSONResponse(
            error_body("too_large", f"the request body is larger than {limit} bytes", "body"), status_code=413
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: Settings, *, migrate_on_start: bool | None = None) -> FastAPI:
    """Embedded mode migrates the SQLite file on start; production runs `tocsin db upgrade` once, before workers."""
    should_migrate = settings.mode is Mode.embedded if migrate_on_start is None else migrate_on_start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.signing_key  # noqa: B018 - fail at start, not at first login, if no key can be had
        database = open_database(settings.effective_database_url, sqlite_busy_seconds=settings.sqlite_busy_seconds)
        # A worker started while PostgreSQL or Redis is down waits for them (and says so) instead of exiting.
        await resilience.wait_until_available("database", lambda: resilience.probe_database(database))
        if settings.redis_url:
            redis_url = settings.redis_url
            await resilience.wait_until_available("redis", lambda: resilience.probe_redis(redis_url))
        bus = create_bus(settings.redis_url)
        if should_migrate:
            await migrate.upgrade(database)
            with contextlib.suppress(glossary.GlossaryNotLoaded):  # logged; Tocsin starts with an empty glossary
                async with unit_of_work(database, bus) as work:
                    await glossary.load_files_if_empty(work.session, settings.glossary_dir)
        realtime = Realtime(settings, database, bus)
        realtime.subscribe()
        templates_dir = settings.alerts_dir or default_templates_dir()
        # Subscribed before the bus starts; runs exercises only while this process leads the scheduler below.
        exercises = (
            ExerciseRunner(database, bus, settings, templates_dir, realtime) if settings.scheduler_in_process else None
        )
        await bus.start()
        await realtime.start()
        metrics.CONNECTIONS.labels("citizen").set_function(lambda: realtime.hub.connected)
        metrics.CONNECTIONS.labels("operator").set_function(lambda: len(realtime.operators.consoles))
        app.state.realtime = realtime
        listener = CitizenListener(realtime) if settings.citizen_port else None
        if listener is not None and settings.citizen_port:
            await listener.start(settings.citizen_host, settings.citizen_port)
        app.state.settings = settings
        app.state.database = database
        app.state.bus = bus
        app.state.login_limits = LoginLimiter(
            settings.redis_url,
            per_account=settings.login_failures_per_account,
            per_address=settings.login_failures_per_address,
            window_seconds=settings.login_window_seconds,
        )
        app.state.templates_dir = templates_dir
        # The same lock as `tocsin scheduler`: a second process with TOCSIN_RUN_SCHEDULER=true waits as a standby.
        leader = None
        stop_leading = asyncio.Event()
        leading: asyncio.Task[None] | None = None
        if settings.scheduler_in_process:
            leader = leader_for(
                database, bus, settings.scheduler_interval_seconds, settings.report_retention_days, exercises
            )
            leading = asyncio.create_task(leader.run(stop_leading))
        app.state.scheduler_leader = leader
        try:
            yield
        finally:
            stop_leading.set()
            if leading is not None:
                await leading
            if listener is not None:
                await listener.stop()
            await realtime.stop()
            await bus.stop()
            await app.state.login_limits.close()
            await database.dispose()

    app = FastAPI(
        title="Tocsin",
        version="0.1.0",
        description="Crisis communication between civil-protection authorities and citizens.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(auth_router.router)
    app.include_router(alerts_router.router)
    app.include_router(alerts_router.feeds)
    app.include_router(audit_router.router)
    app.include_router(glossary_router.router)
    app.include_router(alerts_router.lint_routes)
    app.include_router(reports_router.router)
    app.include_router(realtime_router.router)
    app.include_router(exercises_router.router)
    app.include_router(citizen.router)
    app.include_router(operator.router)

    app.include_router(health.router)
    health.install_unavailable_handlers(app)

    install_openapi(app)
    install_web(app, settings)
    app.add_middleware(BodySizeLimit, default_limit=settings.max_body_bytes, cap_limit=settings.max_cap_bytes)
    app.add_middleware(metrics.RouteMetrics)
    return app
