"""A device's receipts (`received`) and answers (`ack_alert`, `checkin`) to alerts.

Taken only for an alert that was sent to the device, or that is live and applies to it where it is now (another
worker may have sent it and not written the delivery down yet); so exercise devices cannot answer real alerts, nor
public devices exercise alerts. Each device counts once per alert.
"""

from __future__ import annotations

import uuid

from tocsin.realtime import devices
from tocsin.realtime.hub import Device
from tocsin.realtime.protocol import AckAlert, CheckIn, ProtocolViolation, Received
from tocsin.realtime.runtime import Realtime


async def may_have(realtime: Realtime, device: Device, alert_id: uuid.UUID) -> bool:
    """The alert is live and applies to this device where it is now, so it was or is being sent to it, perhaps by
    another worker that has not written the delivery down yet (the device moved here within its flush interval,
    or that worker cannot reach the database). The same rules as the fan-out, exercise isolation included."""
    alert = await realtime.dispatcher.active_alert(alert_id)
    return alert is not None and device.wants(alert) and device.inside(alert.geometry)


async def note_receipts(realtime: Realtime, device: Device, message: Received) -> None:
    """Noted in memory and written with the deliveries; a receipt for an alert never sent to the device is ignored
    when the deliveries are written."""
    for alert_id in message.alert_ids:
        if not realtime.deliveries.noted(alert_id, device.device_id) and await may_have(realtime, device, alert_id):
            realtime.deliveries.target(alert_id, (device.device_id,))  # its row may not be written yet
        realtime.deliveries.receive(alert_id, device.device_id)


async def record_answer(realtime: Realtime, device: Device, message: AckAlert | CheckIn) -> None:
    """The acknowledgement (and check-in), in its own transaction; ProtocolViolation if it may not be taken."""
    sent_here = realtime.deliveries.noted(message.alert_id, device.device_id)
    applies = not sent_here and await may_have(realtime, device, message.alert_id)
    checkin = message if isinstance(message, CheckIn) else None
    try:
        async with realtime.database.sessions() as session:
            await devices.respond(
                session,
                alert_id=message.alert_id,
                device_id=device.device_id,
                checkin=checkin.status if checkin else None,
                location=checkin.location if checkin else None,
                sent_here=sent_here,
                may_have=applies,
            )
            await session.commit()
    except devices.UnknownAlert:
        raise ProtocolViolation("unknown_alert", "no such alert", id=message.id, field="alert_id") from None
    except devices.NotDelivered:
        raise ProtocolViolation(
            "not_delivered", "this alert was not sent to this device", id=message.id, field="alert_id"
        ) from None
