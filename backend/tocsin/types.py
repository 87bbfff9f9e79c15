"""Bounded scalar types shared by every schema and route, so a value the database cannot hold is refused at the door.

- `DbId`: a row id as every table stores it (INTEGER on PostgreSQL: 1 .. 2**31-1). A larger number cannot name a row;
  asked for, it would overflow the driver (asyncpg: int32) or SQLite (int64) and answer 500 instead of 4xx.
- `Cursor`: a "rows after this id" position (0 .. 2**31-1).
- `Instant`: a time with an explicit offset whose UTC value lies in years 1900..9999. `9999-12-31T23:59:59-14:00` is
  valid ISO 8601 but has no UTC value a `datetime` can hold; storing or comparing it would raise `OverflowError`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

DB_ID_MAX = 2**31 - 1
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
INSTANT_RANGE = "between 1900-01-01T00:00:00Z and 9999-12-31T23:59:59Z"

DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX)]
Cursor = Annotated[int, Field(ge=0, le=DB_ID_MAX)]


def in_utc_range(value: datetime) -> datetime:
    """Refuse times whose UTC conversion overflows or falls outside years 1900..9999 (the value itself is kept)."""
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"must be {INSTANT_RANGE}") from None
    if not EARLIEST <= utc <= LATEST:
        raise ValueError(f"must be {INSTANT_RANGE}")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(in_utc_range)]
