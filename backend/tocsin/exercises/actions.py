"""Scripted player actions: what a scenario's `scripted_actions` make the exercise do itself, through the same
services the players' tools call (draft from a template, approve, issue; update; cancel; triage). They act in the
name of the planner who created the exercise, so the audit log says who set them going."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts import service as alerts
from tocsin.alerts import templates
from tocsin.alerts.schemas import AlertState, Area, FollowUpIn, FromTemplateIn, Status
from tocsin.alerts.service import AlertEventOut
from tocsin.config import Settings
from tocsin.errors import AppError
from tocsin.exercises.scenario import Scenario, ScriptedAction
from tocsin.models import Alert, AlertArea, Exercise, Report, User
from tocsin.reports import service as reports
from tocsin.reports.schemas import ReportStatus, StatusChange

TRIAGE_BATCH = 200


class ActionFailed(Exception):
    """The scripted action could not be done (a template variable missing, nothing to update): on the timeline."""


def _languages(action: ScriptedAction, scenario: Scenario, available: list[str]) -> list[str]:
    wanted = action.languages or [language.lang for language in scenario.population.languages]
    chosen = [language for language in wanted if language in available]
    return chosen or available[:1]


async def issue_from_template(
    session: AsyncSession,
    *,
    exercise: Exercise,
    scenario: Scenario,
    action: ScriptedAction,
    actor: User,
    settings: Settings,
    templates_dir: Path,
) -> tuple[Alert, list[AlertEventOut]]:
    if action.template is None or action.area is None:
        raise ActionFailed("issue_alert needs a template and an area")
    template = templates.get_template(templates_dir, action.template)
    area = next(a for a in scenario.areas if a.id == action.area)
    request = FromTemplateIn(
        template=template.id,
        languages=_languages(action, scenario, list(template.texts)),
        variables=action.variables,
        area=Area(areaDesc=area.name, geometry=area.geometry),
        status=Status.exercise,
        exercise_id=exercise.id,
    )
    draft = templates.draft_from_template(
        template, request, sender_name=settings.cap_sender_name, now_plus=lambda delta: alerts.utcnow() + delta
    )
    alert = await alerts.create_draft(
        session, body=draft, author=actor, settings=settings, origin="template", template_id=template.id
    )
    await alerts.approve(session, alert_id=alert.id, approver=actor)
    return await alerts.issue(session, alert_id=alert.id, issuer=actor)


async def _latest_active(
    session: AsyncSession, exercise: Exercise, template: str | None, area_name: str | None
) -> Alert:
    """The exercise alert an update or cancel speaks for: the newest active one over the action's area (and from its
    template), else the newest from the template, else the newest."""
    statement = (
        select(Alert)
        .where(
            Alert.exercise_id == exercise.id,
            Alert.state == AlertState.issued.value,
            Alert.msg_type.in_(alerts.ACTIVE_MSG_TYPES),
        )
        .order_by(Alert.issued_at.desc())
    )
    found = list((await session.execute(statement)).scalars())
    over_area: set[Any] = set()
    if area_name is not None and found:
        rows = await session.execute(
            select(AlertArea.alert_id).where(
                AlertArea.alert_id.in_([a.id for a in found]), AlertArea.area_desc == area_name
            )
        )
        over_area = set(rows.scalars())
    for candidates in (
        [a for a in found if a.id in over_area and (template is None or a.template_id == template)],
        [a for a in found if a.id in over_area],
        [a for a in found if template is not None and a.template_id == template],
        found,
    ):
        if candidates:
            return candidates[0]
    raise ActionFailed("no active exercise alert to follow up")


async def follow_up(
    session: AsyncSession,
    *,
    exercise: Exercise,
    scenario: Scenario,
    action: ScriptedAction,
    actor: User,
    settings: Settings,
    templates_dir: Path,
) -> tuple[Alert, list[AlertEventOut]]:
    area = next((a for a in scenario.areas if a.id == action.area), None)
    earlier = await _latest_active(session, exercise, action.template, area.name if area else None)
    kind: Literal["update", "cancel"] = "update" if action.kind == "update_alert" else "cancel"
    body = FollowUpIn(note=action.note)
    if kind == "update" and action.template is not None and action.variables:  # new texts from the template
        template = templates.get_template(templates_dir, action.template)
        areas = (earlier.content.get("info") or [{}])[0].get("area") or []
        request = FromTemplateIn(
            template=template.id,
            languages=_languages(action, scenario, list(template.texts)),
            variables=action.variables,
            area=Area.model_validate(areas[0]) if areas else Area(areaDesc=earlier.identifier),
            status=Status.exercise,
            exercise_id=exercise.id,
        )
        draft_in = templates.draft_from_template(
            template, request, sender_name=settings.cap_sender_name, now_plus=lambda delta: alerts.utcnow() + delta
        )
        body = FollowUpIn(info=draft_in.info, note=action.note)
    draft = await alerts.start_follow_up(
        session, alert_id=earlier.id, kind=kind, body=body, author=actor, settings=settings
    )
    await alerts.approve(session, alert_id=draft.id, approver=actor)
    return await alerts.issue(session, alert_id=draft.id, issuer=actor)


async def triage(session: AsyncSession, *, exercise: Exercise, actor: User) -> list[dict[str, Any]]:
    """Verify the exercise's new reports (up to a batch); returns the status events to publish after commit."""
    rows = (
        await session.execute(
            select(Report.id)
            .where(Report.exercise_id == exercise.id, Report.status == ReportStatus.new.value)
            .order_by(Report.id)
            .limit(TRIAGE_BATCH)
        )
    ).scalars()
    change = StatusChange(status=ReportStatus.verified)
    return [
        reports.status_event(await reports.set_status(session, report_id=report_id, change=change, actor=actor))
        for report_id in list(rows)
    ]


async def perform(
    session: AsyncSession,
    *,
    exercise: Exercise,
    scenario: Scenario,
    action: ScriptedAction,
    actor: User,
    settings: Settings,
    templates_dir: Path,
) -> tuple[str, list[AlertEventOut], list[dict[str, Any]], uuid.UUID | None]:
    """Do it; returns (what was done, alert events, report status events, the alert made)."""
    try:
        if action.kind == "issue_alert":
            alert, events = await issue_from_template(
                session,
                exercise=exercise,
                scenario=scenario,
                action=action,
                actor=actor,
                settings=settings,
                templates_dir=templates_dir,
            )
            return f"issued {action.template} over {action.area}", events, [], alert.id
        if action.kind in ("update_alert", "cancel_alert"):
            alert, events = await follow_up(
                session,
                exercise=exercise,
                scenario=scenario,
                action=action,
                actor=actor,
                settings=settings,
                templates_dir=templates_dir,
            )
            return f"{alert.msg_type} of {alert.references_alert_id}", events, [], alert.id
        if action.kind == "triage_reports":
            changed = await triage(session, exercise=exercise, actor=actor)
            return f"verified {len(changed)} reports", [], changed, None
        return action.note or "responded", [], [], None
    except AppError as exc:
        raise ActionFailed(f"{exc.message}" + (f" ({exc.field})" if exc.field else "")) from None
    except ValueError as exc:  # a scenario value the alert schemas refuse (pydantic's ValidationError is one)
        raise ActionFailed(str(exc).splitlines()[0]) from None
