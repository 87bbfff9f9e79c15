"""The audit trail's writer: every domain records what it changed in the caller's unit of work (the trail is read in
`tocsin.audit`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

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
    """Add one entry; it commits with the change it describes, or not at all."""
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
