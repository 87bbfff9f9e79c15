"""Both backends for every test that touches storage.

- sqlite: always (a file per test session, migrated with Alembic).
- postgis: when TOCSIN_TEST_POSTGIS_URL names a PostgreSQL database (e.g.
  postgresql+asyncpg://postgres@127.0.0.1:5432/tocsin_test). Its schema is dropped and migrated afresh per session.
  Without it these tests skip and say so; with CI=true a missing database fails the run instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from tests.alerts.samples import corpus_dir
from tests.waiting import wait_until
from tocsin import (
    backend,
    migrate,
    models,  # noqa: F401  (every table on Base.metadata)
)
from tocsin.auth import service as users
from tocsin.auth.schemas import Role, UserCreate
from tocsin.config import Settings
from tocsin.db import Base, Database, open_database
from tocsin.main import create_app
from tocsin.testing import free_port

REPO = Path(__file__).resolve().parents[1]
POSTGIS_URL = os.environ.get("TOCSIN_TEST_POSTGIS_URL")
REDIS_URL = os.environ.get("TOCSIN_TEST_REDIS_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct horse battery"


def _need(url: str | None, what: str, variable: str) -> str:
    if url:
        return url
    message = f"{what} tests need {variable}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: refusing to skip)")
    pytest.skip(f"{message}; set it to run them")


async def _fresh_postgis_schema(url: str) -> None:
    database = open_database(url, pool=False)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await migrate.upgrade(database)
    finally:
        await database.dispose()


async def _migrate(url: str) -> None:
    database = open_database(url, pool=False)
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgis"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'tocsin.db'}"
        asyncio.run(_migrate(url))
        return url
    url = _need(POSTGIS_URL, "PostGIS", "TOCSIN_TEST_POSTGIS_URL")
    asyncio.run(_fresh_postgis_schema(url))
    return url


@pytest.fixture
def is_postgis(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def redis_url() -> str:
    return _need(REDIS_URL, "Redis", "TOCSIN_TEST_REDIS_URL")


async def _truncate(database: Database) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]  # children before parents
    async with database.engine.begin() as connection:
        if database.dialect_name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            install, remove = backend.audit_append_only_ddl(database.dialect_name)
            for statement in remove:  # the append-only triggers, put back below: only a test wipes the audit log
                await connection.execute(text(statement))
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))
            for statement in install:
                await connection.execute(text(statement))


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "run_scheduler": False,
        "secret_key": "test-secret-key-that-is-long-enough-for-hs256",
        "cap_sender": "test@tocsin.example",
        "public_url": "http://testserver",
        "alerts_dir": REPO / "alerts",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Harness:
    """A running app on one backend, an HTTP client, and helpers to make accounts."""

    app: FastAPI
    client: httpx.AsyncClient
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def database(self) -> Database:
        database: Database = self.app.state.database
        return database

    async def user(self, name: str, *roles: Role) -> dict[str, str]:
        """Create the account (once) and return Authorization headers for it."""
        if name not in self.tokens:
            async with self.database.sessions() as session:
                await users.create_user(
                    session,
                    data=UserCreate(username=name, password=PASSWORD, roles=list(roles) or [Role.operator]),
                )
                await session.commit()
            response = await self.client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
            assert response.status_code == 200, response.text
            self.tokens[name] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return self.tokens[name]


@pytest.fixture
async def harness(database_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    app = create_app(make_settings(database_url, tmp_path), migrate_on_start=False)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            try:
                yield Harness(app=app, client=client)
            finally:
                await _truncate(app.state.database)


@pytest.fixture
def cap_samples() -> Path:
    """The real-world CAP corpus beside the checkout (skips without it; fails under CI)."""
    return corpus_dir()


@dataclass
class LiveServer(Harness):
    """A real uvicorn server on a loopback port (real WebSockets), with an HTTP client pointed at it."""

    ws_url: str = ""


@pytest.fixture
async def live(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[LiveServer]:
    import uvicorn

    overrides = getattr(request, "param", {})
    port = free_port()
    overrides = {"exercise_citizen_url": f"ws://127.0.0.1:{port}/ws/citizen", **overrides}
    app = create_app(
        make_settings(database_url, tmp_path, realtime_poll_seconds=0.2, **overrides), migrate_on_start=False
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws_per_message_deflate=False, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), what="the server to start", seconds=30)
    assert not task.done(), "the server did not start"
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as client:
        try:
            yield LiveServer(app=app, client=client, ws_url=f"ws://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            await task
            database = open_database(database_url, pool=False)  # the app's own engine is disposed by now
            try:
                await _truncate(database)
            finally:
                await database.dispose()
