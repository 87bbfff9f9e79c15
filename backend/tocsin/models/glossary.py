from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.backend import JSONDocument, UTCDateTime
from tocsin.db import Base


class GlossaryConcept(Base):
    """The approved state of one glossary concept. `document` is the whole concept as `glossary.schemas.Concept`
    dumps it (the content of its YAML file); `status` and `domain` repeat what lists filter on."""

    __tablename__ = "glossary_concepts"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    domain: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    version: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(64))


class GlossaryVersion(Base):
    """Every state a concept has had: who, when and why. Version 1 is the first; never changed afterwards."""

    __tablename__ = "glossary_versions"

    concept_id: Mapped[str] = mapped_column(ForeignKey("glossary_concepts.id"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    action: Mapped[str] = mapped_column(String(16))  # create | update | deprecate | load | import
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_by: Mapped[str] = mapped_column(String(64))  # a username, or "files" for `tocsin glossary load`
    reason: Mapped[str] = mapped_column(Text)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("glossary_proposals.id"), index=True)


class GlossaryProposal(Base):
    """A change someone proposed and a glossary editor approves or rejects. `document` is the concept as it would
    be after the change; `base_version` the version it was proposed against (None for a new concept)."""

    __tablename__ = "glossary_proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    concept_id: Mapped[str] = mapped_column(String(100), index=True)  # no foreign key: a create names a new id
    kind: Mapped[str] = mapped_column(String(16))  # create | update | deprecate
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    base_version: Mapped[int | None]
    reason: Mapped[str] = mapped_column(Text)
    proposed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | approved | rejected
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(Text)
    applied_version: Mapped[int | None]
