"""Triage: list and filter reports, set their status, group them into incidents, propose groups, purge old ones."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend, geo
from tocsin.errors import InvalidInput, NotFound
from tocsin.kernel import audit, exercise_clock
from tocsin.models import AlertDelivery, AlertResponse, Device, Exercise, Incident, OperatorEvent, Report, User
from tocsin.reports import feed
from tocsin.reports.schemas import (
    ClusterOut,
    IncidentOut,
    LonLat,
    OwnReport,
    PublicReport,
    ReportOut,
    ReportStatus,
    StatusChange,
)

PUBLIC_GRID_DEGREES = 0.01  # ~1 km: public views never show where exactly someone reported from


@dataclass(frozen=True, slots=True)
class ReportFilter:
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat
    area: BaseGeometry | None = None
    since: datetime | None = None
    until: datetime | None = None
    category: str | None = None
    status: ReportStatus | None = None
    text: str | None = None
    exercise_id: str | None = None
    limit: int = 500
    offset: int = 0


def report_out(row: Report) -> ReportOut:
    return ReportOut(
        id=row.id,
        client_id=row.client_id,
        category=row.category,
        text=row.text,
        location=LonLat(lon=row.lon, lat=row.lat),
        severity=row.severity,
        observed_at=row.observed_at,
        received_at=row.received_at,
        status=ReportStatus(row.status),
        status_reason=row.status_reason,
        status_by=row.status_by,
        status_at=row.status_at,
        duplicate_of=row.duplicate_of,
        incident_id=row.incident_id,
    )


async def find_reports(session: AsyncSession, *, where: ReportFilter) -> list[Report]:
    statement = select(Report).order_by(Report.received_at.desc(), Report.id.desc())
    box = where.bbox or (geo.bbox(where.area) if where.area is not None else None)
    if box is not None:
        statement = statement.where(
            Report.lon >= box[0], Report.lat >= box[1], Report.lon <= box[2], Report.lat <= box[3]
        )
    if where.since is not None:
        statement = statement.where(Report.observed_at >= where.since)
    if where.until is not None:
        statement = statement.where(Report.observed_at <= where.until)
    if where.category is not None:
        statement = statement.where(Report.category == where.category)
    if where.status is not None:
        statement = statement.where(Report.status == where.status.value)
    if where.text:
        statement = statement.where(func.lower(Report.text).contains(where.text.lower(), autoescape=True))
    statement = statement.where(
        Report.exercise_id.is_(None) if where.exercise_id is None else Report.exercise_id == where.exercise_id
    )
    if where.area is None:
        return list((await session.execute(statement.limit(where.limit).offset(where.offset))).scalars())
    rows = (await session.execute(statement)).scalars().all()
    inside = [r for r in rows if geo.covers_point(where.area, r.lon, r.lat)]
    return inside[where.offset : where.offset + where.limit]


async def exercise_of_device(session: AsyncSession, *, device_id: str) -> str | None:
    """The exercise a device belongs to (synthetic citizens), or None for a real device."""
    query = select(Device.exercise_id).where(Device.id == device_id)
    return (await session.execute(query)).scalar_one_or_none()


async def _get(session: AsyncSession, report_id: int) -> Report:
    row = await session.get(Report, report_id)
    if row is None:
        raise NotFound(f"no report {report_id}", code="report_not_found")
    return row


async def set_status(
    session: AsyncSession, *, report_id: int, change: StatusChange, actor: User
) -> tuple[Report, int | None]:
    """Returns the report and the change's number in the operator feed (None for an exercise report)."""
    row = await _get(session, report_id)
    if change.status is ReportStatus.dismissed and not change.reason:
        raise InvalidInput("dismissing a report needs a reason", field="reason")
    if change.status is ReportStatus.duplicate:
        if change.duplicate_of is None:
            raise InvalidInput("name the report this one duplicates", field="duplicate_of")
        if change.duplicate_of == report_id:
            raise InvalidInput("a report cannot duplicate itself", field="duplicate_of")
        await _get(session, change.duplicate_of)
    row.status = change.status.value
    row.status_reason = change.reason
    row.duplicate_of = change.duplicate_of if change.status is ReportStatus.duplicate else None
    row.status_by = actor.username
    row.status_at = datetime.now(UTC)
    await session.flush()
    if row.exercise_id is not None:
        exercise = await session.get(Exercise, row.exercise_id)
        if exercise is not None:
            title = f"Report {row.id} ({row.category}) {row.status}"
            await exercise_clock.record(
                session, exercise, key=None, kind="triage", title=title, detail=change.reason, actor=actor.username
            )
    await audit.record(
        session,
        actor=actor,
        action="report_status",
        detail={"report_id": report_id, "status": row.status, "reason": change.reason},
    )
    if row.exercise_id is not None:
        return row, None
    (seq,) = await feed.append(session, [(feed.REPORT_STATUS, row.id)])
    return row, seq


