"""Live per-alert counts for operators: devices in the area, delivered, acknowledged, safe, need help.

Workers add to a local tally (no I/O on the fan-out path) and flush it every half second to a shared store: Redis
hashes in production (so counts add up across workers), a dict in embedded mode. Acknowledgements and check-ins are
also stored per device in the database (alert_responses), which stays the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

FIELDS = ("in_area", "delivered", "acknowledged", "safe", "need_help")


class CounterStore(Protocol):
    async def add(self, deltas: dict[uuid.UUID, dict[str, int]]) -> None: ...
    async def totals(self, alert_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]: ...
    async def close(self) -> None: ...


class MemoryCounterStore:
    def __init__(self) -> None:
        self.values: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))

    async def add(self, deltas: dict[uuid.UUID, dict[str, int]]) -> None:
        for alert_id, fields in deltas.items():
            for name, n in fields.items():
                self.values[alert_id][name] += n

    async def totals(self, alert_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
        return {a: dict(self.values[a]) if a in self.values else dict.fromkeys(FIELDS, 0) for a in alert_ids}

    async def close(self) -> None:
        return None


class RedisCounterStore:
    def __init__(self, url: str) -> None:
        self.client: redis.Redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)

    @staticmethod
    def key(alert_id: uuid.UUID) -> str:
        return f"tocsin:counts:{alert_id}"

    async def add(self, deltas: dict[uuid.UUID, dict[str, int]]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for alert_id, fields in deltas.items():
                for name, n in fields.items():
                    pipe.hincrby(self.key(alert_id), name, n)
                pipe.expire(self.key(alert_id), 30 * 24 * 3600)
            await pipe.execute()

    async def totals(self, alert_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
        async with self.client.pipeline(transaction=False) as pipe:
            for alert_id in alert_ids:
                pipe.hgetall(self.key(alert_id))
            rows = await pipe.execute()
        found: dict[uuid.UUID, dict[str, int]] = {}
        for alert_id, row in zip(alert_ids, rows, strict=True):
            values = {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in row.items()}
            found[alert_id] = {name: values.get(name, 0) for name in FIELDS}
        return found

    async def close(self) -> None:
        await self.client.aclose()


class Counters:
    """This worker's tally, flushed to the store in the background."""

    def __init__(self, store: CounterStore, interval: float = 0.5) -> None:
        self.store = store
        self.interval = interval
        self.pending: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.task: asyncio.Task[None] | None = None

    def add(self, alert_id: uuid.UUID, name: str, n: int = 1) -> None:
        self.pending[alert_id][name] += n

    async def flush(self) -> None:
        if not self.pending:
            return
        deltas = {a: dict(fields) for a, fields in self.pending.items()}
        self.pending.clear()
        try:
            await self.store.add(deltas)
        except (RedisError, OSError) as exc:
            log.warning("could not flush counts (%s); keeping them for the next try", exc)
            for alert_id, fields in deltas.items():
                for name, n in fields.items():
                    self.pending[alert_id][name] += n

    async def totals(self, alert_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
        await self.flush()
        try:
            return await self.store.totals(alert_ids)
        except (RedisError, OSError):
            return {a: dict.fromkeys(FIELDS, 0) for a in alert_ids}

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.flush()
        await self.store.close()


def create_counters(redis_url: str | None) -> Counters:
    return Counters(RedisCounterStore(redis_url) if redis_url else MemoryCounterStore())
