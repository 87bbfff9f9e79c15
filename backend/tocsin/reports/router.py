from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from tocsin import geo
from tocsin.alerts import service as alerts
from tocsin.auth.deps import Operator, Staff
from tocsin.db import SessionDep
from tocsin.errors import AppError, InvalidInput, refusals
from tocsin.kernel.channels import REPORTS_CHANNEL
from tocsin.realtime.protocol import DeviceId
from tocsin.realtime.runtime import Realtime
from tocsin.reports import service
from tocsin.reports.schemas import (
    ClusterOut,
    IncidentIn,
    IncidentOut,
    OwnReport,
    PublicReport,
    ReportAck,
    ReportOut,
    ReportPost,
    ReportStatus,
    StatusChange,
)
from tocsin.reports.service import ReportFilter
from tocsin.reports.writer import ReportRefused
from tocsin.types import DbId, Instant

router = APIRouter(prefix="/api/v1", tags=["reports"])


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"


def _realtime(request: Request) -> Realtime:
    realtime: Realtime = request.app.state.realtime
    return realtime


@router.post(
    "/reports",
    response_model=ReportAck,
    status_code=201,
    responses={
        **refusals(409, 429, 503),
        200: {"description": "a resend of a report already stored: the same acknowledgement"},
    },
)
async def post_report(request: Request, body: ReportPost) -> Any:
    """A citizen report for clients that cannot hold a socket. Acknowledged only once committed; resending the same
    `id` gets the same acknowledgement (200) and stores nothing new."""
    realtime = _realtime(request)
    ip = request.client.host if request.client else "unknown"
    if not (realtime.ip_reports.allow(ip) and realtime.device_reports.allow(body.device_id)):
        raise TooManyRequests("too many reports; resend later")
    # A synthetic citizen of an exercise posts exercise reports: they stay in the exercise, never in real triage.
    async with realtime.database.sessions() as session:
        exercise_id = await service.exercise_of_device(session, device_id=body.device_id)
    try:
        ack, created = await realtime.writer.submit(body.device_id, body, exercise_id)
    except ReportRefused as refused:
        status = 503 if refused.code == "unavailable" else 409 if refused.code == "duplicate_id" else 422
        return JSONResponse(
            {"error": {"code": refused.code, "message": refused.message, "field": refused.field, "id": str(body.id)}},
            status_code=status,
        )
    return JSONResponse(ack.model_dump(mode="json"), status_code=201 if created else 200)


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise InvalidInput("bbox is min_lon,min_lat,max_lon,max_lat", field="bbox") from None
    if len(parts) != 4 or not (-180 <= parts[0] <= parts[2] <= 180 and -90 <= parts[1] <= parts[3] <= 90):
        raise InvalidInput("bbox is min_lon,min_lat,max_lon,max_lat within the world", field="bbox")
    return parts[0], parts[1], parts[2], parts[3]


