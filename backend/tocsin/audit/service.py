from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.models import AuditEntry


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
