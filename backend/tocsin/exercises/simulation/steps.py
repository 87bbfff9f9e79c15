"""The writes of a live exercise. Each adds to one unit of work that the caller (live.py) commits once, and only then
are its events published: the synthetic devices joining, a note on the timeline, an item firing (an inject, a
contingency, a scripted player action; the end is `service.end`), the receipts and counters the synthetic citizens
noted. None of them commits, rolls back or publishes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from tocsin import backend
from tocsin.config import Settings
from tocsin.exercises import evaluation
from tocsin.exercises.scenario import Inject, Scenario
from tocsin.exercises.simulation import actions
from tocsin.exercises.simulation.devices import Receipt, SyntheticDevice
from tocsin.exercises.simulation.timetable import Item
from tocsin.kernel import exercise_clock as clock
from tocsin.kernel.work import UnitOfWork
from tocsin.models import Device, Exercise, ExerciseDevice, ExerciseReceipt, User


@dataclass(frozen=True)
class Playbook:
    """What scripted player actions need of the server they play on."""

    settings: Settings
    templates_dir: Path


async def join_devices(work: UnitOfWork, *, exercise_id: str, devices: Sequence[SyntheticDevice]) -> None:
    """The exercise's synthetic devices, and their device rows too: each hello is then a read, not one more write per
    device. Already there after a restart of the scheduler: left as they are."""
    at = clock.now()
    homes = [
        {
            "exercise_id": exercise_id,
            "device_id": d.device_id,
            "area": d.area,
            "lon": d.home[0],
            "lat": d.home[1],
            "lang": d.lang,
            "vulnerable": d.vulnerable,
        }
        for d in devices
    ]
    rows = [
        {
            "id": d.device_id,
            "places": [],
            "languages": [d.lang],
            "categories": [],
            "min_severity": "Unknown",
            "exercise_id": exercise_id,
            "created_at": at,
            "last_seen_at": at,
        }
        for d in devices
    ]
    await backend.insert_many_or_ignore(work.session, ExerciseDevice, homes)
    await backend.insert_many_or_ignore(work.session, Device, rows)


async def note(work: UnitOfWork, *, exercise_id: str, title: str, key: str | None = None) -> None:
    """A line of the clock's on the timeline (something the exercise could not do, say)."""
    row = await work.session.get(Exercise, exercise_id)
    if row is not None:
        await clock.record(work.session, row, key=key, kind="clock", title=title)


async def write_counts(
    work: UnitOfWork, *, exercise_id: str, receipts: Sequence[Receipt], stats: dict[str, int]
) -> None:
    """What the synthetic citizens noted since the last time: receipts (once per alert and device) and counters."""
    values = [
        {
            "alert_id": uuid.UUID(r.alert_id),
            "device_id": r.device_id,
            "exercise_id": exercise_id,
            "received_at": r.at,
            "scenario_seconds": r.scenario_seconds,
        }
        for r in receipts
    ]
    await backend.insert_many_or_ignore(work.session, ExerciseReceipt, values)
    await work.session.execute(update(Exercise).where(Exercise.id == exercise_id).values(stats=stats))


def inject_of(scenario: Scenario, item: Item) -> Inject:
    if item.kind == "contingency":
        return next(c.inject for c in scenario.contingencies if c.inject.number == item.index)
    return next(i for i in scenario.timeline if i.number == item.index)


async def fire_inject(work: UnitOfWork, *, exercise: Exercise, scenario: Scenario, item: Item) -> Inject | None:
    """An inject or a contingency on the timeline, once (its key decides); the inject when this call wrote it. A
    contingency whose expected action was done meanwhile is not needed: nothing is written."""
    inject = inject_of(scenario, item)
    if item.kind == "contingency":
        missing = next(c.if_missing for c in scenario.contingencies if c.inject.number == item.index)
        if await evaluation.is_done(work.session, exercise_id=exercise.id, scenario=scenario, action_id=missing):
            return None
    written = await clock.record(
        work.session,
        exercise,
        key=item.key,
        kind=item.kind,
        title=inject.title,
        detail=inject.content,
        number=inject.number,
        to=inject.to,
        objectives=inject.objectives,
    )
    return inject if written else None


@asynccontextmanager
async def _attempt(work: UnitOfWork) -> AsyncIterator[UnitOfWork]:
    """A part of `work` that may fail on its own: its rows roll back to a savepoint and its events are dropped; when
    it succeeds, its events join `work`'s (published after `work` commits)."""
    part = UnitOfWork(work.session, work.bus)
    async with work.session.begin_nested():
        yield part
    for channel, message in part.queued:
        work.publish_after_commit(channel, message)


async def perform_scripted(
    work: UnitOfWork, *, exercise: Exercise, scenario: Scenario, item: Item, playbook: Playbook
) -> None:
    """A scripted player action, in the name of the planner who created the exercise, and its line on the timeline;
    one that fails leaves nothing but a "... failed" line saying why."""
    action = scenario.scripted_actions[item.index]
    title = action.kind.replace("_", " ").capitalize()
    session = work.session
    actor = (await session.execute(select(User).where(User.username == exercise.created_by))).scalar_one_or_none()
    try:
        if actor is None:
            raise actions.ActionFailed(f"the planner '{exercise.created_by}' no longer exists")
        async with _attempt(work) as part:
            job = actions.Scripted(part, exercise, scenario, action, actor, playbook.settings, playbook.templates_dir)
            done, alert_id = await actions.perform(job)
    except actions.ActionFailed as failed:
        await session.refresh(exercise)  # what the savepoint's rollback expired, read again before it is used
        await clock.record(
            session, exercise, key=item.key, kind="scripted", title=f"{title} failed", detail=str(failed)
        )
        return
    await clock.record(
        session,
        exercise,
        key=item.key,
        kind="scripted",
        title=title,
        detail=action.note or done,
        fulfils=action.fulfils,
        alert_id=alert_id,
        actor=actor.username,
    )
