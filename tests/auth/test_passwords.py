"""Hashing off the event loop: the slots that bound it work in every event loop, not only the first that waited."""

from __future__ import annotations

import asyncio

from tocsin.auth.passwords import DUMMY_HASH, HASHING_SLOTS, verify_password_in_thread


async def verify_more_than_the_slots_at_once() -> list[bool]:
    return await asyncio.gather(*(verify_password_in_thread(DUMMY_HASH, "wrong") for _ in range(HASHING_SLOTS + 2)))


def test_hashing_waits_its_turn_in_one_event_loop_after_another() -> None:
    first = asyncio.run(verify_more_than_the_slots_at_once())  # the waiters bind a semaphore to this loop
    second = asyncio.run(verify_more_than_the_slots_at_once())
    assert first == second == [False] * (HASHING_SLOTS + 2)
