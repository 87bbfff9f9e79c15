"""What the exercises API takes and returns, and the after-action report (JSON; reporting/page.py renders it)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tocsin.alerts.schemas import no_nul
from tocsin.exercises.scenario import ActionKind

MIN_SPEED = 1.0
MAX_SPEED = 3600.0

Speed = Annotated[float, Field(ge=MIN_SPEED, le=MAX_SPEED, description="scenario seconds per wall-clock second")]
Note = Annotated[str, Field(min_length=1, max_length=4_000), AfterValidator(no_nul)]
Short = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(no_nul)]


def _to_a_tenth(seconds: float) -> float:
    return round(seconds, 1)


# Scenario seconds as the API gives them: to a tenth of a second (also when read from a row, `from_attributes`).
Tenths = Annotated[float, AfterValidator(_to_a_tenth)]


class ExerciseState(StrEnum):
    ready = "ready"  # created, clock not started
    running = "running"
    paused = "paused"
    stopped = "stopped"  # ended by a planner before the scenario's end
    finished = "finished"  # the scenario ran to its end


ACTIVE_STATES = (ExerciseState.running, ExerciseState.paused)
ENDED_STATES = (ExerciseState.stopped, ExerciseState.finished)


class Transport(StrEnum):
    auto = "auto"  # in-process when this process has the hub and the population is small, else WebSockets
    in_process = "in_process"
    websocket = "websocket"


class Rating(StrEnum):
    """HSEEP: performed without challenges, with some challenges, with major challenges, unable to be performed."""

    P = "P"
    S = "S"
    M = "M"
    U = "U"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExerciseIn(_In):
    scenario_id: Annotated[str, Field(max_length=64, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")] | None = Field(
        default=None, description="a scenario of the server's library (GET /api/v1/exercises/scenarios)"
    )
    scenario: dict[str, Any] | None = Field(default=None, description="a whole scenario document (docs/scenarios.md)")
    speed: Speed = 1.0
    devices: Annotated[int, Field(ge=0, le=100_000)] | None = Field(
        default=None, description="synthetic devices to bring up (default: the scenario's population, capped)"
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    transport: Transport = Transport.auto
    start: bool = Field(default=False, description="start the clock at once")
    autoplay: bool = Field(
        default=False,
        description="perform the scenario's scripted player actions (demos, tests); off for a real team's exercise",
    )

    @model_validator(mode="after")
    def _one_scenario(self) -> ExerciseIn:
        if (self.scenario_id is None) == (self.scenario is None):
            raise ValueError("give either scenario_id or scenario")
        return self


class SpeedIn(_In):
    speed: Speed


class ActionIn(_In):
    """A player action that happened outside Tocsin (a press statement, a phone call), logged by a controller."""

    kind: ActionKind
    fulfils: Annotated[list[Annotated[str, Field(pattern=r"^A\d+$")]], Field(max_length=20)] = []
    note: Note


class ObservationKind(StrEnum):
    strength = "strength"
    improvement = "improvement"  # an area for improvement
    note = "note"


class ObservationIn(_In):
    kind: ObservationKind = ObservationKind.note
    objective: Annotated[str, Field(pattern=r"^O\d+$")] | None = None
    inject: Annotated[int, Field(ge=1, le=9_999)] | None = None
    text: Note


class RatingIn(_In):
    rating: Rating
    rationale: Note | None = None


class ImprovementIn(_In):
    objective: Annotated[str, Field(pattern=r"^O\d+$")] | None = None
    issue: Note
    corrective_action: Note
    owner: Short
    due: date | None = None


# ---- out ------------------------------------------------------------------------------------------------------------


class ScenarioSummary(BaseModel):
    id: str
    title: str
    hazard: str
    place: str
    duration_seconds: int
    injects: int
    population: int


class ExerciseOut(BaseModel):
    id: str
    scenario_id: str
    title: str
    hazard: str
    place: str
    state: ExerciseState
    speed: float
    scenario_seconds: float = Field(description="scenario time now, seconds from the start")
    duration_seconds: int
    progress: float = Field(description="0..1")
    devices: int = Field(description="synthetic devices of this exercise")
    devices_online: int = Field(default=0, description="synthetic devices connected at the last count (every second)")
    transport: Transport
    autoplay: bool = Field(default=False, description="the scenario's scripted player actions are performed")
    injects_fired: int
    injects_total: int
    created_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    join_token: str | None = Field(
        default=None, description="for planners: what a participant's device sends in hello to join the exercise"
    )


class TimelineKind(StrEnum):
    clock = "clock"  # started, paused, resumed, speed, stopped, finished
    inject = "inject"
    contingency = "contingency"  # a contingency inject that fired
    scripted = "scripted"  # a scripted player action the exercise performed
    player_action = "player_action"  # logged by a controller (POST .../actions)
    alert = "alert"  # an exercise alert went out (issued, update, cancel)
    triage = "triage"  # players changed a report's status
    observation = "observation"


class TimelineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from an ExerciseEvent row

    scenario_seconds: Tenths
    at: datetime
    kind: TimelineKind
    title: str
    detail: str | None = None
    to: str | None = Field(default=None, description="the role an inject goes to")
    number: int | None = Field(default=None, description="the inject number")
    objectives: list[str] = []
    alert_id: uuid.UUID | None = None


class InjectToAlert(BaseModel):
    """For each expected issue_alert action: how long from its inject to the first alert that did it."""

    inject: int
    inject_title: str
    action: str
    area: str | None
    inject_seconds: float
    deadline_seconds: float
    alert_id: uuid.UUID | None
    alert_headline: str | None
    minutes_to_alert: float | None
    on_time: bool | None


class ReachPoint(BaseModel):
    seconds: float = Field(description="scenario seconds after the alert went out")
    share: float


class AlertFigures(BaseModel):
    alert_id: uuid.UUID
    headline: str
    event: str
    msg_type: str
    issued_seconds: float = Field(description="scenario time it went out")
    affected: int = Field(description="synthetic devices whose home lies in the alert area")
    reached: int
    reached_share: float | None
    seconds_to_50: float | None = Field(description="scenario seconds until half of the affected had it")
    seconds_to_90: float | None
    acknowledged: int
    ack_rate: float | None = Field(description="synthetic devices that acknowledged / synthetic devices reached")
    checked_in: int
    checkin_rate: float | None = Field(description="synthetic devices that checked in / synthetic devices reached")
    need_help: int
    reach_curve: list[ReachPoint]


class ReportFigures(BaseModel):
    received: int
    triaged: int = Field(description="reports whose status players changed from new")
    by_category: dict[str, int]
    by_status: dict[str, int]
    median_minutes_to_triage: float | None = Field(
        description="scenario minutes from received to the current status (wall time x the exercise's speed)"
    )


class ExpectedActionOut(BaseModel):
    id: str
    kind: str
    description: str
    inject: int
    deadline_seconds: float
    done_seconds: float | None
    done_by: str | None = Field(description="alert, scripted, player_action or triage")
    on_time: bool | None
    contingency_fired: int | None = Field(description="the contingency inject that fired because it was missing")


class LintFindingOut(BaseModel):
    alert_id: uuid.UUID
    headline: str
    language: str
    field: str
    kind: str  # deprecated | non_preferred | explain
    text: str
    preferred: str
    concept_id: str


class ObjectiveRating(BaseModel):
    objective: str
    text: str
    capability: str
    rating: Rating | None
    rationale: str | None
    rated_by: str | None


class ObservationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from an ExerciseObservation row

    id: int
    kind: ObservationKind
    objective: str | None
    inject: int | None
    text: str
    author: str
    scenario_seconds: Tenths
    at: datetime


class ImprovementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from an ExerciseImprovement row

    id: int
    objective: str | None
    issue: str
    corrective_action: str
    owner: str
    due: date | None


class PopulationFigures(BaseModel):
    devices: int
    by_area: dict[str, int]
    by_language: dict[str, int]
    vulnerable: int
    lost_connection: int = Field(
        description="connections lost in infrastructure failures (a device cut twice counts twice)"
    )
    queued_reports_resent: int = Field(description="reports queued while offline and acknowledged after reconnecting")


class ScenarioInfo(BaseModel):
    id: str
    title: str
    hazard: str
    place: str
    summary: str
    objectives: list[dict[str, str]]


class AfterActionReport(BaseModel):
    exercise: ExerciseOut
    scenario: ScenarioInfo
    generated_at: datetime
    timeline: list[TimelineEntry]
    inject_to_alert: list[InjectToAlert]
    alerts: list[AlertFigures]
    population: PopulationFigures
    reports: ReportFigures
    expected_actions: list[ExpectedActionOut]
    glossary_findings: list[LintFindingOut]
    ratings: list[ObjectiveRating]
    observations: list[ObservationOut]
    strengths: list[str]
    areas_for_improvement: list[str]
    improvement_plan: list[ImprovementOut]
