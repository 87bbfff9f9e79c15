from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.models import AuditEntry, User

SCHEDULER_ACTOR = "scheduler"


async def record(
    session: AsyncSession,
    *,
    actor: User | None,
    action: str,
    alert_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    session.add(
        AuditEntry(
            at=at or datetime.now(UTC),
            actor_id=None if actor is None else actor.id,
            actor_name=SCHEDULER_ACTOR if actor is None else actor.username,
            action=action,
            alert_id=alert_id,
            detail=detail or {},
        )
    )
    await session.flush()


async def entries(
    session: AsyncSession,
    *,
    alert_id: uuid.UUID | None = None,
    limit: int = 200,
    before_id: int | None = None,
) -> Sequence[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if alert_id is not None:
        query = query.where(AuditEntry.alert_id == alert_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return (await session.execute(query)).scalars().all()
