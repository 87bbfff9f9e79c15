"""Reading alerts: one by id, a filtered and paged list (by state, status, activity and a point their area covers),
their areas' geometries, and what an alert row says (its CAP content, whether it is active)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend, geo
from tocsin.alerts.schemas import AlertState, CapAlert, MsgType, Scope, Status
from tocsin.errors import NotFound
from tocsin.models import Alert, AlertArea, AlertEvent

PUBLIC_STATES = (AlertState.issued, AlertState.updated, AlertState.cancelled, AlertState.expired)
ACTIVE_MSG_TYPES = (MsgType.alert.value, MsgType.update.value)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def cap_content(alert: Alert) -> CapAlert:
    return CapAlert.model_validate(alert.content)


def is_active(alert: Alert, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (
        alert.state == AlertState.issued
        and alert.msg_type in ACTIVE_MSG_TYPES
        and (alert.expires_at is None or alert.expires_at > now)
    )


def not_found(alert_id: uuid.UUID) -> NotFound:
    return NotFound(f"no alert {alert_id}", code="alert_not_found")


async def get_alert(session: AsyncSession, *, alert_id: uuid.UUID) -> Alert:
    alert = (await session.execute(select(Alert).where(Alert.id == alert_id))).scalar_one_or_none()
    if alert is None:
        raise not_found(alert_id)
    return alert


@dataclass(frozen=True, slots=True)
class AlertQuery:
    active: bool | None = None
    lat: float | None = None
    lon: float | None = None
    status: Status | None = None
    state: AlertState | None = None
    public_only: bool = True
    exercise_id: str | None = None
    limit: int = 100
    offset: int = 0


def _filtered(query: AlertQuery, now: datetime) -> Select[Alert]:
    statement = select(Alert).order_by(Alert.created_at.desc(), Alert.id)
    if query.public_only:
        statement = statement.where(
            Alert.status == Status.actual.value,
            Alert.scope == Scope.public.value,
            Alert.state.in_([s.value for s in PUBLIC_STATES]),
        )
    if query.active is True:
        statement = statement.where(
            Alert.state == AlertState.issued.value,
            Alert.msg_type.in_(ACTIVE_MSG_TYPES),
            or_(Alert.expires_at.is_(None), Alert.expires_at > now),
        )
    elif query.active is False:
        statement = statement.where(
            or_(
                Alert.state != AlertState.issued.value,
                Alert.msg_type.not_in(ACTIVE_MSG_TYPES),
                Alert.expires_at <= now,
            )
        )
    if query.status is not None:
        statement = statement.where(Alert.status == query.status.value)
    if query.state is not None:
        statement = statement.where(Alert.state == query.state.value)
    if query.exercise_id is not None:
        statement = statement.where(Alert.exercise_id == query.exercise_id)
    return statement


async def find_alerts(session: AsyncSession, *, query: AlertQuery) -> Sequence[Alert]:
    statement = _filtered(query, utcnow())
    if query.lat is not None and query.lon is not None:
        covers = backend.area_covers_point_sql(
            session,
            AlertArea.geom,
            (AlertArea.min_lon, AlertArea.min_lat, AlertArea.max_lon, AlertArea.max_lat),
            query.lon,
            query.lat,
        )
        statement = statement.where(exists(select(AlertArea.id).where(AlertArea.alert_id == Alert.id, covers)))
        if backend.needs_exact_check(session):
            candidates = (await session.execute(statement)).scalars().all()
            exact = await _exactly_covering(session, candidates, query.lon, query.lat)
            return exact[query.offset : query.offset + query.limit]
    statement = statement.limit(query.limit).offset(query.offset)
    return (await session.execute(statement)).scalars().all()


async def _exactly_covering(session: AsyncSession, alerts: Sequence[Alert], lon: float, lat: float) -> list[Alert]:
    """SQLite: the bounding boxes matched; decide with shapely."""
    if not alerts:
        return []
    areas = await areas_of(session, alert_ids=[a.id for a in alerts])
    hits = {
        alert_id for alert_id, geometries in areas.items() if any(geo.covers_point(g, lon, lat) for g in geometries)
    }
    return [a for a in alerts if a.id in hits]


async def areas_of(session: AsyncSession, *, alert_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    rows = (
        await session.execute(
            select(AlertArea.alert_id, AlertArea.geom).where(
                AlertArea.alert_id.in_(alert_ids), AlertArea.geom.is_not(None)
            )
        )
    ).all()
    found: dict[uuid.UUID, list[Any]] = {}
    for alert_id, geometry in rows:
        found.setdefault(alert_id, []).append(geometry)
    return found


async def count_events(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(AlertEvent))).scalar_one())
