"""Demo content for embedded mode: an organisation and one account per role, with generated passwords.

The passwords are generated on first start, kept (mode 0600) in data_dir/demo-credentials.txt and printed at every
start, so no password ships with the code.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.auth import service as users
from tocsin.auth.schemas import Role, UserCreate
from tocsin.config import Settings

DEMO_ORGANISATION = "Demo Civil Protection"
DEMO_ACCOUNTS: dict[str, list[Role]] = {
    "operator": [Role.operator],
    "approver": [Role.approver],
    "planner": [Role.planner],
    "evaluator": [Role.evaluator],
    "admin": [Role.admin, Role.approver, Role.operator, Role.planner, Role.glossary_editor, Role.evaluator],
}


def credentials_file(settings: Settings) -> Path:
    return settings.data_dir / "demo-credentials.txt"


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split(" ", 1) for line in path.read_text(encoding="utf-8").splitlines() if " " in line)
    return {name: password for name, password in pairs}


async def seed(session: AsyncSession, settings: Settings) -> dict[str, str]:
    """Create what is missing; return username -> password for the demo accounts."""
    await users.ensure_organisation(session, name=DEMO_ORGANISATION, cap_sender=settings.cap_sender)
    path = credentials_file(settings)
    known = _read(path)
    for username, roles in DEMO_ACCOUNTS.items():
        if await users.get_user_by_name(session, username=username) is not None and username in known:
            continue
        password = secrets.token_urlsafe(12)
        existing = await users.get_user_by_name(session, username=username)
        if existing is None:
            await users.create_user(session, data=UserCreate(username=username, password=password, roles=roles))
        else:
            from tocsin.auth.passwords import hash_password

            existing.password_hash = hash_password(password)
        known[username] = password
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name} {password}\n" for name, password in known.items()), encoding="utf-8")
    path.chmod(0o600)
    return {name: known[name] for name in DEMO_ACCOUNTS}
