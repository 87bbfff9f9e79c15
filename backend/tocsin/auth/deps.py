"""Dependencies that check who is calling. Every non-public route declares one of these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from tocsin.auth import service
from tocsin.auth.schemas import Role
from tocsin.auth.tokens import read_token
from tocsin.db import SessionDep
from tocsin.errors import Forbidden, Unauthorized
from tocsin.models import User

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def optional_user(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User | None:
    if token is None:
        return None
    claims = read_token(token, key=request.app.state.settings.signing_key)
    if claims is None:
        raise Unauthorized("the access token is invalid or expired", code="invalid_token")
    user = await service.get_user(session, user_id=claims.user_id)
    if user is None or not service.token_still_valid(user, claims):
        raise Unauthorized(
            "the account is unknown or disabled, or changed since this token was issued; sign in again",
            code="invalid_token",
        )
    return user


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise Unauthorized("sign in first: POST /api/v1/auth/token", code="not_authenticated")
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]


def require(*roles: Role) -> Callable[[User], Awaitable[User]]:
    """A dependency that admits users holding any of `roles`."""
    names = ", ".join(role.value for role in roles)

    async def check(user: CurrentUser) -> User:
        if not service.has_role(user, *roles):
            raise Forbidden(f"this needs the role {names}", code="missing_role")
        return user

    return check


Operator = Annotated[User, Depends(require(Role.operator, Role.approver))]
Approver = Annotated[User, Depends(require(Role.approver))]
Admin = Annotated[User, Depends(require(Role.admin))]
AuditReader = Annotated[User, Depends(require(Role.approver, Role.admin))]
Staff = Annotated[User, Depends(require(*Role))]
