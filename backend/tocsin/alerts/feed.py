"""The public Atom feed of active alerts, after the OASIS CAP feeds practice: one entry per alert with its title,
updated time, and a link of type application/cap+xml to the CAP message."""

from __future__ import annotations

from collections.abc import Sequence

from feedgen.feed import FeedGenerator

from tocsin.alerts import service
from tocsin.alerts.views import links
from tocsin.models import Alert

CAP_MEDIA_TYPE = "application/cap+xml"


def atom_feed(alerts: Sequence[Alert], *, base_url: str, sender_name: str) -> bytes:
    base = base_url.rstrip("/")
    feed = FeedGenerator()
    feed.id(f"{base}/feeds/alerts.atom")
    feed.title(f"{sender_name}: active public alerts")
    feed.author({"name": sender_name})
    feed.link(href=f"{base}/feeds/alerts.atom", rel="self", type="application/atom+xml")
    feed.updated(max((a.updated_at for a in alerts), default=service.utcnow()))
    for alert in alerts:
        message = service.cap_content(alert)
        first = message.info[0] if message.info else None
        entry = feed.add_entry(order="append")
        entry.id(f"{base}/api/v1/alerts/{alert.id}")
        entry.title((first.headline or first.event) if first else alert.identifier)
        entry.updated(alert.updated_at)
        entry.published(alert.sent)
        if first is not None:
            areas = "; ".join(area.areaDesc.strip() for area in first.area)
            summary = f"{first.event}: {first.severity} / {first.urgency} / {first.certainty}"
            entry.summary(f"{summary}. {areas}" if areas else summary)
        entry.link(href=links(alert, base)["cap"], rel="alternate", type=CAP_MEDIA_TYPE)
    return bytes(feed.atom_str(pretty=True))
