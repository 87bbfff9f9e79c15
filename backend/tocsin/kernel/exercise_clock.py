"""The scenario clock: scenario time from an exercise row, and wall time from scenario time.

Scenario time was `clock_seconds` at wall time `clock_at`; while running it advances `speed` scenario seconds per wall
second and stops at the scenario's duration. A pause freezes it; a speed change restarts the pair from "now". This
module depends on the models only, so the alerts and reports domains can stamp exercise events with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.models import Exercise, ExerciseEvent

RUNNING = "running"
ENDED = ("stopped", "finished")  # an exercise in these states takes no devices and no alerts


def now() -> datetime:
    return datetime.now(UTC)


def duration_of(exercise: Exercise) -> int:
    hours, minutes = str(exercise.scenario["duration"]).split(":")
    return (int(hours) * 60 + int(minutes)) * 60


def _seconds(state: str, base: float, base_at: datetime | None, speed: float, duration: float, at: datetime) -> float:
    seconds = base
    if state == RUNNING and base_at is not None:
        seconds += (at - base_at).total_seconds() * speed
    return max(0.0, min(seconds, duration))


def scenario_seconds(exercise: Exercise, at: datetime | None = None) -> float:
    """Scenario time at wall time `at` (default now), between 0 and the scenario's duration."""
    return _seconds(
        exercise.state,
        exercise.clock_seconds,
        exercise.clock_at,
        exercise.speed,
        float(duration_of(exercise)),
        at or now(),
    )


def set_clock(exercise: Exercise, *, state: str | None = None, speed: float | None = None) -> None:
    """Re-anchor the clock at now (keeping scenario time), then change state and/or speed."""
    at = now()
    exercise.clock_seconds = scenario_seconds(exercise, at)
    exercise.clock_at = at
    if state is not None:
        exercise.state = state
    if speed is not None:
        exercise.speed = speed
    exercise.clock_version += 1


class LiveClock:
    """The scheduler's copy of an exercise clock. `sleep_until` follows pauses and speed changes: whatever waits on
    scenario time (a synthetic citizen's acknowledgement delay, the next report of a wave) waits on this."""

    def __init__(self, exercise: Exercise) -> None:
        self.duration = float(duration_of(exercise))
        self.state = exercise.state
        self.base = exercise.clock_seconds
        self.base_at = exercise.clock_at
        self.speed = exercise.speed
        self.version = exercise.clock_version
        self._changed = asyncio.Event()

    def update(self, exercise: Exercise) -> bool:
        """Take the stored clock; True when it changed (state, speed or anchor)."""
        if exercise.clock_version == self.version and exercise.state == self.state:
            return False
        self.state, self.base, self.base_at = exercise.state, exercise.clock_seconds, exercise.clock_at
        self.speed, self.version = exercise.speed, exercise.clock_version
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return True

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def seconds(self, at: datetime | None = None) -> float:
        return _seconds(self.state, self.base, self.base_at, self.speed, self.duration, at or now())

    def wall_time(self, seconds: float) -> datetime | None:
        if not self.running or self.base_at is None:
            return None
        return self.base_at + timedelta(seconds=(seconds - self.base) / self.speed)

    async def sleep_until(self, target: float) -> None:
        while True:
            changed = self._changed
            if not self.running:
                await changed.wait()
                continue
            delay = (target - self.seconds()) / self.speed
            if delay <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=delay)

    async def sleep(self, scenario_seconds: float) -> None:
        await self.sleep_until(self.seconds() + scenario_seconds)


async def record(
    session: AsyncSession,
    exercise: Exercise,
    *,
    key: str | None,
    kind: str,
    title: str,
    detail: str | None = None,
    number: int | None = None,
    to: str | None = None,
    objectives: list[str] | None = None,
    fulfils: list[str] | None = None,
    alert_id: uuid.UUID | None = None,
    actor: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Add a timeline entry; with a `key`, only once per exercise. Returns whether it was written."""
    at = at or now()
    values = {
        "exercise_id": exercise.id,
        "key": key or f"{kind}:{uuid.uuid4().hex}",
        "kind": kind,
        "scenario_seconds": scenario_seconds(exercise, at),
        "at": at,
        "title": title[:300],
        "detail": detail,
        "number": number,
        "to": to,
        "objectives": objectives or [],
        "fulfils": fulfils or [],
        "alert_id": alert_id,
        "actor": actor,
    }
    return await backend.insert_or_ignore(session, ExerciseEvent, values)
