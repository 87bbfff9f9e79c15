"""The exercises API (`/api/v1/exercises`). Routes take a unit of work (`WorkDep`) when they write: it commits once
when the route returns, then publishes what the services queued (the scheduler's and workers' wake-up, alert
events). The one domain module that imports reporting/ (to serve the after-action report); the domain's services
import neither reporting/ nor simulation/."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from tocsin.auth.deps import Staff, require
from tocsin.auth.schemas import Role
from tocsin.auth.service import has_role
from tocsin.db import SessionDep
from tocsin.errors import refusals
from tocsin.exercises import evaluators, service, timeline
from tocsin.exercises.reporting.page import render_report_html
from tocsin.exercises.reporting.report import build_report
from tocsin.exercises.schemas import (
    ENDED_STATES,
    ActionIn,
    AfterActionReport,
    ExerciseIn,
    ExerciseOut,
    ImprovementIn,
    ImprovementOut,
    ObjectiveRating,
    ObservationIn,
    ObservationOut,
    RatingIn,
    ScenarioSummary,
    SpeedIn,
    TimelineEntry,
)
from tocsin.kernel import exercise_clock as clock
from tocsin.kernel.channels import EXERCISES_CHANNEL
from tocsin.kernel.work import UnitOfWork, WorkDep
from tocsin.models import Exercise, User
from tocsin.types import Cursor

ExerciseId = Annotated[str, Path(min_length=1, max_length=64, description="as the exercise's `id` says")]
ObjectiveId = Annotated[
    str, Path(pattern=r"^O\d+$", max_length=16, description="an objective of the scenario: O1, O2...")
]

router = APIRouter(prefix="/api/v1/exercises", tags=["exercises"])

Planner = Annotated[User, Depends(require(Role.planner, Role.admin))]
Evaluator = Annotated[User, Depends(require(Role.evaluator, Role.planner, Role.admin))]
CONTROL_ROLES = (Role.planner, Role.evaluator, Role.admin)


class TimelineOut(BaseModel):
    entries: list[TimelineEntry]
    next: int


async def _out(session: SessionDep, exercise: Exercise, user: User) -> ExerciseOut:
    fired = await service.injects_fired(session, [exercise.id])
    return service.exercise_out(
        exercise, fired=fired.get(exercise.id, 0), with_token=has_role(user, Role.planner, Role.admin)
    )


def _wake(work: UnitOfWork, exercise: Exercise) -> None:
    """After commit, tell the scheduler (reschedule) and every worker (drop the devices of an ended exercise)."""
    work.publish_after_commit(EXERCISES_CHANNEL, service.wake_message(exercise))


@router.get("/scenarios", response_model=list[ScenarioSummary])
async def list_scenarios(request: Request, _: Staff) -> list[ScenarioSummary]:
    """The scenario library of this server (`scenarios/`)."""
    directory = service.scenarios_dir(request.app.state.settings)
    return [service.summary(s) for s in service.library(directory).values()]


@router.post("", response_model=ExerciseOut, status_code=201, responses=refusals(404))
async def create_exercise(request: Request, work: WorkDep, user: Planner, body: ExerciseIn) -> ExerciseOut:
    """Set up an exercise from a library scenario (`scenario_id`) or a whole scenario document (`scenario`); with
    `start: true` its clock starts at once."""
    session = work.session
    exercise = await service.create_exercise(
        session,
        body=body,
        actor=user,
        settings=request.app.state.settings,
        templates_dir=request.app.state.templates_dir,
    )
    _wake(work, exercise)
    return await _out(session, exercise, user)


@router.get("", response_model=list[ExerciseOut])
async def list_exercises(session: SessionDep, user: Staff) -> list[ExerciseOut]:
    """The latest 200 exercises, newest first."""
    rows = await service.list_exercises(session)
    fired = await service.injects_fired(session, [r.id for r in rows])
    with_token = has_role(user, Role.planner, Role.admin)
    return [service.exercise_out(r, fired=fired.get(r.id, 0), with_token=with_token) for r in rows]


@router.get("/{exercise_id}", response_model=ExerciseOut)
async def get_exercise(session: SessionDep, user: Staff, exercise_id: ExerciseId) -> ExerciseOut:
    """One exercise and its clock (scenario time, speed, progress)."""
    return await _out(session, await service.get_exercise(session, exercise_id=exercise_id), user)


async def _control(work: UnitOfWork, user: User, exercise_id: str, command: str) -> ExerciseOut:
    session = work.session
    exercise = await service.get_exercise(session, exercise_id=exercise_id, for_update=True)
    if command == "start":
        await service.start(session, exercise=exercise, actor=user)
    elif command == "pause":
        await service.pause(session, exercise=exercise, actor=user)
    elif command == "resume":
        await service.resume(session, exercise=exercise, actor=user)
    else:
        await service.end(work, exercise=exercise, actor=user)
    if command != "stop":  # `end` queued its own wake-up
        _wake(work, exercise)
    return await _out(session, exercise, user)


@router.post("/{exercise_id}/start", response_model=ExerciseOut, responses=refusals(409))
async def start(work: WorkDep, user: Planner, exercise_id: ExerciseId) -> ExerciseOut:
    """Start the scenario clock at the exercise's speed (its synthetic citizens came up when it was created)."""
    return await _control(work, user, exercise_id, "start")


