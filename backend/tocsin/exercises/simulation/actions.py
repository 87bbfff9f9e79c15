"""Scripted player actions: what a scenario's `scripted_actions` make the exercise do itself, through the same
services the players' tools call (draft from a template, approve, issue; update; cancel; triage). They act in the
name of the planner who created the exercise, so the audit log says who set them going."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts import service as alerts
from tocsin.alerts import templates
from tocsin.alerts.schemas import AlertDraftIn, AlertState, Area, FollowUpIn, FromTemplateIn, Status
from tocsin.config import Settings
from tocsin.errors import AppError
from tocsin.exercises.scenario import Scenario, ScriptedAction
from tocsin.kernel.channels import REPORTS_CHANNEL
from tocsin.kernel.work import UnitOfWork
from tocsin.models import Alert, AlertArea, Exercise, Report, User
from tocsin.reports import service as reports
from tocsin.reports.schemas import ReportStatus, StatusChange

TRIAGE_BATCH = 200


class ActionFailed(Exception):
    """The scripted action could not be done (a template variable missing, nothing to update): on the timeline."""


@dataclass(frozen=True)
class Scripted:
    """One scripted action to perform, and everything it needs."""

    work: UnitOfWork
    exercise: Exercise
    scenario: Scenario
    action: ScriptedAction
    actor: User
    settings: Settings
    templates_dir: Path

    def draft(self, template_id: str, area: Area) -> AlertDraftIn:
        """The action's template rendered with its variables, in its languages, over `area`, as an Exercise alert."""
        template = templates.get_template(self.templates_dir, template_id)
        wanted = self.action.languages or [language.lang for language in self.scenario.population.languages]
        languages = [language for language in wanted if language in template.texts] or list(template.texts)[:1]
        request = FromTemplateIn(
            template=template.id,
            languages=languages,
            variables=self.action.variables,
            area=area,
            status=Status.exercise,
            exercise_id=self.exercise.id,
        )
        return templates.draft_from_template(
            template, request, sender_name=self.settings.cap_sender_name, now_plus=lambda d: alerts.utcnow() + d
        )

    @property
    def session(self) -> AsyncSession:
        return self.work.session

    async def approve_and_issue(self, alert: Alert) -> Alert:
        await alerts.approve(self.session, alert_id=alert.id, approver=self.actor)
        return await alerts.issue(self.work, alert_id=alert.id, issuer=self.actor)


async def issue_from_template(job: Scripted) -> Alert:
    action = job.action
    if action.template is None or action.area is None:
        raise ActionFailed("issue_alert needs a template and an area")
    area = next(a for a in job.scenario.areas if a.id == action.area)
    draft = job.draft(action.template, Area(areaDesc=area.name, geometry=area.geometry))
    alert = await alerts.create_draft(
        job.session, body=draft, author=job.actor, settings=job.settings, origin="template", template_id=action.template
    )
    return await job.approve_and_issue(alert)


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


async def follow_up(job: Scripted) -> Alert:
    action = job.action
    area = next((a for a in job.scenario.areas if a.id == action.area), None)
    earlier = await _latest_active(job.session, job.exercise, action.template, area.name if area else None)
    kind: Literal["update", "cancel"] = "update" if action.kind == "update_alert" else "cancel"
    body = FollowUpIn(note=action.note)
    if kind == "update" and action.template is not None and action.variables:  # new texts from the template
        areas = (earlier.content.get("info") or [{}])[0].get("area") or []
        over = Area.model_validate(areas[0]) if areas else Area(areaDesc=earlier.identifier)
        body = FollowUpIn(info=job.draft(action.template, over).info, note=action.note)
    draft = await alerts.start_follow_up(
        job.session, alert_id=earlier.id, kind=kind, body=body, author=job.actor, settings=job.settings
    )
    return await job.approve_and_issue(draft)


async def triage(work: UnitOfWork, *, exercise: Exercise, actor: User) -> int:
    """Verify the exercise's new reports (up to a batch); the operator consoles hear of each after commit. Returns
    how many were verified."""
    session = work.session
    rows = (
        await session.execute(
            select(Report.id)
            .where(Report.exercise_id == exercise.id, Report.status == ReportStatus.new.value)
            .order_by(Report.id)
            .limit(TRIAGE_BATCH)
        )
    ).scalars()
    change = StatusChange(status=ReportStatus.verified)
    verified = 0
    for report_id in list(rows):
        changed = await reports.set_status(session, report_id=report_id, change=change, actor=actor)
        work.publish_after_commit(REPORTS_CHANNEL, reports.status_event(*changed))
        verified += 1
    return verified


async def perform(job: Scripted) -> tuple[str, uuid.UUID | None]:
    """Do it in the job's unit of work (its events go out after the caller commits); returns (what was done, the
    alert made)."""
    action = job.action
    try:
        if action.kind == "issue_alert":
            alert = await issue_from_template(job)
            return f"issued {action.template} over {action.area}", alert.id
        if action.kind in ("update_alert", "cancel_alert"):
            alert = await follow_up(job)
            return f"{alert.msg_type} of {alert.references_alert_id}", alert.id
        if action.kind == "triage_reports":
            verified = await triage(job.work, exercise=job.exercise, actor=job.actor)
            return f"verified {verified} reports", None
        return action.note or "responded", None
    except AppError as exc:
        raise ActionFailed(f"{exc.message}" + (f" ({exc.field})" if exc.field else "")) from None
    except ValueError as exc:  # a scenario value the alert schemas refuse (pydantic's ValidationError is one)
        raise ActionFailed(str(exc).splitlines()[0]) from None
