from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from tocsin import geo
from tocsin.alerts import service as alerts
from tocsin.auth.deps import Operator
from tocsin.db import SessionDep
from tocsin.errors import InvalidInput, refusals
from tocsin.kernel.channels import REPORTS_CHANNEL
from tocsin.kernel.work import WorkDep
from tocsin.reports import service
from tocsin.reports.schemas import (
    ClusterOut,
    DeviceId,
    IncidentIn,
    IncidentOut,
    OwnReport,
    PublicReport,
    ReportOut,
    ReportStatus,
    StatusChange,
)
from tocsin.reports.service import ReportFilter
from tocsin.types import DbId, Instant

router = APIRouter(prefix="/api/v1", tags=["reports"])


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
async def change_status(work: WorkDep, user: Operator, report_id: DbId, body: StatusChange) -> ReportOut:
    """Set a report's status: verified, dismissed (with a reason), duplicate (of another report), resolved."""
    row, seq = await service.set_status(work.session, report_id=report_id, change=body, actor=user)
    # The device hears of it live; operators by the feed's number `seq`, which a console that missed the publish
    # reads back from the database (realtime/feed.py).
    work.publish_after_commit(REPORTS_CHANNEL, service.status_event(row, seq))
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
async def create_incident(work: WorkDep, user: Operator, body: IncidentIn) -> IncidentOut:
    """Group reports into one incident."""
    return await service.create_incident(work.session, title=body.title, report_ids=body.report_ids, actor=user)


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