@router.get(
    "/reports",
    responses={**refusals(404), 200: {"content": {"application/json": {}, "application/geo+json": {}, "text/csv": {}}}},
)
async def list_reports(
    session: SessionDep,
    _: Operator,
    bbox: Annotated[str | None, Query(max_length=100, description="min_lon,min_lat,max_lon,max_lat")] = None,
    alert_id: Annotated[uuid.UUID | None, Query(description="only reports inside this alert's area")] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    status: ReportStatus | None = None,
    q: Annotated[str | None, Query(max_length=200, description="text contains")] = None,
    exercise_id: Annotated[str | None, Query(max_length=64)] = None,
    format: Literal["json", "geojson", "csv"] = "json",
    limit: Annotated[int, Query(ge=1, le=5_000)] = 500,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    """Reports for triage, newest first, as JSON, GeoJSON or CSV; filter by box or alert area, time, category,
    status and text."""
    area = None
    if alert_id is not None:
        geometries = (await alerts.areas_of(session, alert_ids=[alert_id])).get(alert_id, [])
        area = await asyncio.to_thread(geo.union_geometries, geometries)  # CPU: off the event loop
        if area is None:
            raise InvalidInput("that alert has no area", field="alert_id")
    where = ReportFilter(
        bbox=_bbox(bbox),
        area=area,
        since=since,
        until=until,
        category=category,
        status=status,
        text=q,
        exercise_id=exercise_id,
        limit=limit,
        offset=offset,
    )
    rows = await service.find_reports(session, where=where)
    if format == "geojson":
        return JSONResponse(service.as_geojson(rows), media_type="application/geo+json")
    if format == "csv":
        return Response(
            service.as_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="reports.csv"'},
        )
    return [service.report_out(r).model_dump(mode="json") for r in rows]


@router.post("/reports/{report_id}/status", response_model=ReportOut)
async def change_status(
    request: Request, session: SessionDep, user: Operator, report_id: DbId, body: StatusChange
) -> ReportOut:
    """Set a report's status: verified, dismissed (with a reason), duplicate (of another report), resolved."""
    row, seq = await service.set_status(session, report_id=report_id, change=body, actor=user)
    await session.commit()
    await request.app.state.bus.publish(REPORTS_CHANNEL, service.status_event(row, seq))
    return service.report_out(row)


@router.get("/reports/groups", response_model=list[ClusterOut])
async def proposed_groups(
    session: SessionDep,
    _: Operator,
    hours: Annotated[float, Query(gt=0, le=24 * 30)] = 24,
    distance_m: Annotated[float, Query(gt=0, le=10_000)] = 150,
    min_reports: Annotated[int, Query(ge=2, le=100)] = 3,
    category: Annotated[str | None, Query(max_length=32)] = None,
) -> list[ClusterOut]:
    """Groups of nearby reports of one category not yet in an incident: candidates for one incident."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    return await service.propose_groups(
        session, since=since, distance_m=distance_m, min_reports=min_reports, category=category
    )


@router.post("/incidents", response_model=IncidentOut, status_code=201, responses=refusals(404))
async def create_incident(session: SessionDep, user: Operator, body: IncidentIn) -> IncidentOut:
    """Group reports into one incident."""
    incident = await service.create_incident(session, title=body.title, report_ids=body.report_ids, actor=user)
    await session.commit()
    return incident


@router.get("/incidents", response_model=list[IncidentOut])
async def list_incidents(session: SessionDep, _: Operator) -> list[IncidentOut]:
    """Incidents, newest first, with their reports."""
    return await service.list_incidents(session)


@router.get("/my/reports", response_model=list[OwnReport])
async def device_reports(
    session: SessionDep, device_id: Annotated[DeviceId, Header(alias="X-Device-Id")]
) -> list[OwnReport]:
    """A device's own reports and their status. The device id (header `X-Device-Id`, kept out of URLs and access
    logs) is the only key: it is random and never shown to anyone else, and this shows nothing but status."""
    return await service.own_reports(session, device_id=device_id)


@router.get("/public/reports", response_model=list[PublicReport])
async def public_reports(
    session: SessionDep,
    hours: Annotated[float, Query(gt=0, le=24 * 7)] = 24,
    limit: Annotated[int, Query(ge=1, le=2_000)] = 500,
) -> list[PublicReport]:
    """Verified reports only, located to a ~1 km grid and to the hour, without their text."""
    return await service.public_reports(session, since=datetime.now(UTC) - timedelta(hours=hours), limit=limit)


@router.get("/alerts/{alert_id}/counts")
async def alert_counts(request: Request, session: SessionDep, _: Staff, alert_id: uuid.UUID) -> dict[str, Any]:
    """Devices the alert was meant for (in its area: live, in a snapshot or on replay), written to their socket,
    received (the device said so), acknowledged, safe and need help; from the database, summed over every worker."""
    await alerts.get_alert(session, alert_id=alert_id)
    counts = (await _realtime(request).deliveries.totals([alert_id]))[alert_id]
    return {"alert_id": str(alert_id), **counts}
