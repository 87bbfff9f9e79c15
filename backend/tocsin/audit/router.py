from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from tocsin.audit import service
from tocsin.audit.schemas import AuditOut
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
    return [AuditOut.model_validate(row) for row in rows]