def status_event(row: Report, seq: int | None = None) -> dict[str, Any]:
    """On the bus: the device hears its report's new status; operators hear the change only if it has a feed
    number (`seq`), which exercise reports never have."""
    return {**feed.report_status(row, seq), "device_id": row.device_id}


async def create_incident(session: AsyncSession, *, title: str, report_ids: list[int], actor: User) -> IncidentOut:
    rows = (await session.execute(select(Report).where(Report.id.in_(report_ids)))).scalars().all()
    missing = sorted(set(report_ids) - {r.id for r in rows})
    if missing:
        raise NotFound(f"no reports {missing}", field="report_ids", code="report_not_found")
    categories = sorted({r.category for r in rows})
    incident = Incident(
        title=title,
        category=categories[0] if len(categories) == 1 else "other",
        created_by=actor.username,
        created_at=datetime.now(UTC),
    )
    session.add(incident)
    await session.flush()
    await session.execute(update(Report).where(Report.id.in_(report_ids)).values(incident_id=incident.id))
    await audit.record(
        session,
        actor=actor,
        action="incident_create",
        detail={"incident_id": incident.id, "report_ids": sorted(report_ids)},
    )
    return IncidentOut(
        id=incident.id,
        title=title,
        category=incident.category,
        created_by=actor.username,
        created_at=incident.created_at,
        report_ids=sorted(report_ids),
    )


async def list_incidents(session: AsyncSession) -> list[IncidentOut]:
    incidents = (await session.execute(select(Incident).order_by(Incident.id.desc()).limit(500))).scalars().all()
    members = (
        await session.execute(
            select(Report.incident_id, Report.id).where(Report.incident_id.in_([i.id for i in incidents]))
        )
    ).all()
    by_incident: dict[int, list[int]] = {}
    for incident_id, report_id in members:
        if incident_id is not None:
            by_incident.setdefault(incident_id, []).append(report_id)
    return [
        IncidentOut(
            id=i.id,
            title=i.title,
            category=i.category,
            created_by=i.created_by,
            created_at=i.created_at,
            report_ids=sorted(by_incident.get(i.id, [])),
        )
        for i in incidents
    ]


async def propose_groups(
    session: AsyncSession, *, since: datetime, distance_m: float, min_reports: int, category: str | None = None
) -> list[ClusterOut]:
    """Nearby reports of the same category that are not yet in an incident (DBSCAN per category)."""
    statement = select(Report.id, Report.lon, Report.lat, Report.category).where(
        Report.observed_at >= since,
        Report.incident_id.is_(None),
        Report.exercise_id.is_(None),
        Report.status.in_([ReportStatus.new.value, ReportStatus.verified.value]),
    )
    if category is not None:
        statement = statement.where(Report.category == category)
    by_category: dict[str, list[tuple[int, float, float]]] = {}
    limit = backend.cluster_point_limit(session)
    for report_id, lon, lat, cat in (await session.execute(statement.limit(limit))).all():
        by_category.setdefault(cat, []).append((report_id, lon, lat))
    clusters: list[ClusterOut] = []
    for cat, rows in sorted(by_category.items()):
        where = {r[0]: r for r in rows}
        for group in await backend.cluster_points(session, rows, eps_m=distance_m, min_points=min_reports):
            lon = sum(where[i][1] for i in group) / len(group)
            lat = sum(where[i][2] for i in group) / len(group)
            clusters.append(ClusterOut(category=cat, report_ids=group, centre=LonLat(lon=lon, lat=lat)))
    return clusters


