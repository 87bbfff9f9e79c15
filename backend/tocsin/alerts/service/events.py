"""Delivery events: each issued or ended alert takes the next delivery sequence number, and every worker's
dispatcher hears of it after the unit of work committed (and finds it by sequence if it did not)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.kernel.channels import ALERTS_CHANNEL
from tocsin.kernel.work import UnitOfWork
from tocsin.models import AlertEvent


@dataclass(frozen=True, slots=True)
class AlertEventOut:
    """What goes on the bus after commit."""

    seq: int
    kind: str
    alert_id: uuid.UUID

    def message(self) -> dict[str, Any]:
        return {"type": "alert_event", "seq": self.seq, "kind": self.kind, "alert_id": str(self.alert_id)}


async def append_event(session: AsyncSession, *, alert_id: uuid.UUID, kind: str, now: datetime) -> AlertEventOut:
    await backend.lock_delivery_sequence(session)
    row = AlertEvent(alert_id=alert_id, kind=kind, at=now)
    session.add(row)
    await session.flush()
    return AlertEventOut(seq=row.seq, kind=kind, alert_id=alert_id)


def queue(work: UnitOfWork, events: Iterable[AlertEventOut]) -> None:
    """Published, in sequence order, once `work` committed."""
    for event in events:
        work.publish_after_commit(ALERTS_CHANNEL, event.message())
