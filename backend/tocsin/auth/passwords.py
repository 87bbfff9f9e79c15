"""Argon2 password hashes. Hashing and verifying take tens of milliseconds of CPU and 64 MiB each: the async
variants run them in a thread, a few at a time, so a flood of wrong passwords never stalls the event loop."""

from __future__ import annotations

import asyncio
import os
import weakref

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Beyond this, sign-ins wait their turn: they never take every core (or the whole thread pool) from the event loop.
HASHING_SLOTS = max(1, (os.cpu_count() or 2) - 1)
# A semaphore belongs to the event loop it first waits on: one per running loop (tests run several, one after another).
_slots_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _hashing_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots_by_loop.get(loop)
    if slots is None:
        slots = _slots_by_loop[loop] = asyncio.Semaphore(HASHING_SLOTS)
    return slots


async def hash_password_in_thread(password: str) -> str:
    async with _hashing_slots():
        return await asyncio.to_thread(hash_password, password)


async def verify_password_in_thread(password_hash: str, password: str) -> bool:
    async with _hashing_slots():
        return await asyncio.to_thread(verify_password, password_hash, password)


# Verified against when the user does not exist, so a missing account takes as long as a wrong password.
DUMMY_HASH = _hasher.hash("tocsin-timing-equaliser")
