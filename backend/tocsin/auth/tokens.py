from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
AUDIENCE = "tocsin"


def issue_token(*, user_id: int, key: str, ttl_minutes: int) -> str:
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "aud": AUDIENCE, "iat": now, "exp": now + timedelta(minutes=ttl_minutes)}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_token(token: str, *, key: str) -> int | None:
    """The user id in a valid, unexpired token; None otherwise."""
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE)
        return int(claims["sub"])
    except (jwt.PyJWTError, KeyError, ValueError):
        return None
