"""The bus delivers each event once to every subscribing process; Redis for production, in-process for embedded."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tests.realtime.test_workers import Redis
from tocsin.bus import Bus, InProcessBus, RedisBus
from tocsin.testing import free_port


async def _collect(
    bus: Bus, channel: str, sent: list[dict[str, Any]], others: Sequence[Bus]
) -> list[list[dict[str, Any]]]:
    inboxes: list[list[dict[str, Any]]] = [[] for _ in others]
    for inbox, subscriber in zip(inboxes, others, strict=True):

        async def keep(message: dict[str, Any], inbox: list[dict[str, Any]] = inbox) -> None:
            inbox.append(message)

        subscriber.subscribe(channel, keep)
        await subscriber.start()
    for message in sent:
        await bus.publish(channel, message)
    for _ in range(200):
        if all(len(inbox) == len(sent) for inbox in inboxes):
            break
        await asyncio.sleep(0.01)
    return inboxes


class TestInProcessBus:
    async def test_subscriber_receives_in_order(self) -> None:
        bus = InProcessBus()
        sent = [{"seq": i} for i in range(5)]
        inboxes = await _collect(bus, "tocsin:test", sent, [bus])
        await bus.stop()
        assert inboxes == [sent]


class TestRedisBus:
    async def test_every_process_receives_each_message_once(self, redis_url: str) -> None:
        workers = [RedisBus(redis_url), RedisBus(redis_url)]
        publisher = RedisBus(redis_url)
        sent = [{"seq": i} for i in range(20)]
        try:
            inboxes = await _collect(publisher, "tocsin:test-bus", sent, workers)
        finally:
            for bus in (*workers, publisher):
                await bus.stop()
        assert inboxes == [sent, sent]

    async def test_publish_without_redis_does_not_raise(self) -> None:
        bus = RedisBus("redis://127.0.0.1:1/0")  # nothing listens on port 1
        await bus.publish("tocsin:test", {"seq": 1})
        await bus.client.aclose()


@pytest.fixture
def own_redis() -> Iterator[Redis]:
    """A redis-server of this test's own, to restart."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = Redis(free_port())
    server.start()
    yield server
    server.kill()


async def _receive(inbox: asyncio.Queue[dict[str, Any]], count: int, seconds: float = 15) -> list[dict[str, Any]]:
    async with asyncio.timeout(seconds):
        return [await inbox.get() for _ in range(count)]


class TestRedisRestart:
    async def test_the_first_publish_after_a_restart_arrives_and_subscribers_hear_the_bus_is_back(
        self, own_redis: Redis
    ) -> None:
        url = f"redis://127.0.0.1:{own_redis.port}/0"
        publisher, subscriber = RedisBus(url), RedisBus(url)
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        back = asyncio.Event()

        async def keep(message: dict[str, Any]) -> None:
            inbox.put_nowait(message)

        async def resync() -> None:
            back.set()

        subscriber.subscribe("tocsin:test-restart", keep)
        subscriber.on_resubscribed(resync)
        await subscriber.start()
        try:
            await publisher.publish("tocsin:test-restart", {"n": 1})
            received = await _receive(inbox, 1)
            own_redis.kill()
            own_redis.start()
            await asyncio.wait_for(back.wait(), 30)
            await publisher.publish("tocsin:test-restart", {"n": 2})  # its pooled connection died with the server
            received += await _receive(inbox, 1)
        finally:
            await subscriber.stop()
            await publisher.stop()
        assert received == [{"n": 1}, {"n": 2}]
