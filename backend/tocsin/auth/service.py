from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.auth.passwords import DUMMY_HASH, hash_password_in_thread, verify_password_in_thread
from tocsin.auth.schemas import Role, UserCreate, UserUpdate
from tocsin.auth.tokens import TokenClaims
from tocsin.errors import Conflict, NotFound
from tocsin.kernel import audit
from tocsin.kernel.channels import USERS_CHANNEL
from tocsin.kernel.work import UnitOfWork
from tocsin.models import Organisation, User


async def create_user(session: AsyncSession, *, data: UserCreate, actor: User | None = None) -> User:
    values = {
        "username": data.username,
        "password_hash": await hash_password_in_thread(data.password),
        "roles": sorted({role.value for role in data.roles}),
        "is_active": True,
        "created_at": datetime.now(UTC),
    }
    # The unique username decides: a clash writes nothing and leaves the caller's transaction as it was.
    if not await backend.insert_or_ignore(session, User, values):
        raise Conflict(f"a user named '{data.username}' exists", field="username", code="user_exists")
    user = await get_user_by_name(session, username=data.username)
    assert user is not None  # written by this transaction
    await audit.record(
        session, actor=actor, action="user_create", detail={"username": user.username, "roles": user.roles}
    )
    return user


async def get_user(session: AsyncSession, *, user_id: int) -> User | None:
    return await session.get(User, user_id)


def token_still_valid(user: User | None, claims: TokenClaims) -> bool:
    """A token dies with any change to its user's password, roles or active state (the version moves on)."""
    return user is not None and user.is_active and user.token_version == claims.version


async def get_user_by_name(session: AsyncSession, *, username: str) -> User | None:
    return (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()


async def authenticate(session: AsyncSession, *, username: str, password: str) -> User | None:
    user = await get_user_by_name(session, username=username)
    if user is None:
        await verify_password_in_thread(DUMMY_HASH, password)
        return None
    if not await verify_password_in_thread(user.password_hash, password) or not user.is_active:
        return None
    return user


async def list_users(session: AsyncSession) -> Sequence[User]:
    return (await session.execute(select(User).order_by(User.username))).scalars().all()


async def update_user(work: UnitOfWork, *, user_id: int, data: UserUpdate, actor: User) -> User:
    """Any change to roles, password or active state voids the account's tokens; every worker closes its open
    operator feeds after commit."""
    session = work.session
    user = await backend.get_for_update(session, User, user_id)  # two admins at once: neither change is lost
    if user is None:
        raise NotFound(f"no user {user_id}", code="user_not_found")
    changed: dict[str, object] = {}
    if data.roles is not None and sorted({role.value for role in data.roles}) != user.roles:
        user.roles = sorted({role.value for role in data.roles})
        changed["roles"] = user.roles
    if data.is_active is not None and data.is_active != user.is_active:
        user.is_active = data.is_active
        changed["is_active"] = data.is_active
    if data.password is not None:
        user.password_hash = await hash_password_in_thread(data.password)
        changed["password"] = "changed"
    if changed:  # every token issued so far stops working, and open operator feeds of this user close
        user.token_version += 1
        work.publish_after_commit(USERS_CHANNEL, {"type": "user_changed", "user_id": user.id})
    await session.flush()
    await audit.record(session, actor=actor, action="user_update", detail={"username": user.username, **changed})
    return user


def has_role(user: User, *roles: Role) -> bool:
    return any(role.value in user.roles for role in roles)


async def ensure_organisation(session: AsyncSession, *, name: str, cap_sender: str) -> Organisation:
    found = (await session.execute(select(Organisation).where(Organisation.name == name))).scalar_one_or_none()
    if found is not None:
        return found
    organisation = Organisation(name=name, cap_sender=cap_sender, created_at=datetime.now(UTC))
    session.add(organisation)
    await session.flush()
    return organisation