async def own_reports(session: AsyncSession, *, device_id: str) -> list[OwnReport]:
    rows = (
        (
            await session.execute(
                select(Report).where(Report.device_id == device_id).order_by(Report.received_at.desc()).limit(200)
            )
        )
        .scalars()
        .all()
    )
    return [OwnReport.model_validate(row) for row in rows]


def _coarse(value: float) -> float:
    return round(math.floor(value / PUBLIC_GRID_DEGREES) * PUBLIC_GRID_DEGREES + PUBLIC_GRID_DEGREES / 2, 6)


async def public_reports(session: AsyncSession, *, since: datetime, limit: int) -> list[PublicReport]:
    rows = (
        (
            await session.execute(
                select(Report)
                .where(
                    Report.status == ReportStatus.verified.value,
                    Report.exercise_id.is_(None),
                    Report.observed_at >= since,
                )
                .order_by(Report.observed_at.desc())
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    return [
        PublicReport(
            category=r.category,
            location=LonLat(lon=_coarse(r.lon), lat=_coarse(r.lat)),
            observed_hour=r.observed_at.replace(minute=0, second=0, microsecond=0),
            status=ReportStatus.verified,
        )
        for r in rows
    ]


async def purge(session: AsyncSession, *, older_than: timedelta, now: datetime | None = None) -> tuple[int, int]:
    """Retention: reports received, and devices last seen, before now - older_than."""
    cutoff = (now or datetime.now(UTC)) - older_than
    await session.execute(
        update(Report)
        .where(Report.duplicate_of.in_(select(Report.id).where(Report.received_at < cutoff)))
        .values(duplicate_of=None)
    )
    reports = await session.execute(delete(Report).where(Report.received_at < cutoff))
    devices = await session.execute(delete(Device).where(Device.last_seen_at < cutoff))
    # Answers to alerts (device id, need-help status, a check-in's location) go the same way.
    answered = func.coalesce(AlertResponse.checkin_at, AlertResponse.acknowledged_at)
    await session.execute(delete(AlertResponse).where(answered < cutoff))
    # Which device an alert was meant for says roughly where the device was: the same retention.
    await session.execute(delete(AlertDelivery).where(AlertDelivery.targeted_at < cutoff))
    # The operator feed's old entries too, except the newest: the next number is counted from it (reports/feed.py).
    newest = select(func.max(OperatorEvent.seq)).scalar_subquery()
    await session.execute(delete(OperatorEvent).where(OperatorEvent.created_at < cutoff, OperatorEvent.seq < newest))
    return int(getattr(reports, "rowcount", 0) or 0), int(getattr(devices, "rowcount", 0) or 0)


def as_geojson(rows: Sequence[Report]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": r.id,
                "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                "properties": report_out(r).model_dump(mode="json", exclude={"location"}),
            }
            for r in rows
        ],
    }


CSV_COLUMNS = (
    "id",
    "client_id",
    "category",
    "status",
    "severity",
    "lon",
    "lat",
    "observed_at",
    "received_at",
    "status_by",
    "status_at",
    "status_reason",
    "duplicate_of",
    "incident_id",
    "text",
)


def as_csv(rows: Sequence[Report]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        data = report_out(r).model_dump(mode="json")
        data["lon"], data["lat"] = r.lon, r.lat
        writer.writerow([_csv_safe(data.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


def _csv_safe(value: Any) -> Any:
    """Spreadsheets run cells starting with = + - @ as formulas; citizens write the text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
