"""Did the players do what an inject expected, and when? Read from what the exercise recorded.

An expected action is done by the first of these after its inject fired: an entry naming it in `fulfils` (a scripted
action, or one a controller logged); for issue_alert an exercise Alert whose area meets the action's area; for
update_alert and cancel_alert an Update or Cancel; for triage_reports a status change of one of the exercise's
reports; for respond_to_inquiry a logged action of that kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shapely import unary_union
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import geo
from tocsin.exercises.scenario import ExpectedAction, Inject, Scenario
from tocsin.models import Alert, AlertArea, ExerciseEvent


@dataclass(frozen=True)
class AlertDone:
    alert_id: Any
    msg_type: str
    seconds: float
    headline: str
    event: str
    geometry: BaseGeometry | None


@dataclass
class Evidence:
    events: list[ExerciseEvent]
    alerts: list[AlertDone]
    injects_fired: dict[int, float]  # inject number -> scenario seconds

    def done(self, action: ExpectedAction, *, after: float, area: BaseGeometry | None) -> tuple[float, str] | None:
        """(scenario seconds, how) of the first thing that did `action` at or after `after`."""
        found: list[tuple[float, str]] = []
        for event in self.events:
            if event.scenario_seconds < after:
                continue
            if action.id in event.fulfils:
                found.append((event.scenario_seconds, event.kind))
            elif event.kind == "triage" and action.kind == "triage_reports":
                found.append((event.scenario_seconds, "triage"))
            elif (
                event.kind == "player_action"
                and action.kind == "respond_to_inquiry"
                and event.title == "Respond to inquiry"
            ):
                found.append((event.scenario_seconds, "player_action"))
        wanted = {"issue_alert": "Alert", "update_alert": "Update", "cancel_alert": "Cancel"}.get(action.kind)
        for alert in self.alerts:
            if alert.msg_type != wanted or alert.seconds < after:
                continue
            if area is not None and not covers_part_of(alert.geometry, area):
                continue
            found.append((alert.seconds, "alert"))
        return min(found) if found else None


def covers_part_of(geometry: BaseGeometry | None, area: BaseGeometry, share: float = 0.05) -> bool:
    """The alert area covers a real part of the scenario area (not just a shared border)."""
    return geometry is not None and geometry.intersection(area).area >= share * area.area


def area_shapes(scenario: Scenario) -> dict[str, BaseGeometry]:
    return {area.id: geo.from_geojson(area.geometry) for area in scenario.areas}


async def gather(session: AsyncSession, *, exercise_id: str) -> Evidence:
    events = list(
        (
            await session.execute(
                select(ExerciseEvent).where(ExerciseEvent.exercise_id == exercise_id).order_by(ExerciseEvent.id)
            )
        ).scalars()
    )
    alert_events = {e.alert_id: e for e in events if e.kind == "alert" and e.alert_id is not None}
    rows = await session.execute(select(Alert).where(Alert.id.in_(list(alert_events)))) if alert_events else None
    alerts: list[AlertDone] = []
    if rows is not None:
        found = list(rows.scalars())
        areas = await _geometries(session, [a.id for a in found])
        for alert in found:
            info = (alert.content.get("info") or [{}])[0]
            alerts.append(
                AlertDone(
                    alert_id=alert.id,
                    msg_type=alert.msg_type,
                    seconds=alert_events[alert.id].scenario_seconds,
                    headline=str(info.get("headline") or info.get("event") or alert.msg_type),
                    event=str(info.get("event") or ""),
                    geometry=areas.get(alert.id),
                )
            )
        alerts.sort(key=lambda a: a.seconds)
    fired = {e.number: e.scenario_seconds for e in events if e.kind in ("inject", "contingency") and e.number}
    return Evidence(events=events, alerts=alerts, injects_fired=fired)


async def _geometries(session: AsyncSession, alert_ids: list[Any]) -> dict[Any, BaseGeometry]:
    rows = await session.execute(select(AlertArea.alert_id, AlertArea.geom).where(AlertArea.alert_id.in_(alert_ids)))
    parts: dict[Any, list[BaseGeometry]] = {}
    for alert_id, geometry in rows:
        if geometry is not None:
            parts.setdefault(alert_id, []).append(geometry)
    return {alert_id: unary_union(shapes) for alert_id, shapes in parts.items()}


def expected_actions(scenario: Scenario) -> list[tuple[Inject, ExpectedAction]]:
    injects = [*scenario.timeline, *(c.inject for c in scenario.contingencies)]
    return [(inject, action) for inject in injects for action in inject.expected_actions]


async def is_done(session: AsyncSession, *, exercise_id: str, scenario: Scenario, action_id: str) -> bool:
    """For a contingency: has the expected action happened (at any time after its inject)?"""
    evidence = await gather(session, exercise_id=exercise_id)
    shapes = area_shapes(scenario)
    for inject, action in expected_actions(scenario):
        if action.id == action_id:
            after = evidence.injects_fired.get(inject.number, 0.0)
            area = shapes.get(action.area) if action.area else None
            return evidence.done(action, after=after, area=area) is not None
    return False
