"""Failed sign-ins are limited per account and per address: 429 with Retry-After, the right password refused too,
shared between workers through Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from asgi_lifespan import LifespanManager

from tests.conftest import PASSWORD, _truncate, make_settings
from tests.waiting import wait_until
from tocsin.auth import service as users
from tocsin.auth.limits import LoginLimiter, MemoryAttempts
from tocsin.auth.schemas import Role, UserCreate
from tocsin.main import create_app
from tocsin.testing import free_port


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


async def forget_login_counts(redis_url: str) -> None:
    store = redis.from_url(redis_url)
    async for key in store.scan_iter("tocsin:login:*"):
        await store.delete(key)
    await store.aclose()


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
            locked = await sign_in(client, "olga", PASSWORD)

            async def signed_in() -> httpx.Response | None:
                answer = await sign_in(client, "olga", PASSWORD)
                assert answer.status_code in (200, 429)
                return answer if answer.status_code == 200 else None

            await wait_until(signed_in, what="the one-second window to end", every=0.2)
        assert locked.status_code == 429
        assert int(locked.headers["Retry-After"]) <= 1

    async def test_workers_share_the_count_through_redis(
        self, database_url: str, redis_url: str, tmp_path: Path
    ) -> None:
        await forget_login_counts(redis_url)
        async with servers(database_url, tmp_path, count=2, redis_url=redis_url, login_failures_per_account=2) as (
            first,
            second,
        ):
            wrong = [(await sign_in(first, "olga", "not the password")).status_code for _ in range(2)]
            locked = await sign_in(second, "olga", PASSWORD)
        assert (wrong, locked.status_code) == ([401, 401], 429)

    @pytest.mark.parametrize("store", ["memory", "redis"])
    @pytest.mark.parametrize("cause", ["account", "address"])
    async def test_guesses_sent_at_once_are_evaluated_at_most_limit_times(
        self, database_url: str, tmp_path: Path, request: pytest.FixtureRequest, store: str, cause: str
    ) -> None:
        overrides: dict[str, Any] = {"login_failures_per_account": 1_000, "login_failures_per_address": 100_000}
        overrides[f"login_failures_per_{cause}"] = 10
        if store == "redis":
            overrides["redis_url"] = request.getfixturevalue("redis_url")
            await forget_login_counts(overrides["redis_url"])
        names = ["olga"] * 40 if cause == "account" else [f"guess{n}" for n in range(40)]
        async with servers(database_url, tmp_path, **overrides) as (client,):
            answers = await asyncio.gather(*(sign_in(client, name, "not the password") for name in names))
            locked = await sign_in(client, "olga", PASSWORD)
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [401] * 10 + [429] * 30
        assert {answer.json()["error"]["code"] for answer in answers if answer.status_code == 429} == {
            f"too_many_attempts_{cause}"
        }
        assert all(int(answer.headers["Retry-After"]) > 0 for answer in answers if answer.status_code == 429)
        assert locked.status_code == 429

    async def test_the_right_password_does_not_count_against_the_address(
        self, database_url: str, tmp_path: Path
    ) -> None:
        async with servers(database_url, tmp_path, login_failures_per_address=2) as (client,):
            answers = [(await sign_in(client, "olga", PASSWORD)).status_code for _ in range(5)]
            wrong = [(await sign_in(client, "ghost", "not the password")).status_code for _ in range(3)]
        assert answers == [200] * 5
        assert wrong == [401, 401, 429]


class TestMemoryStore:
    async def test_a_full_store_makes_room_for_a_tenth_at_once(self) -> None:
        attempts = MemoryAttempts(max_keys=100)
        await attempts.count([f"address:{n}" for n in range(100)], window_seconds=900)
        await attempts.count(["address:new"], window_seconds=900)
        assert len(attempts.windows) == 91  # the ten oldest went, so the next nine new keys need no rebuild
        assert "address:0" not in attempts.windows
        assert "address:10" in attempts.windows
        room_made = attempts.windows
        await attempts.count([f"address:more{n}" for n in range(9)], window_seconds=900)
        assert attempts.windows is room_made
        assert len(attempts.windows) == 100

    async def test_expired_windows_go_before_live_ones(self) -> None:
        attempts = MemoryAttempts(max_keys=10)
        await attempts.count(["live"], window_seconds=900)
        await attempts.count([f"old{n}" for n in range(9)], window_seconds=1)
        old_windows_end = attempts.windows["old8"][1]
        await wait_until(lambda: time.monotonic() > old_windows_end, what="the one-second windows to end", seconds=5)
        await attempts.count(["new"], window_seconds=900)
        assert set(attempts.windows) == {"live", "new"}


class TestRedisDown:
    async def test_an_unreachable_redis_is_reported_once_and_counting_goes_on_here(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        limits = LoginLimiter(f"redis://127.0.0.1:{free_port()}/0", per_account=3, per_address=100, window_seconds=900)
        try:
            with caplog.at_level(logging.WARNING, logger="tocsin.auth.limits"):
                lockouts = [await limits.attempt("olga", "192.0.2.1") for _ in range(6)]
        finally:
            await limits.close()
        assert lockouts[:3] == [None] * 3
        assert [lockout and lockout.cause for lockout in lockouts[3:]] == ["account"] * 3
        warnings = [record for record in caplog.records if record.name == "tocsin.auth.limits"]
        assert len(warnings) == 1
        assert "redis unavailable" in warnings[0].getMessage()