@router.post("/{exercise_id}/pause", response_model=ExerciseOut, responses=refusals(409))
async def pause(work: WorkDep, user: Planner, exercise_id: ExerciseId) -> ExerciseOut:
    """Freeze scenario time: nothing fires, synthetic citizens wait (their connections stay)."""
    return await _control(work, user, exercise_id, "pause")


@router.post("/{exercise_id}/resume", response_model=ExerciseOut, responses=refusals(409))
async def resume(work: WorkDep, user: Planner, exercise_id: ExerciseId) -> ExerciseOut:
    """Run the clock again from where it was paused."""
    return await _control(work, user, exercise_id, "resume")


@router.post("/{exercise_id}/stop", response_model=ExerciseOut, responses=refusals(409))
async def stop(work: WorkDep, user: Planner, exercise_id: ExerciseId) -> ExerciseOut:
    """End everything the exercise does, at once: its alerts end, its devices are disconnected on every worker and
    may not come back, nothing more fires."""
    return await _control(work, user, exercise_id, "stop")


@router.put("/{exercise_id}/speed", response_model=ExerciseOut, responses=refusals(409))
async def set_speed(work: WorkDep, user: Planner, exercise_id: ExerciseId, body: SpeedIn) -> ExerciseOut:
    """Scenario seconds per wall-clock second, 1 to 3600; what is pending is rescheduled."""
    session = work.session
    exercise = await service.get_exercise(session, exercise_id=exercise_id, for_update=True)
    await service.set_speed(session, exercise=exercise, speed=body.speed, actor=user)
    _wake(work, exercise)
    return await _out(session, exercise, user)


@router.get("/{exercise_id}/timeline", response_model=TimelineOut)
async def get_timeline(
    session: SessionDep, user: Staff, exercise_id: ExerciseId, after: Annotated[Cursor, Query()] = 0
) -> TimelineOut:
    """Timeline entries after the cursor `after`; follow it by passing `next` back. Players see the injects that go
    to players; planners and evaluators see all."""
    exercise = await service.get_exercise(session, exercise_id=exercise_id)
    roles = None if has_role(user, *CONTROL_ROLES) else {"players"}
    # While the exercise runs, the newest second waits (see timeline.timeline); once it ended, everything is there.
    settled = None if exercise.state in ENDED_STATES else clock.now() - timeline.SETTLE
    page = await timeline.timeline(session, exercise_id=exercise_id, after=after, roles=roles, settled_before=settled)
    return TimelineOut(entries=page.entries, next=page.next)


@router.post("/{exercise_id}/actions", response_model=ExerciseOut, status_code=201, responses=refusals(409))
async def log_action(work: WorkDep, user: Planner, exercise_id: ExerciseId, body: ActionIn) -> ExerciseOut:
    """A controller logs a player action that happened outside Tocsin (a press statement, a call); `fulfils` names
    the expected actions it did."""
    session = work.session
    exercise = await service.get_exercise(session, exercise_id=exercise_id)
    await timeline.log_action(session, exercise=exercise, body=body, actor=user)
    out = await _out(session, exercise, user)
    return out


@router.post("/{exercise_id}/observations", response_model=ObservationOut, status_code=201)
async def observe(work: WorkDep, user: Evaluator, exercise_id: ExerciseId, body: ObservationIn) -> ObservationOut:
    """An evaluator's observation: a strength, an area for improvement, or a note, optionally tied to an objective
    and an inject."""
    session = work.session
    exercise = await service.get_exercise(session, exercise_id=exercise_id)
    row = await evaluators.observe(session, exercise=exercise, body=body, actor=user)
    return ObservationOut.model_validate(row)


@router.put("/{exercise_id}/ratings/{objective}", response_model=ObjectiveRating)
async def rate(
    work: WorkDep, user: Evaluator, exercise_id: ExerciseId, objective: ObjectiveId, body: RatingIn
) -> ObjectiveRating:
    """Rate an objective P, S, M or U (HSEEP); rating again replaces the rating."""
    session = work.session
    exercise = await service.get_exercise(session, exercise_id=exercise_id)
    row = await evaluators.rate(session, exercise=exercise, objective=objective, body=body, actor=user)
    return evaluators.rating_out(exercise, row)


@router.post("/{exercise_id}/improvements", response_model=ImprovementOut, status_code=201)
async def plan_improvement(
    work: WorkDep, user: Evaluator, exercise_id: ExerciseId, body: ImprovementIn
) -> ImprovementOut:
    """A line of the improvement plan: the issue, the corrective action, who owns it and by when."""
    session = work.session
    exercise = await service.get_exercise(session, exercise_id=exercise_id)
    row = await evaluators.plan_improvement(session, exercise=exercise, body=body, actor=user)
    return ImprovementOut.model_validate(row)


@router.get(
    "/{exercise_id}/report",
    response_model=AfterActionReport,
    responses={200: {"content": {"text/html": {}}, "description": "JSON, or with format=html a self-contained page"}},
)
async def get_report(
    session: SessionDep,
    _: Evaluator,
    exercise_id: ExerciseId,
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Any:
    """The after-action report: timeline, measured figures, ratings, observations, improvement plan. Any time during
    the exercise (figures so far) or after it."""
    exercise = await service.get_exercise(session, exercise_id=exercise_id)
    built = await build_report(session, exercise=exercise)
    if format == "html":
        return HTMLResponse(await asyncio.to_thread(render_report_html, built))  # CPU only: off the event loop
    return built
