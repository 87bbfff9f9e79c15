from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tocsin.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH


class Role(StrEnum):
    operator = "operator"
    approver = "approver"
    planner = "planner"
    admin = "admin"
    glossary_editor = "glossary_editor"
    evaluator = "evaluator"


Username = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
    roles: Annotated[list[Role], Field(min_length=1, max_length=len(Role))]


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: Annotated[list[Role], Field(min_length=1, max_length=len(Role))] | None = None
    is_active: bool | None = None
    password: Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)] | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from a User row

    id: int
    username: str
    roles: list[Role]
    is_active: bool
    created_at: datetime
