"""The public Atom feed of active alerts, after the OASIS CAP feeds practice: one entry per alert with its title,
updated time, and a link of type application/cap+xml to the CAP message.

Built with lxml rather than feedgen: feedgen 1.0 drops the `rel` and `type` attributes of entry links, and the
CAP link's type is the one thing aggregators read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lxml import etree

from tocsin.alerts import service
from tocsin.alerts.views import links
from tocsin.models import Alert

CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_NS = "http://www.w3.org/2005/Atom"
_A = "{" + ATOM_NS + "}"


def _add(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, _A + name, attrib=attributes)
    if text is not None:
        element.text = text
    return element


def _time(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def atom_feed(alerts: Sequence[Alert], *, base_url: str, sender_name: str) -> bytes:
    base = base_url.rstrip("/")
    feed = etree.Element(_A + "feed", nsmap={None: ATOM_NS})
    _add(feed, "id", f"{base}/feeds/alerts.atom")
    _add(feed, "title", f"{sender_name}: active public alerts")
    _add(feed, "updated", _time(max((a.updated_at for a in alerts), default=service.utcnow())))
    _add(_add(feed, "author"), "name", sender_name)
    _add(feed, "link", href=f"{base}/feeds/alerts.atom", rel="self", type="application/atom+xml")
    for alert in alerts:
        message = service.cap_content(alert)
        first = message.info[0] if message.info else None
        entry = _add(feed, "entry")
        _add(entry, "id", f"{base}/api/v1/alerts/{alert.id}")
        _add(entry, "title", (first.headline or first.event) if first else alert.identifier)
        _add(entry, "updated", _time(alert.updated_at))
        _add(entry, "published", _time(alert.sent))
        if first is not None:
            areas = "; ".join(area.areaDesc.strip() for area in first.area)
            summary = f"{first.event}: {first.severity} / {first.urgency} / {first.certainty}"
            _add(entry, "summary", f"{summary}. {areas}" if areas else summary)
        _add(entry, "link", href=links(alert, base)["cap"], rel="alternate", type=CAP_MEDIA_TYPE)
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True))
