"""The measured figures of the after-action report, computed from rows already read (no database here).

Reach: the affected population of an alert is the synthetic devices whose home lies in its area; reached is those
of them that had it in hand (receipts the synthetic citizens noted, live or on replay after a reconnection); the
times to 50 % and 90 % are scenario seconds after the alert went out. Acknowledgements and check-ins come from what
the devices answered through the protocol (alert_responses), as for a real alert.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from tocsin.exercises import evaluation
from tocsin.exercises.evaluation import AlertDone, Evidence
from tocsin.exercises.scenario import Scenario, minutes
from tocsin.exercises.schemas import (
    AlertFigures,
    ExpectedActionOut,
    InjectToAlert,
    PopulationFigures,
    ReachPoint,
    ReportFigures,
)

CURVE_POINTS = 60


@dataclass(frozen=True)
class Homes:
    """Where the synthetic devices live: ids and coordinates side by side, for one vectorised test per alert area."""

    device_ids: npt.NDArray[np.object_]
    lons: npt.NDArray[np.float64]
    lats: npt.NDArray[np.float64]

    def inside(self, alert: AlertDone) -> set[str]:
        if alert.geometry is None or not len(self.device_ids):
            return set()
        inside = shapely.contains_xy(alert.geometry, self.lons, self.lats)
        return set(self.device_ids[inside].tolist())


@dataclass(frozen=True)
class AlertAnswers:
    """What the synthetic devices did with one alert: (device, scenario seconds) receipts, and how many of those that
    had it acknowledged, checked in, and asked for help."""

    receipts: Sequence[tuple[str, float]]
    acknowledged: int
    checked_in: int
    need_help: int


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


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def alert_figures(alert: AlertDone, homes: Homes, answers: AlertAnswers) -> AlertFigures:
    affected_ids = homes.inside(alert)
    delays = sorted(max(0.0, s - alert.seconds) for device, s in answers.receipts if device in affected_ids)
    affected = len(affected_ids)
    reached_total = len(answers.receipts)  # every synthetic device that had it, in its area or not
    return AlertFigures(
        alert_id=alert.alert_id,
        headline=alert.headline,
        event=alert.event,
        msg_type=alert.msg_type,
        issued_seconds=round(alert.seconds, 1),
        affected=affected,
        reached=len(delays),
        reached_share=_rate(len(delays), affected),
        seconds_to_50=_time_to(0.5, delays, affected),
        seconds_to_90=_time_to(0.9, delays, affected),
        acknowledged=answers.acknowledged,
        ack_rate=_rate(answers.acknowledged, reached_total),
        checked_in=answers.checked_in,
        checkin_rate=_rate(answers.checked_in, reached_total),
        need_help=answers.need_help,
        reach_curve=_curve(delays, affected),
    )


def inject_to_alert(scenario: Scenario, evidence: Evidence) -> list[InjectToAlert]:
    """For each expected issue_alert of an inject that fired: the first alert over its area after the inject."""
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


def expected_actions(scenario: Scenario, evidence: Evidence) -> list[ExpectedActionOut]:
    """Each expected action of an inject that fired: done or not, when, how, and the contingency its absence fired."""
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


def report_figures(rows: Sequence[tuple[str, str, datetime, datetime | None]], *, speed: float) -> ReportFigures:
    """The citizen reports of the exercise, from (category, status, received_at, status_at) rows."""
    triage_minutes = [
        (status_at - received_at).total_seconds() * speed / 60
        for _, status, received_at, status_at in rows
        if status != "new" and status_at is not None
    ]
    return ReportFigures(
        received=len(rows),
        triaged=sum(1 for row in rows if row[1] != "new"),
        by_category=dict(Counter(row[0] for row in rows)),
        by_status=dict(Counter(row[1] for row in rows)),
        median_minutes_to_triage=round(statistics.median(triage_minutes), 1) if triage_minutes else None,
    )


def population_figures(rows: Sequence[Any], stats: dict[str, Any]) -> tuple[PopulationFigures, Homes]:
    """The synthetic population, from (device_id, lon, lat, area, lang, vulnerable) rows and the runner's counters."""
    homes = Homes(
        device_ids=np.array([r.device_id for r in rows], dtype=object),
        lons=np.array([r.lon for r in rows], dtype=float),
        lats=np.array([r.lat for r in rows], dtype=float),
    )
    figures = PopulationFigures(
        devices=len(rows),
        by_area=dict(Counter(r.area for r in rows)),
        by_language=dict(Counter(r.lang for r in rows)),
        vulnerable=sum(1 for r in rows if r.vulnerable),
        lost_connection=int(stats.get("lost_connection", 0)),
        queued_reports_resent=int(stats.get("queued_reports_resent", 0)),
    )
    return figures, homes
