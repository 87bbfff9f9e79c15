"""The after-action report: what happened (timeline), what was measured, what evaluators said.

Reach: the affected population of an alert is the synthetic devices whose home lies in its area; reached is those
of them that had it in hand (receipts the synthetic citizens noted, live or on replay after a reconnection); the
times to 50 % and 90 % are scenario seconds after the alert went out. Acknowledgements and check-ins come from what
the devices answered through the protocol (alert_responses), as for a real alert.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

import numpy as np
import shapely
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.service import lint_alert
from tocsin.exercises import evaluation, service
from tocsin.exercises.evaluation import AlertDone, Evidence
from tocsin.exercises.scenario import Scenario, minutes
from tocsin.exercises.schemas import (
    AfterActionReport,
    AlertFigures,
    ExpectedActionOut,
    ImprovementOut,
    InjectToAlert,
    LintFindingOut,
    ObjectiveRating,
    ObservationKind,
    ObservationOut,
    PopulationFigures,
    Rating,
    ReachPoint,
    ReportFigures,
    ScenarioInfo,
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

CURVE_POINTS = 60


def observation_out(row: ExerciseObservation) -> ObservationOut:
    return ObservationOut(
        id=row.id,
        kind=ObservationKind(row.kind),
        objective=row.objective,
        inject=row.inject,
        text=row.text,
        author=row.author,
        scenario_seconds=round(row.scenario_seconds, 1),
        at=row.at,
    )


def rating_out(
    exercise: Exercise, row: ExerciseRating | None, objective: dict[str, Any] | None = None
) -> ObjectiveRating:
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


def improvement_out(row: ExerciseImprovement) -> ImprovementOut:
    return ImprovementOut(
        id=row.id,
        objective=row.objective,
        issue=row.issue,
        corrective_action=row.corrective_action,
        owner=row.owner,
        due=row.due,
    )


def _time_to(share: float, delays: list[float], affected: int) -> float | None:
    needed = math.ceil(share * affected)
    if affected == 0 or len(delays) < needed:
        return None
    return round(delays[needed - 1], 1)


def _curve(delays: list[float], affected: int) -> list[ReachPoint]:
    if not affected or not delays:
        return []
    step = max(1, len(delays) // CURVE_POINTS)
    points = [ReachPoint(seconds=0.0, share=0.0)]
    points += [ReachPoint(seconds=round(d, 1), share=round((i + 1) / affected, 4)) for i, d in enumerate(delays)][
        ::step
    ]
    last = ReachPoint(seconds=round(delays[-1], 1), share=round(len(delays) / affected, 4))
    if points[-1] != last:
        points.append(last)
    return points


async def _alert_figures(session: AsyncSession, alert: AlertDone, homes: Any) -> AlertFigures:
    ids, xs, ys = homes
    inside = (
        shapely.contains_xy(alert.geometry, xs, ys) if alert.geometry is not None and len(ids) else np.zeros(0, bool)
    )
    affected_ids = set(ids[inside].tolist()) if len(ids) else set()
    receipts = (
        await session.execute(
            select(ExerciseReceipt.device_id, ExerciseReceipt.scenario_seconds).where(
                ExerciseReceipt.alert_id == alert.alert_id
            )
        )
    ).all()
    delays = sorted(max(0.0, s - alert.seconds) for device, s in receipts if device in affected_ids)
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
    affected = len(affected_ids)
    reached_total = len(receipts)  # every synthetic device that had it, in its area or not
    return AlertFigures(
        alert_id=alert.alert_id,
        headline=alert.headline,
        event=alert.event,
        msg_type=alert.msg_type,
        issued_seconds=round(alert.seconds, 1),
        affected=affected,
        reached=len(delays),
        reached_share=round(len(delays) / affected, 4) if affected else None,
        seconds_to_50=_time_to(0.5, delays, affected),
        seconds_to_90=_time_to(0.9, delays, affected),
        acknowledged=int(responses[0]),
        ack_rate=round(responses[0] / reached_total, 4) if reached_total else None,
        checked_in=int(responses[1]),
        checkin_rate=round(responses[1] / reached_total, 4) if reached_total else None,
        need_help=int(responses[2]),
        reach_curve=_curve(delays, affected),
    )


def _inject_to_alert(scenario: Scenario, evidence: Evidence) -> list[InjectToAlert]:
    shapes = evaluation.area_shapes(scenario)
    out: list[InjectToAlert] = []
    for inject, action in evaluation.expected_actions(scenario):
        if action.kind != "issue_alert" or inject.number not in evidence.injects_fired:
            continue
        fired = evidence.injects_fired[inject.number]
        area = shapes.get(action.area) if action.area else None
        first = next(
            (
                a
                for a in evidence.alerts
                if a.msg_type == "Alert"
                and a.seconds >= fired
                and (area is None or evaluation.covers_part_of(a.geometry, area))
            ),
            None,
        )
        deadline = minutes(action.by) * 60.0
        out.append(
            InjectToAlert(
                inject=inject.number,
                inject_title=inject.title,
                action=action.id,
                area=action.area,
                inject_seconds=round(fired, 1),
                deadline_seconds=deadline,
                alert_id=first.alert_id if first else None,
                alert_headline=first.headline if first else None,
                minutes_to_alert=round((first.seconds - fired) / 60, 1) if first else None,
                on_time=(first.seconds <= deadline) if first else None,
            )
        )
    return out


def _expected(scenario: Scenario, evidence: Evidence) -> list[ExpectedActionOut]:
    shapes = evaluation.area_shapes(scenario)
    fired_contingencies = {e.number for e in evidence.events if e.kind == "contingency"}
    contingency_for = {c.if_missing: c.inject.number for c in scenario.contingencies}
    out: list[ExpectedActionOut] = []
    for inject, action in evaluation.expected_actions(scenario):
        if inject.number not in evidence.injects_fired:
            continue
        after = evidence.injects_fired[inject.number]
        done = evidence.done(action, after=after, area=shapes.get(action.area) if action.area else None)
        deadline = minutes(action.by) * 60.0
        contingency = contingency_for.get(action.id)
        out.append(
            ExpectedActionOut(
                id=action.id,
                kind=action.kind,
                description=action.description,
                inject=inject.number,
                deadline_seconds=deadline,
                done_seconds=round(done[0], 1) if done else None,
                done_by=done[1] if done else None,
                on_time=(done[0] <= deadline) if done else None,
                contingency_fired=contingency if contingency in fired_contingencies else None,
            )
        )
    return out


async def _reports(session: AsyncSession, exercise: Exercise) -> ReportFigures:
    rows = (
        await session.execute(
            select(Report.category, Report.status, Report.received_at, Report.status_at).where(
                Report.exercise_id == exercise.id
            )
        )
    ).all()
    triage_minutes = [
        (status_at - received_at).total_seconds() * exercise.speed / 60
        for _, status, received_at, status_at in rows
        if status != "new" and status_at is not None
    ]
    return ReportFigures(
        received=len(rows),
        triaged=sum(1 for row in rows if row.status != "new"),
        by_category=dict(Counter(row.category for row in rows)),
        by_status=dict(Counter(row.status for row in rows)),
        median_minutes_to_triage=round(statistics.median(triage_minutes), 1) if triage_minutes else None,
    )


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


async def _population(session: AsyncSession, exercise: Exercise) -> tuple[PopulationFigures, Any]:
    rows = (
        await session.execute(
            select(
                ExerciseDevice.device_id,
                ExerciseDevice.lon,
                ExerciseDevice.lat,
                ExerciseDevice.area,
                ExerciseDevice.lang,
                ExerciseDevice.vulnerable,
            ).where(ExerciseDevice.exercise_id == exercise.id)
        )
    ).all()
    homes = (
        np.array([r.device_id for r in rows], dtype=object),
        np.array([r.lon for r in rows], dtype=float),
        np.array([r.lat for r in rows], dtype=float),
    )
    figures = PopulationFigures(
        devices=len(rows),
        by_area=dict(Counter(r.area for r in rows)),
        by_language=dict(Counter(r.lang for r in rows)),
        vulnerable=sum(1 for r in rows if r.vulnerable),
        lost_connection=int(exercise.stats.get("lost_connection", 0)),
        queued_reports_resent=int(exercise.stats.get("queued_reports_resent", 0)),
    )
    return figures, homes


async def _evaluation(session: AsyncSession, exercise: Exercise) -> tuple[list[Any], list[Any], list[Any]]:
    def of(model: Any) -> Any:
        return select(model).where(model.exercise_id == exercise.id).order_by(model.id)

    ratings = {r.objective: r for r in (await session.execute(of(ExerciseRating))).scalars()}
    observations = [observation_out(o) for o in (await session.execute(of(ExerciseObservation))).scalars()]
    plan = [improvement_out(i) for i in (await session.execute(of(ExerciseImprovement))).scalars()]
    rated = [rating_out(exercise, ratings.get(o["id"]), o) for o in exercise.scenario["objectives"]]
    return rated, observations, plan


async def build_report(session: AsyncSession, *, exercise: Exercise) -> AfterActionReport:
    scenario = service.scenario_of(exercise)
    evidence = await evaluation.gather(session, exercise_id=exercise.id)
    population, homes = await _population(session, exercise)
    alerts = [await _alert_figures(session, alert, homes) for alert in evidence.alerts]
    ratings, observations, plan = await _evaluation(session, exercise)
    return AfterActionReport(
        exercise=service.exercise_out(exercise, fired=len(evidence.injects_fired)),
        scenario=ScenarioInfo(
            id=scenario.id,
            title=scenario.title,
            hazard=scenario.hazard,
            place=scenario.place.name,
            summary=scenario.summary,
            objectives=[o.model_dump() for o in scenario.objectives],
        ),
        generated_at=clock.now(),
        timeline=[service.timeline_entry(e) for e in evidence.events],
        inject_to_alert=_inject_to_alert(scenario, evidence),
        alerts=alerts,
        population=population,
        reports=await _reports(session, exercise),
        expected_actions=_expected(scenario, evidence),
        glossary_findings=await _lint(session, evidence.alerts),
        ratings=ratings,
        observations=observations,
        strengths=[o.text for o in observations if o.kind is ObservationKind.strength],
        areas_for_improvement=[o.text for o in observations if o.kind is ObservationKind.improvement],
        improvement_plan=plan,
    )
