"""Exercises: the scenario library, creating an exercise from a scenario, driving its clock (start, pause, resume,
speed, stop). The scheduler process runs what the clock makes due (simulation/); evaluators record what they saw
(evaluators.py); the timeline is read and added to in timeline.py."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.alerts import service as alerts
from tocsin.alerts.templates import load_templates
from tocsin.config import Mode, Settings
from tocsin.content import content_dir
from tocsin.errors import Conflict, InvalidInput, NotFound
from tocsin.exercises.scenario import Scenario, check_references, load_scenario, minutes
from tocsin.exercises.schemas import (
    ACTIVE_STATES,
    ExerciseIn,
    ExerciseOut,
    ExerciseState,
    ScenarioSummary,
    TimelineKind,
    Transport,
)
from tocsin.kernel import audit
from tocsin.kernel import exercise_clock as clock
from tocsin.kernel.channels import EXERCISES_CHANNEL
from tocsin.kernel.work import UnitOfWork
from tocsin.models import Exercise, ExerciseEvent, User

log = logging.getLogger(__name__)
INJECT_KINDS = (TimelineKind.inject.value, TimelineKind.contingency.value)


def default_scenarios_dir() -> Path:
    return content_dir("scenarios")


def scenarios_dir(settings: Settings) -> Path:
    return settings.scenarios_dir or default_scenarios_dir()


def library(directory: Path) -> dict[str, Scenario]:
    """The scenarios of the library; a file that does not load is left out and logged (a test keeps them valid)."""
    found: dict[str, Scenario] = {}
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            found[path.stem] = load_scenario(path)
        except (ValueError, OSError, yaml.YAMLError) as exc:
            log.error("scenario %s does not load: %s", path.name, str(exc).splitlines()[0])
    return found


def summary(scenario: Scenario) -> ScenarioSummary:
    return ScenarioSummary(
        id=scenario.id,
        title=scenario.title,
        hazard=scenario.hazard,
        place=scenario.place.name,
        duration_seconds=minutes(scenario.duration) * 60,
        injects=len(scenario.timeline),
        population=scenario.population.size,
    )


def scenario_of(exercise: Exercise) -> Scenario:
    return Scenario.model_validate(exercise.scenario)


def _scenario_from(body: ExerciseIn, settings: Settings, templates_dir: Path) -> Scenario:
    if body.scenario_id is not None:
        found = library(scenarios_dir(settings)).get(body.scenario_id)
        if found is None:
            raise NotFound(f"no scenario '{body.scenario_id}'", field="scenario_id", code="scenario_not_found")
        return found
    try:
        scenario = Scenario.model_validate(body.scenario)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}", field=f"scenario.{where}" if where else "scenario") from None
    problems = check_references(scenario, set(load_templates(templates_dir)))
    if problems:
        raise InvalidInput(problems[0], field="scenario")
    return scenario


def _device_count(body: ExerciseIn, scenario: Scenario, settings: Settings) -> int:
    """How many synthetic devices the exercise brings up, within what this server allows."""
    devices = min(scenario.population.size, settings.exercise_max_devices) if body.devices is None else body.devices
    if devices > settings.exercise_max_devices:
        raise InvalidInput(
            f"at most {settings.exercise_max_devices} synthetic devices (TOCSIN_EXERCISE_MAX_DEVICES)", field="devices"
        )
    if devices > settings.exercise_in_process_max and not settings.exercise_citizen_url:
        raise InvalidInput(
            f"more than {settings.exercise_in_process_max} synthetic devices connect over WebSockets: set "
            "TOCSIN_EXERCISE_CITIZEN_URL (or fewer devices)",
            field="devices",
        )
    if devices and settings.mode is Mode.production and not settings.exercise_citizen_url:
        raise InvalidInput(
            "synthetic citizens need TOCSIN_EXERCISE_CITIZEN_URL in production (or devices: 0)", field="devices"
        )
    return devices


async def create_exercise(
    session: AsyncSession, *, body: ExerciseIn, actor: User, settings: Settings, templates_dir: Path
) -> Exercise:
    scenario = _scenario_from(body, settings, templates_dir)
    exercise = Exercise(
        id=f"{scenario.id[:48]}-{secrets.token_hex(3)}",
        scenario_id=scenario.id,
        title=scenario.title,
        scenario=scenario.model_dump(mode="json"),
        state=ExerciseState.ready.value,
        speed=body.speed,
        clock_seconds=0.0,
        clock_at=None,
        clock_version=0,
        devices=_device_count(body, scenario, settings),
        seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
        transport=body.transport.value,
        autoplay=body.autoplay,
        join_token=secrets.token_urlsafe(24),
        stats={},
        created_by=actor.username,
        created_at=clock.now(),
    )
    session.add(exercise)
    await session.flush()
    await clock.record(
        session, exercise, key="clock:created", kind="clock", title="Exercise created", actor=actor.username
    )
    await _audit(session, exercise, actor, "created")
    if body.start:
        await start(session, exercise=exercise, actor=actor)
    return exercise


async def get_exercise(session: AsyncSession, *, exercise_id: str, for_update: bool = False) -> Exercise:
    """The exercise; `for_update`: locked until the transaction ends and read afresh (its clock changes under it)."""
    if for_update:
        exercise = await backend.get_for_update(session, Exercise, exercise_id)
    else:
        exercise = (await session.execute(select(Exercise).where(Exercise.id == exercise_id))).scalar_one_or_none()
    if exercise is None:
        raise NotFound(f"no exercise '{exercise_id[:64]}'", code="exercise_not_found")
    return exercise


async def list_exercises(session: AsyncSession) -> list[Exercise]:
    return list((await session.execute(select(Exercise).order_by(Exercise.created_at.desc()).limit(200))).scalars())


async def injects_fired(session: AsyncSession, exercise_ids: list[str]) -> dict[str, int]:
    rows = await session.execute(
        select(ExerciseEvent.exercise_id, func.count())
        .where(ExerciseEvent.exercise_id.in_(exercise_ids), ExerciseEvent.kind.in_(INJECT_KINDS))
        .group_by(ExerciseEvent.exercise_id)
    )
    return {exercise_id: count for exercise_id, count in rows}


def exercise_out(exercise: Exercise, *, fired: int, with_token: bool = False) -> ExerciseOut:
    scenario = exercise.scenario
    duration = clock.duration_of(exercise)
    seconds = clock.scenario_seconds(exercise)
    return ExerciseOut(
        id=exercise.id,
        scenario_id=exercise.scenario_id,
        title=exercise.title,
        hazard=str(scenario["hazard"]),
        place=str(scenario["place"]["name"]),
        state=ExerciseState(exercise.state),
        speed=exercise.speed,
        scenario_seconds=round(seconds, 1),
        duration_seconds=duration,
        progress=round(seconds / duration, 4) if duration else 1.0,
        devices=exercise.devices,
        devices_online=int(exercise.stats.get("online", 0)),
        transport=Transport(exercise.transport),
        autoplay=exercise.autoplay,
        injects_fired=fired,
        injects_total=len(scenario["timeline"]),
        created_by=exercise.created_by,
        created_at=exercise.created_at,
        started_at=exercise.started_at,
        ended_at=exercise.ended_at,
        join_token=exercise.join_token if with_token else None,
    )


# ---- the clock ------------------------------------------------------------------------------------------------------


def need_state(exercise: Exercise, *states: ExerciseState, doing: str) -> None:
    """Refuse (409) what the exercise's state does not allow."""
    if exercise.state not in states:
        raise Conflict(f"cannot {doing} an exercise that is {exercise.state}", code="exercise_state")


