from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from tocsin.auth import service
from tocsin.auth.deps import Admin, CurrentUser
from tocsin.auth.limits import LoginLimiter
from tocsin.auth.schemas import Token, UserCreate, UserOut, UserUpdate
from tocsin.auth.tokens import issue_token
from tocsin.db import SessionDep
from tocsin.errors import TooManyRequests, Unauthorized, refusals
from tocsin.kernel.work import WorkDep
from tocsin.types import DbId

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post("/auth/token", response_model=Token, responses=refusals(401, 429))
async def login(request: Request, session: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """OAuth2 password flow: form fields `username` and `password`; answers a bearer token. After too many failed
    attempts for one account or from one address, every attempt (the right password too) is refused with 429 until
    the window ends."""
    username, address = form.username[:64], request.client.host if request.client else "unknown"
    limits: LoginLimiter = request.app.state.login_limits
    lockout = await limits.attempt(username, address)  # counted before the password is checked
    if lockout is not None:
        whom = "this account" if lockout.cause == "account" else "this address"
        raise TooManyRequests(
            f"too many failed sign-ins for {whom}; try again in {lockout.retry_after} s",
            retry_after=lockout.retry_after,
            field="username" if lockout.cause == "account" else None,
            code=f"too_many_attempts_{lockout.cause}",
        )
    user = await service.authenticate(session, username=username, password=form.password[:256])
    if user is None:
        raise Unauthorized("wrong username or password", code="bad_credentials")
    await limits.succeeded(username, address)
    settings = request.app.state.settings
    token = issue_token(
        user_id=user.id, version=user.token_version, key=settings.signing_key, ttl_minutes=settings.token_ttl_minutes
    )
    return Token(access_token=token, expires_in=settings.token_ttl_minutes * 60)


@router.get("/auth/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    """The signed-in account and its roles."""
    return UserOut.model_validate(user)


@router.get("/users", response_model=list[UserOut])
async def list_users(session: SessionDep, _: Admin) -> list[UserOut]:
    """All accounts (admin)."""
    return [UserOut.model_validate(u) for u in await service.list_users(session)]


@router.post("/users", response_model=UserOut, status_code=201, responses=refusals(409))
async def create_user(work: WorkDep, admin: Admin, data: UserCreate) -> UserOut:
    """Create an account with one or more roles (admin)."""
    return UserOut.model_validate(await service.create_user(work.session, data=data, actor=admin))


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(work: WorkDep, admin: Admin, user_id: DbId, data: UserUpdate) -> UserOut:
    """Change an account's roles, password or whether it is active (admin). Any such change ends the account's
    access tokens and open operator feeds."""
    return UserOut.model_validate(await service.update_user(work, user_id=user_id, data=data, actor=admin))
