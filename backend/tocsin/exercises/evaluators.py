"""What evaluators record about an exercise, during it or after: observations, a P/S/M/U rating per objective
(HSEEP), the improvement plan; and how each reads in the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.errors import InvalidInput
from tocsin.exercises.schemas import ImprovementIn, ObjectiveRating, ObservationIn, Rating, RatingIn
from tocsin.kernel import exercise_clock as clock
from tocsin.models import Exercise, ExerciseImprovement, ExerciseObservation, ExerciseRating, User


def _check_objective(exercise: Exercise, objective: str | None) -> None:
    if objective is not None and objective not in {o["id"] for o in exercise.scenario["objectives"]}:
        raise InvalidInput(f"the scenario has no objective '{objective}'", field="objective")


async def observe(
    session: AsyncSession, *, exercise: Exercise, body: ObservationIn, actor: User
) -> ExerciseObservation:
    _check_objective(exercise, body.objective)
    numbers = {i["number"] for i in exercise.scenario["timeline"]}
    numbers |= {c["inject"]["number"] for c in exercise.scenario.get("contingencies", [])}
    if body.inject is not None and body.inject not in numbers:
        raise InvalidInput(f"the scenario has no inject {body.inject}", field="inject")
    at = clock.now()
    row = ExerciseObservation(
        exercise_id=exercise.id,
        kind=body.kind.value,
        objective=body.objective,
        inject=body.inject,
        text=body.text,
        author=actor.username,
        scenario_seconds=clock.scenario_seconds(exercise, at),
        at=at,
    )
    session.add(row)
    await session.flush()
    return row


async def rate(
    session: AsyncSession, *, exercise: Exercise, objective: str, body: RatingIn, actor: User
) -> ExerciseRating:
    _check_objective(exercise, objective)
    values = {
        "exercise_id": exercise.id,
        "objective": objective,
        "rating": body.rating.value,
        "rationale": body.rationale,
        "rated_by": actor.username,
        "rated_at": clock.now(),
    }
    # Insert if new (two evaluators rating at once: one insert wins, the other updates), then set the values.
    await backend.insert_or_ignore(session, ExerciseRating, values)
    row = (
        await session.execute(
            select(ExerciseRating)
            .where(ExerciseRating.exercise_id == exercise.id, ExerciseRating.objective == objective)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    for name, value in values.items():
        setattr(row, name, value)
    await session.flush()
    return row


async def plan_improvement(
    session: AsyncSession, *, exercise: Exercise, body: ImprovementIn, actor: User
) -> ExerciseImprovement:
    _check_objective(exercise, body.objective)
    row = ExerciseImprovement(
        exercise_id=exercise.id,
        objective=body.objective,
        issue=body.issue,
        corrective_action=body.corrective_action,
        owner=body.owner,
        due=body.due,
        author=actor.username,
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return row


def rating_out(
    exercise: Exercise, row: ExerciseRating | None, objective: dict[str, Any] | None = None
) -> ObjectiveRating:
    """An objective of the scenario with its rating (None: not rated yet)."""
    if objective is None:
        assert row is not None
        objective = next(o for o in exercise.scenario["objectives"] if o["id"] == row.objective)
    return ObjectiveRating(
        objective=objective["id"],
        text=objective["text"],
        capability=objective["capability"],
        rating=Rating(row.rating) if row else None,
        rationale=row.rationale if row else None,
        rated_by=row.rated_by if row else None,
    )