async def start(session: AsyncSession, *, exercise: Exercise, actor: User) -> None:
    need_state(exercise, ExerciseState.ready, doing="start")
    clock.set_clock(exercise, state=ExerciseState.running.value)
    exercise.started_at = exercise.clock_at
    await clock.record(
        session,
        exercise,
        key="clock:started",
        kind="clock",
        title=f"Started at {exercise.speed:g}x",
        actor=actor.username,
    )
    await _audit(session, exercise, actor, "started")


async def pause(session: AsyncSession, *, exercise: Exercise, actor: User) -> None:
    need_state(exercise, ExerciseState.running, doing="pause")
    clock.set_clock(exercise, state=ExerciseState.paused.value)
    await clock.record(session, exercise, key=None, kind="clock", title="Paused", actor=actor.username)
    await _audit(session, exercise, actor, "paused")


async def resume(session: AsyncSession, *, exercise: Exercise, actor: User) -> None:
    need_state(exercise, ExerciseState.paused, doing="resume")
    clock.set_clock(exercise, state=ExerciseState.running.value)
    await clock.record(session, exercise, key=None, kind="clock", title="Resumed", actor=actor.username)
    await _audit(session, exercise, actor, "resumed")


async def set_speed(session: AsyncSession, *, exercise: Exercise, speed: float, actor: User) -> None:
    need_state(exercise, ExerciseState.ready, *ACTIVE_STATES, doing="change the speed of")
    clock.set_clock(exercise, speed=speed)
    await clock.record(session, exercise, key=None, kind="clock", title=f"Speed {speed:g}x", actor=actor.username)
    await _audit(session, exercise, actor, "speed")


async def end(work: UnitOfWork, *, exercise: Exercise, actor: User | None, finished: bool = False) -> None:
    """Stop (or finish) the exercise and end its alerts, in one transaction; every worker hears of it after commit."""
    session = work.session
    need_state(exercise, ExerciseState.ready, *ACTIVE_STATES, doing="stop")
    state = ExerciseState.finished if finished else ExerciseState.stopped
    clock.set_clock(exercise, state=state.value)
    exercise.ended_at = exercise.clock_at
    title = "Finished: end of the scenario" if finished else "Stopped"
    await clock.record(
        session, exercise, key="clock:ended", kind="clock", title=title, actor=actor.username if actor else None
    )
    await _audit(session, exercise, actor, state.value)
    await alerts.end_exercise_alerts(work, exercise_id=exercise.id)
    work.publish_after_commit(EXERCISES_CHANNEL, wake_message(exercise))


async def _audit(session: AsyncSession, exercise: Exercise, actor: User | None, action: str) -> None:
    detail = {"exercise": exercise.id, "scenario": exercise.scenario_id, "speed": exercise.speed}
    await audit.record(session, actor=actor, action=f"exercise_{action}", detail=detail)


def wake_message(exercise: Exercise) -> dict[str, Any]:
    """What the scheduler (reschedule) and every worker (close this exercise's devices when it ended) listen to."""
    return {"type": "exercise", "id": exercise.id, "state": exercise.state, "version": exercise.clock_version}
