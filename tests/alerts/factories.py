"""Small factories for alert test data (GeoJSON lon/lat)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# A square around Faenza's old town (lon 11.87..11.89, lat 44.28..44.30).
FAENZA = {
    "type": "Polygon",
    "coordinates": [[[11.87, 44.28], [11.89, 44.28], [11.89, 44.30], [11.87, 44.30], [11.87, 44.28]]],
}
INSIDE_FAENZA = (11.88, 44.29)
OUTSIDE = (12.5, 45.0)


def info(language: str = "en", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "language": language,
        "category": ["Met"],
        "event": "River flood",
        "responseType": ["Prepare"],
        "urgency": "Expected",
        "severity": "Severe",
        "certainty": "Likely",
        "headline": f"Flood warning ({language})",
        "description": "The Lamone is rising.",
        "instruction": "Move valuables upstairs.",
        "expires": (datetime.now(UTC) + timedelta(hours=6)).isoformat(),
        "area": [{"areaDesc": "Faenza centre", "geometry": FAENZA}],
    }
    body.update(overrides)
    return body


def alert_body(*languages: str, status: str = "Actual", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "info": [info(lang) for lang in (languages or ("en",))]}
    body.update(overrides)
    return body
