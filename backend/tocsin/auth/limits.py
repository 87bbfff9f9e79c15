"""Failed sign-ins counted per account and per client address, in fixed windows.

Once a key has `limit` failures in its window, every sign-in for it is refused (429, `Retry-After`) until the window
ends, the right password included: guessing stops, and the lockout is bounded by the window. A successful sign-in
clears the account's count. Production keeps the counts in Redis, so every worker shares them; embedded mode (one
process) keeps them in memory, and so does a worker while Redis is unreachable.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MAX_KEYS = 100_000  # in memory: beyond this, expired windows are dropped first, then the oldest


@dataclass(frozen=True, slots=True)
class Lockout:
    cause: str  # "account" | "address"
    retry_after: int  # seconds


class MemoryAttempts:
    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, float]] = {}  # key -> (failures, window ends at, monotonic)

    async def failures(self, key: str) -> tuple[int, int]:
        count, ends = self.windows.get(key, (0, 0.0))
        left = ends - time.monotonic()
        return (count, math.ceil(left)) if left > 0 else (0, 0)

    async def fail(self, key: str, window_seconds: int) -> None:
        now = time.monotonic()
        count, ends = self.windows.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window_seconds
            if len(self.windows) >= MAX_KEYS:
                self.windows = {k: v for k, v in self.windows.items() if v[1] > now}
                while len(self.windows) >= MAX_KEYS:
                    del self.windows[next(iter(self.windows))]
        self.windows[key] = (count + 1, ends)

    async def clear(self, key: str) -> None:
        self.windows.pop(key, None)


class RedisAttempts:
    def __init__(self, url: str) -> None:
        self.client: redis.Redis = redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)

    async def failures(self, key: str) -> tuple[int, int]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
        return (int(count), max(int(ttl), 1)) if count is not None and ttl != -2 else (0, 0)

    async def fail(self, key: str, window_seconds: int) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds, nx=True)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self.client.delete(key)


class LoginLimiter:
    def __init__(self, redis_url: str | None, *, per_account: int, per_address: int, window_seconds: int) -> None:
        self.shared = RedisAttempts(redis_url) if redis_url else None
        self.local = MemoryAttempts()
        self.per_account = per_account
        self.per_address = per_address
        self.window_seconds = window_seconds

    def _keys(self, username: str, address: str) -> list[tuple[str, str, int]]:
        return [
            ("account", f"tocsin:login:account:{username.lower()}", self.per_account),
            ("address", f"tocsin:login:address:{address}", self.per_address),
        ]

    async def _store_call(self, name: str, *args: object) -> object:
        if self.shared is not None:
            try:
                return await getattr(self.shared, name)(*args)
            except (RedisError, OSError) as exc:
                log.warning("login limits: redis unavailable (%s); counting in this process", exc)
        return await getattr(self.local, name)(*args)

    async def check(self, username: str, address: str) -> Lockout | None:
        """The lockout in force for this account or address, if any."""
        for cause, key, limit in self._keys(username, address):
            result = await self._store_call("failures", key)
            assert isinstance(result, tuple)
            count, retry_after = result
            if count >= limit:
                return Lockout(cause, retry_after)
        return None

    async def failed(self, username: str, address: str) -> None:
        for _, key, _limit in self._keys(username, address):
            await self._store_call("fail", key, self.window_seconds)

    async def succeeded(self, username: str) -> None:
        await self._store_call("clear", self._keys(username, "")[0][1])

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.client.aclose()
