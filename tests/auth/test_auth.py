"""Accounts, tokens and roles on both backends; the CLI that creates accounts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD, Harness
from tocsin.auth import service as users
from tocsin.auth.schemas import Role, UserCreate
from tocsin.errors import Conflict
from tocsin.kernel.channels import USERS_CHANNEL
from tocsin.models import User


class TestLogin:
    async def test_password_flow_returns_a_bearer_token(self, harness: Harness) -> None:
        headers = await harness.user("olga", Role.operator, Role.planner)
        me = await harness.client.get("/api/v1/auth/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["roles"] == ["operator", "planner"]

    async def test_wrong_password_is_401(self, harness: Harness) -> None:
        await harness.user("olga")
        response = await harness.client.post("/api/v1/auth/token", data={"username": "olga", "password": "nope"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "bad_credentials"

    async def test_unknown_user_is_401(self, harness: Harness) -> None:
        response = await harness.client.post("/api/v1/auth/token", data={"username": "ghost", "password": PASSWORD})
        assert response.status_code == 401

    async def test_forged_token_is_401(self, harness: Harness) -> None:
        response = await harness.client.get("/api/v1/auth/me", headers={"Authorization": "Bearer abc.def.ghi"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_token"

    async def test_password_is_stored_hashed(self, harness: Harness) -> None:
        await harness.user("olga")
        async with harness.database.sessions() as session:
            stored = (await session.execute(select(User.password_hash).where(User.username == "olga"))).scalar_one()
        assert PASSWORD not in stored
        assert stored.startswith("$argon2")

    async def test_disabled_account_loses_access(self, harness: Harness) -> None:
        operator = await harness.user("olga")
        admin = await harness.user("adam", Role.admin)
        me = (await harness.client.get("/api/v1/auth/me", headers=operator)).json()
        response = await harness.client.patch(f"/api/v1/users/{me['id']}", json={"is_active": False}, headers=admin)
        assert response.status_code == 200
        assert (await harness.client.get("/api/v1/auth/me", headers=operator)).status_code == 401


class TestUsersAdmin:
    async def test_admin_creates_accounts_and_others_cannot(self, harness: Harness) -> None:
        admin = await harness.user("adam", Role.admin)
        body = {"username": "anna", "password": "long enough password", "roles": ["approver"]}
        created = await harness.client.post("/api/v1/users", json=body, headers=admin)
        assert created.status_code == 201
        assert created.json()["roles"] == ["approver"]
        again = await harness.client.post("/api/v1/users", json=body, headers=admin)
        assert again.status_code == 409
        assert again.json()["error"]["field"] == "username"
        operator = await harness.user("olga")
        assert (await harness.client.get("/api/v1/users", headers=operator)).status_code == 403

    async def test_short_password_and_unknown_role_name_their_field(self, harness: Harness) -> None:
        admin = await harness.user("adam", Role.admin)
        short = await harness.client.post(
            "/api/v1/users",
            json={"username": "x1", "password": "short", "roles": ["operator"]},
            headers=admin,
        )
        assert short.status_code == 422
        assert short.json()["error"]["field"] == "password"
        role = await harness.client.post(
            "/api/v1/users",
            json={"username": "x2", "password": "long enough pw", "roles": ["king"]},
            headers=admin,
        )
        assert role.json()["error"]["field"] == "roles[0]"

    async def test_a_taken_username_leaves_the_callers_transaction_intact(self, harness: Harness) -> None:
        admin_headers = await harness.user("adam", Role.admin)
        assert admin_headers
        async with harness.database.sessions() as session:
            admin = (await session.execute(select(User).where(User.username == "adam"))).scalar_one()
            first = UserCreate(username="bea", password="long enough password", roles=[Role.operator])
            await users.create_user(session, data=first, actor=admin)
            with pytest.raises(Conflict):
                await users.create_user(session, data=first, actor=admin)
            await session.commit()  # what the caller did before the clash is still there to commit
        async with harness.database.sessions() as session:
            names = (await session.execute(select(User.username).where(User.username == "bea"))).scalars().all()
        assert names == ["bea"]

    async def test_a_changed_account_is_announced_only_after_commit(self, harness: Harness) -> None:
        admin = await harness.user("adam", Role.admin)
        await harness.user("olga")
        heard: list[dict[str, Any]] = []

        async def listen(message: dict[str, Any]) -> None:
            heard.append(message)

        harness.app.state.bus.subscribe(USERS_CHANNEL, listen)
        listed = await harness.client.get("/api/v1/users", headers=admin)
        olga = next(u for u in listed.json() if u["username"] == "olga")
        refused = await harness.client.patch(f"/api/v1/users/{olga['id']}", json={"roles": ["king"]}, headers=admin)
        assert refused.status_code == 422
        changed = await harness.client.patch(f"/api/v1/users/{olga['id']}", json={"is_active": False}, headers=admin)
        assert changed.status_code == 200
        await harness.app.state.bus.drain()
        assert heard == [{"type": "user_changed", "user_id": olga["id"]}]


class TestUsersAddCommand:
    def test_creates_an_account_that_can_sign_in(self, tmp_path: Path) -> None:
        env = {**os.environ, "TOCSIN_DATA_DIR": str(tmp_path), "TOCSIN_MODE": "embedded"}
        env.pop("TOCSIN_DATABASE_URL", None)
        command = [
            sys.executable,
            "-m",
            "tocsin.cli",
            "users",
            "add",
            "anna",
            "--role",
            "approver",
            "--role",
            "operator",
            "--password-stdin",
        ]
        done = subprocess.run(
            command,
            input="a long enough password\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "created anna with roles approver, operator" in done.stdout
        again = subprocess.run(
            command,
            input="a long enough password\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert again.returncode == 1
        assert "exists" in again.stderr
