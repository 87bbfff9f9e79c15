"""The exercise's timeline (`exercise_events`): read page by page by those who follow it, and the player actions a
controller logs onto it. Injects, alerts, triage and the clock write their own entries (kernel.exercise_clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.exercises.schemas import ACTIVE_STATES, ActionIn, TimelineEntry, TimelineKind
from tocsin.exercises.service import need_state
from tocsin.kernel import exercise_clock as clock
from tocsin.models import Exercise, ExerciseEvent, User

SETTLE = timedelta(seconds=1)  # longer than any transaction that writes a timeline entry


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    next: int


async def timeline(
    session: AsyncSession,
    *,
    exercise_id: str,
    after: int = 0,
    roles: set[str] | None = None,
    settled_before: datetime | None = None,
    limit: int = 1_000,
) -> TimelinePage:
    """Entries after the cursor, in order. `roles`: the exercise roles the reader holds; injects addressed to another
    role are left out (players do not see what goes to the controller or the evaluators).

    Ids are handed out when a row is written but become visible when its transaction commits, so on PostgreSQL a
    lower id can appear after a higher one (an alert's entry commits with the alert). With `settled_before`, only
    entries written before it are returned, so a follower's cursor never passes an id that is still to appear."""
    statement = select(ExerciseEvent).where(ExerciseEvent.exercise_id == exercise_id, ExerciseEvent.id > after)
    if settled_before is not None:
        statement = statement.where(ExerciseEvent.at < settled_before)
    rows = (await session.execute(statement.order_by(ExerciseEvent.id).limit(limit))).scalars()
    entries: list[TimelineEntry] = []
    last = after
    for row in rows:
        last = row.id
        if roles is not None and row.to is not None and row.to not in roles:
            continue
        entries.append(TimelineEntry.model_validate(row))
    return TimelinePage(entries=entries, next=last)


async def log_action(session: AsyncSession, *, exercise: Exercise, body: ActionIn, actor: User) -> None:
    """A player action that happened outside Tocsin, on the timeline; `fulfils` names the expected actions it did."""
    need_state(exercise, *ACTIVE_STATES, doing="log an action in")
    await clock.record(
        session,
        exercise,
        key=None,
        kind=TimelineKind.player_action.value,
        title=body.kind.replace("_", " ").capitalize(),
        detail=body.note,
        fulfils=body.fulfils,
        actor=actor.username,
    )
