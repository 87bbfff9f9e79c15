"""The event bus between workers: in-process in embedded mode, Redis pub/sub in production.

Events are published only after the transaction that produced them committed. The bus is the fast path, not the
record: a subscriber that missed events (Redis down, worker restarted) recovers them from the database by sequence
number, so `publish` never raises into the request that committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tocsin import metrics
from tocsin.resilience import ThrottledLog

log = logging.getLogger(__name__)
_failures = ThrottledLog(log, level=logging.WARNING)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
# A bus with no handlers still subscribes (Redis pub/sub needs one channel to listen); the channels themselves are
# named in tocsin.kernel.channels.
_IDLE_CHANNEL = "tocsin:idle"


class Bus(Protocol):
    def subscribe(self, channel: str, handler: Handler) -> None: ...
    def on_resubscribed(self, callback: Callable[[], Awaitable[None]]) -> None: ...
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class _Dispatch:
    def __init__(self) -> None:
        self.handlers: dict[str, list[Handler]] = defaultdict(list)
        self.tasks: set[asyncio.Task[None]] = set()
        self.resubscribed: list[Callable[[], Awaitable[None]]] = []

    def subscribe(self, channel: str, handler: Handler) -> None:
        self.handlers[channel].append(handler)

    def on_resubscribed(self, callback: Callable[[], Awaitable[None]]) -> None:
        """`callback` runs each time the subscription is back after a loss: what was published meanwhile is gone,
        so subscribers resync from the database."""
        self.resubscribed.append(callback)

    def dispatch(self, channel: str, message: dict[str, Any]) -> None:
        for handler in self.handlers.get(channel, []):
            task = asyncio.create_task(self._run(handler, channel, message))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _run(handler: Handler, channel: str, message: dict[str, Any]) -> None:
        try:
            await handler(message)
        except Exception:
            log.exception("handler for %s failed", channel)

    @staticmethod
    async def _run_callback(callback: Callable[[], Awaitable[None]]) -> None:
        try:
            await callback()
        except Exception:
            log.exception("resync after the bus came back failed")

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


class InProcessBus(_Dispatch):
    """One process: publish hands the message to this process's subscribers."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.dispatch(channel, message)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.drain()


class RedisBus(_Dispatch):
    """Several processes: messages go through Redis pub/sub; every process's subscribers receive each one once."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.client: redis.Redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self.listener: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"))
        for attempt in (1, 2):
            try:
                await self.client.publish(channel, data)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # After a Redis restart the pooled connection is dead and only the first use finds out: the pool
                # drops it, and one retry gets a fresh one.
                if attempt == 2:
                    _failures.failure(
                        "publish", "redis publish on %s failed (%s); subscribers resync from the database", channel, exc
                    )
            except RedisError as exc:
                _failures.failure(
                    "publish", "redis publish on %s failed (%s); subscribers resync from the database", channel, exc
                )
                return

    async def start(self) -> None:
        self.listener = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=3)

    async def _listen(self) -> None:
        delay = 0.2
        lost = False
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(*self.handlers.keys() or [_IDLE_CHANNEL])
                self.connected.set()
                delay = 0.2
                if lost:
                    lost = False
                    for callback in self.resubscribed:
                        task = asyncio.create_task(self._run_callback(callback))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                async for raw in pubsub.listen():
                    if raw.get("type") != "message":
                        continue
                    channel = raw["channel"].decode() if isinstance(raw["channel"], bytes) else raw["channel"]
                    self.dispatch(channel, json.loads(raw["data"]))
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except (RedisError, OSError, ValueError) as exc:
                self.connected.clear()
                lost = True
                metrics.BUS_RECONNECTS.inc()
                log.warning("redis subscription lost (%s); retrying in %.1fs", exc, delay)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listener
        await self.drain()
        await self.client.aclose()


def create_bus(redis_url: str | None) -> InProcessBus | RedisBus:
    return RedisBus(redis_url) if redis_url else InProcessBus()
