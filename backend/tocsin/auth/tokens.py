from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
AUDIENCE = "tocsin"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    version: int  # the user's token_version when the token was issued
    expires_at: datetime


def issue_token(*, user_id: int, version: int, key: str, ttl_minutes: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "ver": version,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=ttl_minutes),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_token(token: str, *, key: str) -> TokenClaims | None:
    """The claims of a valid, unexpired token that carries an expiry and a version; None otherwise."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": ["exp", "sub", "ver"]}
        )
        version = claims["ver"]
        if not isinstance(version, int):
            return None
        return TokenClaims(int(claims["sub"]), version, datetime.fromtimestamp(claims["exp"], UTC))
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, OverflowError):
        return None
