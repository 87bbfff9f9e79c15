"""The scenario format (docs/scenarios.md): one YAML file per scenario in `scenarios/`, after the HSEEP Master
Scenario Events List. Loaded through these schemas; `check_references` finds what a schema alone cannot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tocsin import geo

ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"
OFFSET = r"^\d{1,3}:[0-5]\d$"  # scenario time, HH:MM from the start
Text = Annotated[str, Field(min_length=1, max_length=4_000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]

InjectType = Literal[
    "situation_update", "citizen_reports", "infrastructure_failure", "media_inquiry", "request_for_information"
]
ActionKind = Literal["issue_alert", "update_alert", "cancel_alert", "triage_reports", "respond_to_inquiry"]
ReportCategory = Literal[
    "flooding",
    "fire",
    "smoke",
    "power_outage",
    "telecom_outage",
    "water_supply",
    "gas_smell",
    "structural_damage",
    "injured_or_trapped",
    "road_blocked",
    "other",
]


def minutes(offset: str) -> int:
    hours, mins = offset.split(":")
    return int(hours) * 60 + int(mins)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Place(_Strict):
    name: Name
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    timezone: Name
    centre: tuple[float, float] = Field(description="[lon, lat]")


class Objective(_Strict):
    id: Annotated[str, Field(pattern=r"^O\d+$")]
    text: Text
    capability: Name


class Role(_Strict):
    id: Literal["players", "controller", "evaluator"]
    description: Text
    tocsin_roles: list[Literal["operator", "approver", "planner", "evaluator", "admin"]] = []


class Area(_Strict):
    id: Annotated[str, Field(max_length=64, pattern=ID)]
    name: Name
    kind: Literal[
        "flood_zone",
        "blackout_district",
        "plume_footprint",
        "shaking_zone",
        "fire_zone",
        "outage_zone",
        "evacuation_zone",
        "district",
    ]
    geometry: dict[str, Any]

    @field_validator("geometry")
    @classmethod
    def _polygon(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            geo.validate_geojson_area(value)
            geo.check_simple_area(value)
        except geo.GeometryError as exc:
            raise ValueError(f"{exc.field}: {exc}") from None
        return value


class Share(_Strict):
    area: str
    share: Annotated[float, Field(gt=0, le=1)]


class LanguageShare(_Strict):
    lang: Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]
    share: Annotated[float, Field(gt=0, le=1)]


class Behaviour(_Strict):
    connected_share: Annotated[float, Field(ge=0, le=1)] = 0.9
    ack_rate: Annotated[float, Field(ge=0, le=1)] = 0.8
    ack_delay_seconds: tuple[float, float] = (5, 180)
    checkin_rate: Annotated[float, Field(ge=0, le=1)] = 0.5
    need_help_share: Annotated[float, Field(ge=0, le=1)] = 0.05


class Population(_Strict):
    size: Annotated[int, Field(ge=10, le=100_000)]
    distribution: Annotated[list[Share], Field(min_length=1)]
    languages: Annotated[list[LanguageShare], Field(min_length=1)]
    vulnerable_share: Annotated[float, Field(ge=0, le=1)]
    behaviour: Behaviour = Behaviour()

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> Population:
        for name, shares in (("distribution", self.distribution), ("languages", self.languages)):
            total = sum(s.share for s in shares)
            if abs(total - 1) > 0.011:
                raise ValueError(f"{name}: shares add up to {total:.2f}, not 1")
        return self


class ReportWave(_Strict):
    area: str
    category: ReportCategory
    count: Annotated[int, Field(ge=1, le=10_000)]
    over_minutes: Annotated[int, Field(ge=0, le=600)] = 10
    texts: Annotated[list[Text], Field(min_length=1)] = Field(description="what the synthetic citizens write")


class Failure(_Strict):
    service: Literal["power", "telecom", "internet", "water", "roads"]
    area: str
    share: Annotated[float, Field(gt=0, le=1)] = Field(description="share of the area's population affected")
    until: Annotated[str, Field(pattern=OFFSET)] | None = None


class ExpectedAction(_Strict):
    id: Annotated[str, Field(pattern=r"^A\d+$")]
    kind: ActionKind
    description: Text
    by: Annotated[str, Field(pattern=OFFSET)] = Field(description="deadline, scenario time")
    area: str | None = None
    template: str | None = None


class Inject(_Strict):
    number: Annotated[int, Field(ge=1, le=9_999)]
    at: Annotated[str, Field(pattern=OFFSET)]
    type: InjectType
    title: Name
    content: Text
    to: Literal["players", "controller", "evaluator"] = "players"
    expected_actions: list[ExpectedAction] = []
    objectives: list[str] = []
    reports: ReportWave | None = None
    failure: Failure | None = None

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Inject:
        if self.type == "citizen_reports" and self.reports is None:
            raise ValueError(f"inject {self.number}: a citizen_reports inject needs `reports`")
        if self.type == "infrastructure_failure" and self.failure is None:
            raise ValueError(f"inject {self.number}: an infrastructure_failure inject needs `failure`")
        return self


class Contingency(_Strict):
    """If the expected action `if_missing` has not happened by `at`, `inject` fires."""

    if_missing: Annotated[str, Field(pattern=r"^A\d+$")]
    at: Annotated[str, Field(pattern=OFFSET)]
    inject: Inject


class ScriptedAction(_Strict):
    """A player action the exercise performs itself, so it can run unattended (demos, tests)."""

    at: Annotated[str, Field(pattern=OFFSET)]
    kind: ActionKind
    fulfils: list[str] = Field(default=[], description="expected action ids this performs")
    template: str | None = None
    area: str | None = None
    languages: list[str] = []
    variables: dict[str, str] = {}
    note: Text | None = None


class Scenario(_Strict):
    id: Annotated[str, Field(max_length=48, pattern=ID)]
    title: Name
    hazard: Name
    place: Place
    summary: Text
    sources: Annotated[list[Name], Field(min_length=1)]
    objectives: Annotated[list[Objective], Field(min_length=1)]
    roles: Annotated[list[Role], Field(min_length=3)]
    areas: Annotated[list[Area], Field(min_length=1)]
    population: Population
    timeline: Annotated[list[Inject], Field(min_length=12)]
    contingencies: list[Contingency] = []
    scripted_actions: list[ScriptedAction] = []
    duration: Annotated[str, Field(pattern=OFFSET)]


def load_scenario(path: Path) -> Scenario:
    scenario = Scenario.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    if scenario.id != path.stem:
        raise ValueError(f"{path.name}: id '{scenario.id}' differs from the file name")
    return scenario


class _Problems(list[str]):
    def need(self, kind: str, value: str | None, known: set[str], where: str) -> None:
        if value is not None and value not in known:
            self.append(f"{where}: unknown {kind} '{value}'")


def _all_injects(scenario: Scenario) -> list[Inject]:
    return [*scenario.timeline, *(c.inject for c in scenario.contingencies)]


def _duplicates(scenario: Scenario) -> list[str]:
    problems: list[str] = []
    injects = _all_injects(scenario)
    action_ids = [a.id for inject in injects for a in inject.expected_actions]
    if len({a.id for a in scenario.areas}) != len(scenario.areas):
        problems.append("areas: duplicate id")
    if len({r.id for r in scenario.roles}) != len(scenario.roles):
        problems.append("roles: duplicate id")
    numbers = [i.number for i in injects]
    if len(set(numbers)) != len(numbers):
        problems.append("injects: duplicate number")
    if len(set(action_ids)) != len(action_ids):
        problems.append("expected actions: duplicate id")
    return problems


def _check_injects(scenario: Scenario, template_ids: set[str], problems: _Problems) -> None:
    areas = {a.id for a in scenario.areas}
    objectives = {o.id for o in scenario.objectives}
    end = minutes(scenario.duration)
    for inject in _all_injects(scenario):
        where = f"inject {inject.number}"
        if minutes(inject.at) > end:
            problems.append(f"{where}: after the end of the scenario")
        for objective in inject.objectives:
            problems.need("objective", objective, objectives, where)
        if inject.reports:
            problems.need("area", inject.reports.area, areas, where)
        if inject.failure:
            problems.need("area", inject.failure.area, areas, where)
        for action in inject.expected_actions:
            problems.need("area", action.area, areas, f"{where} {action.id}")
            problems.need("template", action.template, template_ids, f"{where} {action.id}")


def _check_actions(scenario: Scenario, template_ids: set[str], problems: _Problems) -> None:
    areas = {a.id for a in scenario.areas}
    action_ids = {a.id for inject in _all_injects(scenario) for a in inject.expected_actions}
    for contingency in scenario.contingencies:
        problems.need("expected action", contingency.if_missing, action_ids, f"contingency {contingency.inject.number}")
    for index, scripted in enumerate(scenario.scripted_actions):
        where = f"scripted_actions[{index}]"
        problems.need("area", scripted.area, areas, where)
        problems.need("template", scripted.template, template_ids, where)
        for action_id in scripted.fulfils:
            problems.need("expected action", action_id, action_ids, where)
        if minutes(scripted.at) > minutes(scenario.duration):
            problems.append(f"{where}: after the end of the scenario")


def check_references(scenario: Scenario, template_ids: set[str]) -> list[str]:
    """Everything a scenario names must exist in it (or in alerts/ for templates); times must be in order."""
    problems = _Problems(_duplicates(scenario))
    times = [minutes(i.at) for i in scenario.timeline]
    if times != sorted(times):
        problems.append("timeline: injects are not in time order")
    areas = {a.id for a in scenario.areas}
    for share in scenario.population.distribution:
        problems.need("area", share.area, areas, "population.distribution")
    _check_injects(scenario, template_ids, problems)
    _check_actions(scenario, template_ids, problems)
    if not any(role.id == "players" for role in scenario.roles):
        problems.append("roles: no players")
    if re.search(r"\{\{", scenario.summary):
        problems.append("summary: template markup")
    return list(problems)
