"""Failed sign-ins are limited per account and per address: 429 with Retry-After, the right password refused too,
shared between workers through Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as redis
from asgi_lifespan import LifespanManager

from tests.conftest import PASSWORD, _truncate, make_settings
from tocsin.auth import service as users
from tocsin.auth.schemas import Role, UserCreate
from tocsin.main import create_app


@asynccontextmanager
async def servers(database_url: str, tmp_path: Path, count: int = 1, **overrides: Any) -> AsyncIterator[list[Any]]:
    """`count` apps on one database (and one Redis, when given): several workers."""
    async with AsyncExitStack() as stack:
        clients = []
        for n in range(count):
            app = create_app(make_settings(database_url, tmp_path / str(n), **overrides), migrate_on_start=False)
            await stack.enter_async_context(LifespanManager(app))
            transport = httpx.ASGITransport(app=app)
            clients.append(await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://t")))
        async with app.state.database.sessions() as session:
            await users.create_user(session, data=UserCreate(username="olga", password=PASSWORD, roles=[Role.operator]))
            await session.commit()
        try:
            yield clients
        finally:
            await _truncate(app.state.database)


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": username, "password": password})


class TestLoginLimits:
    async def test_the_right_password_is_refused_while_the_account_is_locked(
        self, database_url: str, tmp_path: Path
    ) -> None:
        async with servers(database_url, tmp_path, login_failures_per_account=3) as (client,):
            wrong = [(await sign_in(client, "olga", "not the password")).status_code for _ in range(3)]
            locked = await sign_in(client, "olga", PASSWORD)
            other = await sign_in(client, "ghost", "whatever it is")
        assert wrong == [401, 401, 401]
        assert locked.status_code == 429
        assert int(locked.headers["Retry-After"]) > 0
        assert locked.json()["error"]["code"] == "too_many_attempts_account"
        assert locked.json()["error"]["field"] == "username"
        assert other.status_code == 401  # another account from the same address is not locked

    async def test_an_address_is_limited_across_accounts(self, database_url: str, tmp_path: Path) -> None:
        async with servers(database_url, tmp_path, login_failures_per_address=4) as (client,):
            wrong = [(await sign_in(client, f"guess{n}", "not the password")).status_code for n in range(4)]
            locked = await sign_in(client, "olga", PASSWORD)
        assert wrong == [401] * 4
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "too_many_attempts_address"
        assert "address" in locked.json()["error"]["message"]

    async def test_the_window_ends_the_lockout(self, database_url: str, tmp_path: Path) -> None:
        async with servers(database_url, tmp_path, login_failures_per_account=1, login_window_seconds=1) as (client,):
            assert (await sign_in(client, "olga", "not the password")).status_code == 401
            assert (await sign_in(client, "olga", PASSWORD)).status_code == 429
            async with asyncio.timeout(10):  # the window is one second
                while (answer := await sign_in(client, "olga", PASSWORD)).status_code == 429:
                    assert int(answer.headers["Retry-After"]) <= 1
        assert answer.status_code == 200

    async def test_workers_share_the_count_through_redis(
        self, database_url: str, redis_url: str, tmp_path: Path
    ) -> None:
        store = redis.from_url(redis_url)
        async for key in store.scan_iter("tocsin:login:*"):
            await store.delete(key)
        await store.aclose()
        async with servers(database_url, tmp_path, count=2, redis_url=redis_url, login_failures_per_account=2) as (
            first,
            second,
        ):
            wrong = [(await sign_in(first, "olga", "not the password")).status_code for _ in range(2)]
            locked = await sign_in(second, "olga", PASSWORD)
        assert (wrong, locked.status_code) == ([401, 401], 429)
