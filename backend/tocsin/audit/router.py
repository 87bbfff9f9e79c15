from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tocsin.alerts.schemas import AuditOut
from tocsin.audit import service
from tocsin.auth.deps import AuditReader
from tocsin.db import SessionDep
from tocsin.types import Cursor

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit", response_model=list[AuditOut])
async def read_audit_log(
    session: SessionDep,
    _: AuditReader,
    alert_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before_id: Annotated[Cursor | None, Query(description="entries older than this id")] = None,
) -> list[AuditOut]:
    """The audit log, newest first (approvers and admins). Read-only: no route changes it."""
    rows = await service.entries(session, alert_id=alert_id, limit=limit, before_id=before_id)
    return [
        AuditOut(id=r.id, at=r.at, actor=r.actor_name, action=r.action, alert_id=r.alert_id, detail=r.detail)
        for r in rows
    ]
