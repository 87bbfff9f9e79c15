"""Living through outages of PostgreSQL and Redis: capped exponential backoff, waiting for a service at start, and a
log that says each kind of failure once per interval instead of once per report per retry."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from asyncpg import exceptions as asyncpg_errors
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

if TYPE_CHECKING:
    from tocsin.db import Database

log = logging.getLogger(__name__)

LOG_INTERVAL_SECONDS = 60.0


@dataclass
class Backoff:
    """Delays of initial, 2x, 4x ... up to `cap` seconds, with up to 10 % jitter so restarted workers spread out."""

    initial: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * 2.0**self.attempt)
        self.attempt += 1
        return float(delay * (1 + random.random() / 10))  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class ThrottledLog:
    """Logs the first failure of each kind in an interval (with its traceback); the others of that interval are
    counted and summed up in the next line of that kind."""

    logger: logging.Logger
    interval_seconds: float = LOG_INTERVAL_SECONDS
    level: int = logging.ERROR
    _last: dict[str, float] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def failure(self, kind: str, message: str, *args: object, exc_info: bool = False, level: int | None = None) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval_seconds:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (and %d more like this in the last %.0fs)"
            args = (*args, suppressed, self.interval_seconds)
        self.logger.log(self.level if level is None else level, message, *args, exc_info=exc_info)

    def recovered(self, kind: str, message: str, *args: object) -> None:
        """Say once that a failing kind works again (and forget it, so the next failure is logged at once)."""
        if kind in self._last:
            del self._last[kind]
            suppressed = self._suppressed.pop(kind, 0)
            self.logger.warning(message + " (after %d more failures)", *args, suppressed)


async def wait_until_available(
    what: str, probe: Callable[[], Awaitable[object]], *, backoff: Backoff | None = None, attempt_timeout: float = 5.0
) -> None:
    """Call `probe` until it succeeds, logging each failed attempt and the wait before the next one."""
    backoff = backoff or Backoff()
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout(attempt_timeout):
                await probe()
        except Exception as exc:  # any failure to reach it: refused, reset, DNS, timeout, not ready yet
            delay = backoff.next_delay()
            log.warning("%s unavailable (attempt %d: %s); retrying in %.1fs", what, attempt, describe(exc), delay)
            await asyncio.sleep(delay)
            continue
        if attempt > 1:
            log.warning("%s available after %d attempts", what, attempt)
        return


async def probe_database(database: Database) -> None:
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def probe_redis(url: str) -> None:
    import redis.asyncio as redis

    client: redis.Redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


def describe(exc: BaseException) -> str:
    text_ = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text_}" if text_ else type(exc).__name__


# What reaching the database raises when it is down: SQLAlchemy's wrappers (a lost or refused connection, a pool that
# cannot hand one out), and asyncpg's connection errors and the OSErrors of its connect (refused, reset, timed out,
# name not resolved), which reach us unwrapped. An OSError or TimeoutError from anywhere else is a bug: a logged 500.
DRIVER_PACKAGES = frozenset({"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3"})
UNREACHABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    asyncpg_errors.PostgresConnectionError,
    asyncpg_errors.OperatorInterventionError,  # starting up, shutting down, terminated by an administrator
)


def _raised_by_driver(exc: BaseException) -> bool:
    """Whether `exc` (or the exception it came from) passed through SQLAlchemy's or a driver's code."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frame = current.__traceback__
        while frame is not None:
            if str(frame.tb_frame.f_globals.get("__name__", "")).split(".")[0] in DRIVER_PACKAGES:
                return True
            frame = frame.tb_next
        current = current.__cause__ or current.__context__
    return False


def _causes(exc: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def database_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, UNREACHABLE):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        # SQLAlchemy wraps what asyncpg raised while connecting ("the database system is starting up") in a plain
        # DBAPIError: look at what it came from.
        return exc.connection_invalidated or any(
            isinstance(cause, UNREACHABLE) or (isinstance(cause, OSError) and _raised_by_driver(cause))
            for cause in _causes(exc.orig)
        )
    return isinstance(exc, OSError) and _raised_by_driver(exc)  # TimeoutError, ConnectionError are OSErrors
