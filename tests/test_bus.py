"""The bus delivers each event once to every subscribing process; Redis for production, in-process for embedded."""

from __future__ import annotations

import asyncio

from tocsin.bus import InProcessBus, RedisBus


async def _collect(
    bus: InProcessBus | RedisBus, channel: str, sent: list[dict], others: list[InProcessBus | RedisBus]
) -> list[list[dict]]:
    inboxes: list[list[dict]] = [[] for _ in others]
    for inbox, subscriber in zip(inboxes, others, strict=True):

        async def keep(message: dict, inbox: list[dict] = inbox) -> None:
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
