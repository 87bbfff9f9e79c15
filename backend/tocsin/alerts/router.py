from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from tocsin.alerts import service, templates, views
from tocsin.alerts.cap import alert_to_xml
from tocsin.alerts.feed import CAP_MEDIA_TYPE, atom_feed
from tocsin.alerts.schemas import (
    AlertDraftIn,
    AlertEditIn,
    AlertOut,
    AlertState,
    FollowUpIn,
    FromTemplateIn,
    IssueIn,
    Status,
)
from tocsin.alerts.service import AlertQuery
from tocsin.auth.deps import Approver, Operator, OptionalUser, Staff
from tocsin.db import SessionDep
from tocsin.errors import InvalidInput, NotFound, UnsupportedMediaType, refusals, text_body
from tocsin.glossary.schemas import AlertLintOut
from tocsin.kernel.work import UnitOfWork, WorkDep
from tocsin.models import Alert, User

router = APIRouter(prefix="/api/v1", tags=["alerts"])
feeds = APIRouter(tags=["feeds"])
# The glossary's findings on an alert: listed with the glossary's routes in the API documentation.
lint_routes = APIRouter(prefix="/api/v1", tags=["glossary"])

CAP_BODY_TYPES = ("application/cap+xml", "application/xml", "text/xml")


def _base(request: Request) -> str:
    return str(request.app.state.settings.public_url)


def _visible(alert: Alert, user: User | None) -> bool:
    """The public sees issued, Actual, Public alerts; signed-in staff see everything."""
    if user is not None:
        return True
    return alert.status == Status.actual and alert.scope == "Public" and alert.state in service.PUBLIC_STATES


async def _visible_alert(session: SessionDep, alert_id: uuid.UUID, user: User | None) -> Alert:
    alert = await service.get_alert(session, alert_id=alert_id)
    if not _visible(alert, user):
        raise NotFound(f"no alert {alert_id}", code="alert_not_found")
    return alert


