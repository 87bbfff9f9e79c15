"""How alerts look to the outside: JSON (AlertOut), GeoJSON features, links."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import geo
from tocsin.alerts import service
from tocsin.alerts.schemas import AlertOut, Status, UserRef
from tocsin.models import Alert, User


def marking(status: str) -> str | None:
    """Anything but an Actual alert is marked in every representation."""
    return None if status == Status.actual else status.upper()


def links(alert: Alert, base_url: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {"self": f"{base}/api/v1/alerts/{alert.id}", "cap": f"{base}/api/v1/alerts/{alert.id}/cap"}


async def _users(session: AsyncSession, alerts: Sequence[Alert]) -> dict[int, UserRef]:
    ids = {i for a in alerts for i in (a.author_id, a.approved_by_id) if i is not None}
    if not ids:
        return {}
    rows = (await session.execute(select(User.id, User.username).where(User.id.in_(ids)))).all()
    return {row.id: UserRef.model_validate(row, from_attributes=True) for row in rows}


async def alerts_out(
    session: AsyncSession, alerts: Sequence[Alert], base_url: str, *, public: bool = False
) -> list[AlertOut]:
    """`public`: for an anonymous reader, without who wrote and approved it, exercise or schedule details. (Built
    field by field rather than from the row's attributes: a third of the fields are computed, renamed or hidden.)"""
    users = {} if public else await _users(session, alerts)
    now = service.utcnow()
    return [
        AlertOut(
            id=a.id,
            state=a.state,
            origin=a.origin,
            template_id=a.template_id,
            status=a.status,
            msgType=a.msg_type,
            marking=marking(a.status),
            identifier=a.identifier,
            sender=a.sender,
            sent=a.sent,
            references_alert_id=a.references_alert_id,
            exercise_id=None if public else a.exercise_id,
            signed=a.signed,
            author=users.get(a.author_id) if a.author_id else None,
            approved_by=users.get(a.approved_by_id) if a.approved_by_id else None,
            approved_at=None if public else a.approved_at,
            issued_at=a.issued_at,
            scheduled_for=None if public else a.scheduled_for,
            expires_at=a.expires_at,
            created_at=a.created_at,
            updated_at=a.updated_at,
            active=service.is_active(a, now),
            cap=service.cap_content(a),
            links=links(a, base_url),
        )
        for a in alerts
    ]


async def alert_out(session: AsyncSession, alert: Alert, base_url: str, *, public: bool = False) -> AlertOut:
    return (await alerts_out(session, [alert], base_url, public=public))[0]


def _headlines(alert: Alert) -> dict[str, str]:
    found: dict[str, str] = {}
    for info in service.cap_content(alert).info:
        if info.headline or info.event:
            found.setdefault(info.lang, info.headline or info.event)
    return found


def _outlines(areas_per_alert: list[list[Any]]) -> list[dict[str, Any] | None]:
    return [geo.to_geojson(geo.union_geometries(areas)) for areas in areas_per_alert]


async def feature_collection(session: AsyncSession, alerts: Sequence[Alert], base_url: str) -> dict[str, Any]:
    """GeoJSON (RFC 7946, lon/lat): one feature per alert, its geometry the union of its areas."""
    areas = await service.areas_of(session, alert_ids=[a.id for a in alerts]) if alerts else {}
    outlines = await asyncio.to_thread(_outlines, [areas.get(alert.id, []) for alert in alerts])  # CPU: off the loop
    now = service.utcnow()
    features = []
    for alert, outline in zip(alerts, outlines, strict=True):
        message = service.cap_content(alert)
        first = message.info[0] if message.info else None
        features.append(
            {
                "type": "Feature",
                "id": str(alert.id),
                "geometry": outline,
                "properties": {
                    "id": str(alert.id),
                    "identifier": alert.identifier,
                    "sender": alert.sender,
                    "sent": alert.sent.isoformat(),
                    "status": alert.status,
                    "marking": marking(alert.status),
                    "msgType": alert.msg_type,
                    "scope": alert.scope,
                    "state": alert.state,
                    "active": service.is_active(alert, now),
                    "event": first.event if first else None,
                    "urgency": first.urgency if first else None,
                    "severity": first.severity if first else None,
                    "certainty": first.certainty if first else None,
                    "headline": _headlines(alert),
                    "areaDesc": [a.areaDesc for a in (first.area if first else [])],
                    "expires": alert.expires_at.isoformat() if alert.expires_at else None,
                    "links": links(alert, base_url),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
