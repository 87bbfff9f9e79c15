"""A token dies with the account change that should end it, and always carries an expiry."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt

from tests.conftest import PASSWORD, Harness
from tocsin.auth.schemas import Role
from tocsin.auth.tokens import ALGORITHM, AUDIENCE


async def _me(harness: Harness, headers: dict[str, str]) -> int:
    return (await harness.client.get("/api/v1/auth/me", headers=headers)).status_code


async def _change(harness: Harness, user_id: int, change: dict[str, object]) -> None:
    admin = await harness.user("root", Role.admin)
    answer = await harness.client.patch(f"/api/v1/users/{user_id}", json=change, headers=admin)
    assert answer.status_code == 200, answer.text


async def _user_id(harness: Harness, headers: dict[str, str]) -> int:
    return int((await harness.client.get("/api/v1/auth/me", headers=headers)).json()["id"])


class TestTokenVersion:
    async def test_a_password_change_ends_older_tokens(self, harness: Harness) -> None:
        old = await harness.user("olga", Role.operator)
        await _change(harness, await _user_id(harness, old), {"password": "a brand new password"})
        assert await _me(harness, old) == 401
        fresh = await harness.client.post(
            "/api/v1/auth/token", data={"username": "olga", "password": "a brand new password"}
        )
        assert await _me(harness, {"Authorization": f"Bearer {fresh.json()['access_token']}"}) == 200

    async def test_a_token_from_before_a_deactivation_stays_dead_after_reactivation(self, harness: Harness) -> None:
        old = await harness.user("olga", Role.operator)
        user_id = await _user_id(harness, old)
        await _change(harness, user_id, {"is_active": False})
        await _change(harness, user_id, {"is_active": True})
        assert await _me(harness, old) == 401
        fresh = await harness.client.post("/api/v1/auth/token", data={"username": "olga", "password": PASSWORD})
        assert fresh.status_code == 200

    async def test_a_role_change_ends_older_tokens(self, harness: Harness) -> None:
        old = await harness.user("olga", Role.operator)
        await _change(harness, await _user_id(harness, old), {"roles": ["planner"]})
        assert await _me(harness, old) == 401

    async def test_a_token_without_expiry_is_refused(self, harness: Harness) -> None:
        headers = await harness.user("olga", Role.operator)
        user_id = await _user_id(harness, headers)
        claims = {"sub": str(user_id), "ver": 0, "aud": AUDIENCE, "iat": datetime.now(UTC)}
        forever = jwt.encode(claims, harness.app.state.settings.signing_key, algorithm=ALGORITHM)
        assert await _me(harness, {"Authorization": f"Bearer {forever}"}) == 401

    async def test_issued_tokens_carry_an_expiry(self, harness: Harness) -> None:
        token = (await harness.user("olga", Role.operator))["Authorization"].split()[1]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] > claims["iat"]