@router.get("/alerts")
async def list_alerts(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    active: bool | None = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    status: Status | None = None,
    state: AlertState | None = None,
    exercise_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> dict[str, Any]:
    """Alerts as a GeoJSON FeatureCollection. With `lat` and `lon`, only alerts whose area contains that point;
    with `active=true`, only issued, unexpired Alert/Update messages. Without a token, only public Actual alerts."""
    if (lat is None) != (lon is None):
        raise InvalidInput("lat and lon go together", field="lon" if lon is None else "lat")
    query = AlertQuery(
        active=active,
        lat=lat,
        lon=lon,
        status=status,
        state=state,
        public_only=user is None,
        exercise_id=exercise_id,
        limit=limit,
        offset=offset,
    )
    found = await service.find_alerts(session, query=query)
    return await views.feature_collection(session, found, _base(request))


@router.post("/alerts", response_model=AlertOut, status_code=201, responses=refusals(409))
async def create_alert(request: Request, work: WorkDep, user: Operator, body: AlertDraftIn) -> AlertOut:
    """Draft an alert: CAP 1.2 content, one `info` per language, areas as GeoJSON polygons and/or circles."""
    alert = await service.create_draft(work.session, body=body, author=user, settings=request.app.state.settings)
    return await views.alert_out(work.session, alert, _base(request))


@router.post(
    "/alerts/cap",
    response_model=AlertOut,
    status_code=201,
    responses=refusals(409, 415),
    openapi_extra=text_body(CAP_BODY_TYPES, "a CAP 1.2 <alert> document"),
)
async def import_cap(request: Request, work: WorkDep, user: Operator) -> AlertOut:
    """Import a CAP 1.2 XML message (`Content-Type: application/cap+xml`) as a draft."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in CAP_BODY_TYPES:
        raise UnsupportedMediaType("send the CAP message as application/cap+xml", field="content-type")
    data = await request.body()
    alert = await service.import_cap(work.session, data=data, author=user, settings=request.app.state.settings)
    return await views.alert_out(work.session, alert, _base(request))


@router.get("/alert-templates")
async def list_templates(request: Request, _: Staff) -> list[dict[str, Any]]:
    """The alert templates: id, title, languages and the variables each needs."""
    loaded = templates.load_templates(request.app.state.templates_dir)
    return [
        {
            "id": t.id,
            "title": t.title,
            "languages": list(t.texts),
            "cap": t.cap.model_dump(),
            "variables": {k: v.model_dump() for k, v in t.variables.items()},
        }
        for t in loaded.values()
    ]


@router.get("/alert-templates/{template_id}")
async def get_template(request: Request, _: Staff, template_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    """One template with its texts in every language."""
    return templates.get_template(request.app.state.templates_dir, template_id).model_dump()


@router.post("/alerts/from-template", response_model=AlertOut, status_code=201, responses=refusals(404, 409))
async def create_from_template(request: Request, work: WorkDep, user: Operator, body: FromTemplateIn) -> AlertOut:
    """Start a draft from a hazard template, its texts filled in with `variables`, over `area`."""
    settings = request.app.state.settings
    template = templates.get_template(request.app.state.templates_dir, body.template)
    draft = templates.draft_from_template(
        template, body, sender_name=settings.cap_sender_name, now_plus=lambda delta: service.utcnow() + delta
    )
    alert = await service.create_draft(
        work.session, body=draft, author=user, settings=settings, origin="template", template_id=template.id
    )
    return await views.alert_out(work.session, alert, _base(request))


@router.get("/alerts/{alert_id}", response_model=AlertOut)
async def get_alert(request: Request, session: SessionDep, user: OptionalUser, alert_id: uuid.UUID) -> AlertOut:
    """One alert with its CAP content and where it is in its life."""
    alert = await _visible_alert(session, alert_id, user)
    return await views.alert_out(session, alert, _base(request), public=user is None)


@router.put("/alerts/{alert_id}", response_model=AlertOut, responses=refusals(409))
async def edit_alert(
    request: Request, work: WorkDep, user: Operator, alert_id: uuid.UUID, body: AlertEditIn
) -> AlertOut:
    """Replace a draft's content. Editing an approved draft withdraws the approval."""
    settings = request.app.state.settings
    alert = await service.edit_draft(work.session, alert_id=alert_id, body=body, actor=user, settings=settings)
    return await views.alert_out(work.session, alert, _base(request))


@router.post("/alerts/{alert_id}/approve", response_model=AlertOut, responses=refusals(409))
async def approve_alert(request: Request, work: WorkDep, user: Approver, alert_id: uuid.UUID) -> AlertOut:
    """Approve a draft. An Actual alert cannot be approved by its own author (two-person rule)."""
    alert = await service.approve(work.session, alert_id=alert_id, approver=user)
    return await views.alert_out(work.session, alert, _base(request))


@router.post("/alerts/{alert_id}/issue", response_model=AlertOut, responses=refusals(409))
async def issue_alert(
    request: Request, work: WorkDep, user: Approver, alert_id: uuid.UUID, body: IssueIn | None = None
) -> AlertOut:
    """Issue now, or at `at` (scheduled; survives restarts). Actual alerts must be approved first."""
    alert = await service.issue(work, alert_id=alert_id, issuer=user, at=body.at if body else None)
    return await views.alert_out(work.session, alert, _base(request))


@router.post("/alerts/{alert_id}/update", response_model=AlertOut, status_code=201, responses=refusals(409))
async def start_update(
    request: Request, work: WorkDep, user: Operator, alert_id: uuid.UUID, body: FollowUpIn | None = None
) -> AlertOut:
    """Draft an Update of an issued alert (a new CAP message whose `references` names the earlier ones)."""
    return await _follow_up(request, work, user, alert_id, "update", body)


@router.post("/alerts/{alert_id}/cancel", response_model=AlertOut, status_code=201, responses=refusals(409))
async def start_cancel(
    request: Request, work: WorkDep, user: Operator, alert_id: uuid.UUID, body: FollowUpIn | None = None
) -> AlertOut:
    """Draft a Cancel of an issued alert; it ends the alert when it is issued."""
    return await _follow_up(request, work, user, alert_id, "cancel", body)


async def _follow_up(
    request: Request,
    work: UnitOfWork,
    user: User,
    alert_id: uuid.UUID,
    kind: Literal["update", "cancel"],
    body: FollowUpIn | None,
) -> AlertOut:
    settings = request.app.state.settings
    alert = await service.start_follow_up(
        work.session, alert_id=alert_id, kind=kind, body=body or FollowUpIn(), author=user, settings=settings
    )
    return await views.alert_out(work.session, alert, _base(request))


@router.post("/alerts/{alert_id}/discard", response_model=AlertOut, responses=refusals(409))
async def discard_alert(request: Request, work: WorkDep, user: Operator, alert_id: uuid.UUID) -> AlertOut:
    """Discard a draft, an approved draft or a scheduled alert that has not gone out."""
    alert = await service.discard(work.session, alert_id=alert_id, actor=user)
    return await views.alert_out(work.session, alert, _base(request))


@lint_routes.get("/alerts/{alert_id}/lint", response_model=AlertLintOut)
async def lint_alert(session: SessionDep, _: Staff, alert_id: uuid.UUID) -> AlertLintOut:
    """Glossary findings for the headline, description and instruction of each info of an alert, in the info's
    language, while drafting and approving it (staff). Warnings: they never block anything."""
    return await service.lint_alert(session, alert_id=alert_id)


@router.get("/alerts/{alert_id}/cap", response_class=Response, responses={200: {"content": {CAP_MEDIA_TYPE: {}}}})
async def get_cap(session: SessionDep, user: OptionalUser, alert_id: uuid.UUID) -> Response:
    """The alert as CAP 1.2 XML, valid against the OASIS schema (no signature: signing is not configured)."""
    alert = await _visible_alert(session, alert_id, user)
    return Response(alert_to_xml(service.cap_content(alert)), media_type=CAP_MEDIA_TYPE)


@router.get(
    "/alerts/{alert_id}/cap/original",
    response_class=Response,
    responses={200: {"content": {CAP_MEDIA_TYPE: {}}}},
)
async def get_original_cap(session: SessionDep, user: OptionalUser, alert_id: uuid.UUID) -> Response:
    """An imported alert exactly as it was received, with the sender's signature if it had one."""
    alert = await _visible_alert(session, alert_id, user)
    if alert.original_xml is None:
        raise NotFound("this alert was not imported, or was edited since", code="no_original")
    # Back to the bytes that came in: the text is stored decoded, the declaration names the encoding.
    declared = re.match(r"""<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)""", alert.original_xml)
    encoding = declared.group(1) if declared else "utf-8"
    try:
        data = alert.original_xml.encode(encoding)
    except (LookupError, UnicodeEncodeError):
        data, encoding = alert.original_xml.encode("utf-8"), "utf-8"
    return Response(data, media_type=f"{CAP_MEDIA_TYPE}; charset={encoding}")


@feeds.get("/feeds/alerts.atom", response_class=Response, responses={200: {"content": {"application/atom+xml": {}}}})
async def alerts_feed(request: Request, session: SessionDep) -> Response:
    """Public Atom feed of active public alerts, each entry linking to its CAP message."""
    found = await service.find_alerts(session, query=AlertQuery(active=True, public_only=True, limit=500))
    settings = request.app.state.settings
    body = atom_feed(found, base_url=_base(request), sender_name=settings.cap_sender_name)
    return Response(body, media_type="application/atom+xml")
