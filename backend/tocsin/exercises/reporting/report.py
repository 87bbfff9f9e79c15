"""The after-action report: what happened (timeline), what was measured (figures.py), what evaluators said.

Built in two steps: everything the report is made of is read from the database first (`read_report`), then the
figures are computed from those rows with no session (`compute_report`), in a thread: that part is CPU only, and the
worker's other requests need not wait for it. (Measured with 1,500 devices and 12 alerts: reading 0.1-0.3 s,
computing 0.02-0.06 s, the HTML page 0.1 s; the first report after a start also builds the glossary's linter,
about a second, inside `alerts.service.lint_alert`.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.service import lint_alert
from tocsin.exercises import evaluation, evaluators, service
from tocsin.exercises.evaluation import AlertDone, Evidence
from tocsin.exercises.reporting import figures
from tocsin.exercises.scenario import Scenario
from tocsin.exercises.schemas import (
    AfterActionReport,
    ExerciseOut,
    ImprovementOut,
    LintFindingOut,
    ObjectiveRating,
    ObservationKind,
    ObservationOut,
    ScenarioInfo,
    TimelineEntry,
)
from tocsin.kernel import exercise_clock as clock
from tocsin.models import (
    AlertResponse,
    Exercise,
    ExerciseDevice,
    ExerciseImprovement,
    ExerciseObservation,
    ExerciseRating,
    ExerciseReceipt,
    Report,
)


@dataclass(frozen=True)
class ReportRows:
    """Everything the report is made of, as read from the database: computing it needs no session."""

    exercise: ExerciseOut
    scenario: Scenario
    stats: dict[str, Any]
    speed: float
    evidence: Evidence
    timeline: list[TimelineEntry]
    devices: list[Any]  # (device_id, lon, lat, area, lang, vulnerable)
    answers: list[figures.AlertAnswers]  # one per evidence.alerts, in that order
    reports: list[tuple[str, str, datetime, datetime | None]]
    lint: list[LintFindingOut]
    ratings: list[ObjectiveRating]
    observations: list[ObservationOut]
    improvement_plan: list[ImprovementOut]


async def build_report(session: AsyncSession, *, exercise: Exercise) -> AfterActionReport:
    rows = await read_report(session, exercise=exercise)
    return await asyncio.to_thread(compute_report, rows)


async def read_report(session: AsyncSession, *, exercise: Exercise) -> ReportRows:
    evidence = await evaluation.gather(session, exercise_id=exercise.id)
    ratings, observations, plan = await _evaluation(session, exercise)
    return ReportRows(
        exercise=service.exercise_out(exercise, fired=len(evidence.injects_fired)),
        scenario=service.scenario_of(exercise),
        stats=dict(exercise.stats),
        speed=exercise.speed,
        evidence=evidence,
        timeline=[TimelineEntry.model_validate(e) for e in evidence.events],
        devices=await _devices(session, exercise.id),
        answers=[await _answers(session, alert) for alert in evidence.alerts],
        reports=await _reports(session, exercise.id),
        lint=await _lint(session, evidence.alerts),
        ratings=ratings,
        observations=observations,
        improvement_plan=plan,
    )


def compute_report(rows: ReportRows) -> AfterActionReport:
    scenario, evidence = rows.scenario, rows.evidence
    population, homes = figures.population_figures(rows.devices, rows.stats)
    return AfterActionReport(
        exercise=rows.exercise,
        scenario=ScenarioInfo(
            id=scenario.id,
            title=scenario.title,
            hazard=scenario.hazard,
            place=scenario.place.name,
            summary=scenario.summary,
            objectives=[o.model_dump() for o in scenario.objectives],
        ),
        generated_at=clock.now(),
        timeline=rows.timeline,
        inject_to_alert=figures.inject_to_alert(scenario, evidence),
        alerts=[
            figures.alert_figures(alert, homes, answers)
            for alert, answers in zip(evidence.alerts, rows.answers, strict=True)
        ],
        population=population,
        reports=figures.report_figures(rows.reports, speed=rows.speed),
        expected_actions=figures.expected_actions(scenario, evidence),
        glossary_findings=rows.lint,
        ratings=rows.ratings,
        observations=rows.observations,
        strengths=[o.text for o in rows.observations if o.kind is ObservationKind.strength],
        areas_for_improvement=[o.text for o in rows.observations if o.kind is ObservationKind.improvement],
        improvement_plan=rows.improvement_plan,
    )


async def _answers(session: AsyncSession, alert: AlertDone) -> figures.AlertAnswers:
    receipts = await session.execute(
        select(ExerciseReceipt.device_id, ExerciseReceipt.scenario_seconds).where(
            ExerciseReceipt.alert_id == alert.alert_id
        )
    )
    # Answers of the synthetic devices that had the alert (participants' own phones are not in the rates).
    had_it = select(ExerciseReceipt.device_id).where(ExerciseReceipt.alert_id == alert.alert_id)
    responses = (
        await session.execute(
            select(
                func.count(AlertResponse.acknowledged_at),
                func.count(AlertResponse.checkin),
                func.count().filter(AlertResponse.checkin == "need_help"),
            ).where(AlertResponse.alert_id == alert.alert_id, AlertResponse.device_id.in_(had_it))
        )
    ).one()
    return figures.AlertAnswers(
        receipts=[(device, seconds) for device, seconds in receipts],
        acknowledged=int(responses[0]),
        checked_in=int(responses[1]),
        need_help=int(responses[2]),
    )


async def _devices(session: AsyncSession, exercise_id: str) -> list[Any]:
    statement = select(
        ExerciseDevice.device_id,
        ExerciseDevice.lon,
        ExerciseDevice.lat,
        ExerciseDevice.area,
        ExerciseDevice.lang,
        ExerciseDevice.vulnerable,
    ).where(ExerciseDevice.exercise_id == exercise_id)
    return list((await session.execute(statement)).all())


async def _reports(session: AsyncSession, exercise_id: str) -> list[tuple[str, str, datetime, datetime | None]]:
    statement = select(Report.category, Report.status, Report.received_at, Report.status_at).where(
        Report.exercise_id == exercise_id
    )
    return [
        (category, status, received, changed)
        for category, status, received, changed in await session.execute(statement)
    ]


async def _lint(session: AsyncSession, alerts: list[AlertDone]) -> list[LintFindingOut]:
    findings: list[LintFindingOut] = []
    for alert in alerts:
        if alert.msg_type == "Cancel":
            continue
        linted = await lint_alert(session, alert_id=alert.alert_id)
        for info in linted.infos:
            for field, items in info.fields.items():
                findings += [
                    LintFindingOut(
                        alert_id=alert.alert_id,
                        headline=alert.headline,
                        language=info.language,
                        field=field,
                        kind=item.kind.value,
                        text=item.text,
                        preferred=item.preferred,
                        concept_id=item.concept_id,
                    )
                    for item in items
                ]
    return findings


async def _evaluation(
    session: AsyncSession, exercise: Exercise
) -> tuple[list[ObjectiveRating], list[ObservationOut], list[ImprovementOut]]:
    def of(model: Any) -> Any:
        return select(model).where(model.exercise_id == exercise.id).order_by(model.id)

    ratings = {r.objective: r for r in (await session.execute(of(ExerciseRating))).scalars()}
    observations = [
        ObservationOut.model_validate(o) for o in (await session.execute(of(ExerciseObservation))).scalars()
    ]
    plan = [ImprovementOut.model_validate(i) for i in (await session.execute(of(ExerciseImprovement))).scalars()]
    rated = [evaluators.rating_out(exercise, ratings.get(o["id"]), o) for o in exercise.scenario["objectives"]]
    return rated, observations, plan
