from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.backend import JSONDocument, UTCDateTime
from tocsin.db import Base


class Exercise(Base):
    """One run of a scenario. `scenario` is the whole scenario document as it was when the exercise was created.

    The clock: scenario time was `clock_seconds` at `clock_at` (wall time); while running it advances `speed` scenario
    seconds per wall second. Every start, pause, resume or speed change rewrites the pair and bumps `clock_version`, so
    the scheduler knows to reschedule what is pending.
    """

    __tablename__ = "exercises"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scenario_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    scenario: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    state: Mapped[str] = mapped_column(String(16), index=True)
    speed: Mapped[float]
    clock_seconds: Mapped[float]
    clock_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clock_version: Mapped[int]
    devices: Mapped[int]
    seed: Mapped[int]
    transport: Mapped[str] = mapped_column(String(16))
    autoplay: Mapped[bool] = mapped_column(default=False, server_default=false())  # run the scripted player actions
    join_token: Mapped[str] = mapped_column(String(64))
    stats: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ExerciseEvent(Base):
    """The exercise's timeline: injects fired, scripted and logged player actions, exercise alerts, triage, clock.

    `key` makes firing idempotent ("inject:5" is written once however often the scheduler tries); `id` orders the
    timeline and is the cursor clients follow it with.
    """

    __tablename__ = "exercise_events"
    __table_args__ = (UniqueConstraint("exercise_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))
    scenario_seconds: Mapped[float]
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str | None] = mapped_column(Text)
    number: Mapped[int | None]
    to: Mapped[str | None] = mapped_column(String(16))
    objectives: Mapped[list[str]] = mapped_column(JSONDocument)
    fulfils: Mapped[list[str]] = mapped_column(JSONDocument)
    alert_id: Mapped[uuid.UUID | None]
    actor: Mapped[str | None] = mapped_column(String(64))


class ExerciseDevice(Base):
    """A synthetic citizen of an exercise: where it lives (synthetic, so storing it is harmless) and who it is."""

    __tablename__ = "exercise_devices"

    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    area: Mapped[str] = mapped_column(String(64))
    lon: Mapped[float]
    lat: Mapped[float]
    lang: Mapped[str] = mapped_column(String(16))
    vulnerable: Mapped[bool]


class ExerciseReceipt(Base):
    """When a synthetic device had an alert in hand (what the reach figures of the after-action report count)."""

    __tablename__ = "exercise_receipts"

    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    scenario_seconds: Mapped[float]


class ExerciseObservation(Base):
    __tablename__ = "exercise_observations"

    id: Mapped[int] = mapped_column(primary_key=True)
    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    objective: Mapped[str | None] = mapped_column(String(16))
    inject: Mapped[int | None]
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(64))
    scenario_seconds: Mapped[float]
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExerciseRating(Base):
    """An evaluator's P/S/M/U rating of one objective; rating again replaces it."""

    __tablename__ = "exercise_ratings"
    __table_args__ = (UniqueConstraint("exercise_id", "objective"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"), index=True)
    objective: Mapped[str] = mapped_column(String(16))
    rating: Mapped[str] = mapped_column(String(1))
    rationale: Mapped[str | None] = mapped_column(Text)
    rated_by: Mapped[str] = mapped_column(String(64))
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExerciseImprovement(Base):
    """One line of the improvement plan."""

    __tablename__ = "exercise_improvements"

    id: Mapped[int] = mapped_column(primary_key=True)
    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"), index=True)
    objective: Mapped[str | None] = mapped_column(String(16))
    issue: Mapped[str] = mapped_column(Text)
    corrective_action: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(300))
    due: Mapped[date | None]
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
