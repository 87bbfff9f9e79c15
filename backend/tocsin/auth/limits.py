"""Sign-in attempts counted per account and per client address, in fixed windows.

Each attempt is counted before its password is checked, in one atomic step that answers the new count: an attempt
whose count passes the limit is refused (429, `Retry-After`) without checking the password and uncounted again, the
right password included. So however many guesses arrive at once, at most `limit` wrong passwords are ever evaluated
per account and per address in a window, and the lockout is bounded by the window. A successful sign-in clears the
account's count and uncounts itself from the address. Production keeps the counts in Redis, so every worker shares
them; embedded mode (one process) keeps them in memory, and so does a worker while Redis is unreachable.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError

from tocsin.resilience import ThrottledLog

log = logging.getLogger(__name__)

MAX_KEYS = 100_000  # in memory; beyond this, expired windows are dropped, then the oldest tenth (see _make_room)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lockout:
    cause: str  # "account" | "address"
    retry_after: int  # seconds


class MemoryAttempts:
    """Counts in this process. Each method runs without awaiting, so it is atomic on the event loop."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self.windows: dict[str, tuple[int, float]] = {}  # key -> (attempts, window ends at, monotonic); oldest first

    async def count(self, keys: Sequence[str], window_seconds: int) -> list[tuple[int, int]]:
        """Count one attempt on each key; answer each key's new count and the seconds left in its window."""
        now = time.monotonic()
        counted = []
        for key in keys:
            attempts, ends = self.windows.get(key, (0, 0.0))
            if ends <= now:  # a new window goes to the end of the dict, so the dict stays oldest first
                self.windows.pop(key, None)
                if len(self.windows) >= self.max_keys:
                    self._make_room(now)
                attempts, ends = 0, now + window_seconds
            self.windows[key] = (attempts + 1, ends)
            counted.append((attempts + 1, max(math.ceil(ends - now), 1)))
        return counted

    def _make_room(self, now: float) -> None:
        """Drop expired windows, then the oldest tenth: a spray of new addresses rebuilds the dict once per tenth of
        the cap, not on every attempt."""
        keep = {key: window for key, window in self.windows.items() if window[1] > now}
        excess = len(keep) - (self.max_keys - max(1, self.max_keys // 10))
        if excess > 0:
            keep = dict(list(keep.items())[excess:])
        self.windows = keep

    async def uncount(self, keys: Sequence[str]) -> None:
        """Take back one attempt from each key whose window is still open."""
        now = time.monotonic()
        for key in keys:
            attempts, ends = self.windows.get(key, (0, 0.0))
            if ends > now and attempts > 0:
                self.windows[key] = (attempts - 1, ends)

    async def clear(self, key: str) -> None:
        self.windows.pop(key, None)


# INCR and, on a key's first attempt, its expiry, in one step; answers {count, ttl} for each key.
_COUNT = """
local answers = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[1]) end
  answers[i] = {count, redis.call('TTL', key)}
end
return answers
"""
# DECR only keys that still exist: an expired window must not come back without an expiry.
_UNCOUNT = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('DECR', key) end
end
return 0
"""


class RedisAttempts:
    def __init__(self, url: str) -> None:
        self.client: redis.Redis = redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        self._count = self.client.register_script(_COUNT)
        self._uncount = self.client.register_script(_UNCOUNT)

    async def count(self, keys: Sequence[str], window_seconds: int) -> list[tuple[int, int]]:
        answers = await self._count(keys=list(keys), args=[window_seconds])
        return [(int(count), max(int(ttl), 1)) for count, ttl in answers]

    async def uncount(self, keys: Sequence[str]) -> None:
        await self._uncount(keys=list(keys))

    async def clear(self, key: str) -> None:
        await self.client.delete(key)


class LoginLimiter:
    def __init__(
        self,
        redis_url: str | None,
        *,
        per_account: int,
        per_address: int,
        window_seconds: int,
        max_keys_in_memory: int = MAX_KEYS,
    ) -> None:
        self.shared = RedisAttempts(redis_url) if redis_url else None
        self.local = MemoryAttempts(max_keys_in_memory)
        self.per_account = per_account
        self.per_address = per_address
        self.window_seconds = window_seconds
        self.redis_trouble = ThrottledLog(log, level=logging.WARNING)

    @staticmethod
    def _account_key(username: str) -> str:
        return f"tocsin:login:account:{username.lower()}"

    @staticmethod
    def _address_key(address: str) -> str:
        return f"tocsin:login:address:{address}"

    async def _store_call(
        self, call: Callable[[RedisAttempts | MemoryAttempts], Awaitable[T]], *, recover: bool = False
    ) -> T:
        if self.shared is not None:
            try:
                answer = await call(self.shared)
            except (RedisError, OSError) as exc:
                self.redis_trouble.failure(
                    "redis", "login limits: redis unavailable (%s); counting in this process", exc
                )
            else:
                if recover:
                    self.redis_trouble.recovered("redis", "login limits: redis reachable again")
                return answer
        return await call(self.local)

    async def attempt(self, username: str, address: str) -> Lockout | None:
        """Count a sign-in attempt; the lockout that refuses it (and leaves it uncounted), if any."""
        keys = [self._account_key(username), self._address_key(address)]
        counted = await self._store_call(lambda store: store.count(keys, self.window_seconds), recover=True)
        for cause, limit, (count, retry_after) in zip(
            ("account", "address"), (self.per_account, self.per_address), counted, strict=True
        ):
            if count > limit:
                await self._store_call(lambda store: store.uncount(keys))
                return Lockout(cause, retry_after)
        return None

    async def succeeded(self, username: str, address: str) -> None:
        """The attempt had the right password: the account starts afresh, and the address does not count it."""
        await self._store_call(lambda store: store.clear(self._account_key(username)))
        await self._store_call(lambda store: store.uncount([self._address_key(address)]))

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.client.aclose()
