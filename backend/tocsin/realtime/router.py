"""REST routes served from this worker's real-time state: a report posted over HTTP goes through the same group
commit and the same per-device and per-address limits as one sent over the citizen socket, and an alert's reach is
counted by the same delivery recorder that the fan-out notes deliveries in."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from tocsin.alerts import service as alerts
from tocsin.auth.deps import Staff
from tocsin.db import SessionDep
from tocsin.errors import AppError, refusals
from tocsin.realtime.runtime import Realtime
from tocsin.reports import service as reports
from tocsin.reports.schemas import ReportAck, ReportPost
from tocsin.reports.writer import ReportRefused

router = APIRouter(prefix="/api/v1")


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"


def _realtime(request: Request) -> Realtime:
    realtime: Realtime = request.app.state.realtime
    return realtime


RealtimeDep = Annotated[Realtime, Depends(_realtime)]


@router.post(
    "/reports",
    tags=["reports"],
    response_model=ReportAck,
    status_code=201,
    responses={
        **refusals(409, 429, 503),
        200: {"description": "a resend of a report already stored: the same acknowledgement"},
    },
)
async def post_report(request: Request, realtime: RealtimeDep, body: ReportPost) -> Any:
    """A citizen report for clients that cannot hold a socket. Acknowledged only once committed; resending the same
    `id` gets the same acknowledgement (200) and stores nothing new."""
    ip = request.client.host if request.client else "unknown"
    if not (realtime.ip_reports.allow(ip) and realtime.device_reports.allow(body.device_id)):
        raise TooManyRequests("too many reports; resend later")
    # A synthetic citizen of an exercise posts exercise reports: they stay in the exercise, never in real triage.
    async with realtime.database.sessions() as session:
        exercise_id = await reports.exercise_of_device(session, device_id=body.device_id)
    try:
        ack, created = await realtime.writer.submit(body.device_id, body, exercise_id)
    except ReportRefused as refused:
        status = 503 if refused.code == "unavailable" else 409 if refused.code == "duplicate_id" else 422
        return JSONResponse(
            {"error": {"code": refused.code, "message": refused.message, "field": refused.field, "id": str(body.id)}},
            status_code=status,
        )
    return JSONResponse(ack.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/alerts/{alert_id}/counts", tags=["reports"])
async def alert_counts(session: SessionDep, realtime: RealtimeDep, _: Staff, alert_id: uuid.UUID) -> dict[str, Any]:
    """Devices the alert was meant for (in its area: live, in a snapshot or on replay), written to their socket,
    received (the device said so), acknowledged, safe and need help; from the database, summed over every worker."""
    await alerts.get_alert(session, alert_id=alert_id)
    counts = (await realtime.deliveries.totals([alert_id]))[alert_id]
    return {"alert_id": str(alert_id), **counts}
