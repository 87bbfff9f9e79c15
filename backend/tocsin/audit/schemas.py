from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: int
    at: datetime
    actor: str = Field(validation_alias="actor_name")
    action: str
    alert_id: uuid.UUID | None
    detail: dict[str, Any]
