"""Waiting on state, never on the clock: poll a condition until it holds, and fail with what was awaited after a
deadline. The one place tests wait."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")
POLL_SECONDS = 0.02


@overload
async def wait_until(
    condition: Callable[[], Awaitable[T | None]], *, what: str, seconds: float = 10, every: float = POLL_SECONDS
) -> T: ...


@overload
async def wait_until(
    condition: Callable[[], T | None], *, what: str, seconds: float = 10, every: float = POLL_SECONDS
) -> T: ...


async def wait_until(
    condition: Callable[[], T | None | Awaitable[T | None]],
    *,
    what: str,
    seconds: float = 10,
    every: float = POLL_SECONDS,
) -> T:
    """Await `condition()` (plain or async) until it returns something truthy, and return that (so never None)."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds} s waiting for {what}")
        await asyncio.sleep(every)


def wait_until_sync(
    condition: Callable[[], T | None], *, what: str, seconds: float = 10, every: float = POLL_SECONDS
) -> T:
    """The same for tests that drive processes without an event loop."""
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds} s waiting for {what}")
        time.sleep(every)
    return result
