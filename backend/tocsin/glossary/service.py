"""The glossary's approved state, its versions, change proposals, search and lint (export and import: exchange.py).

Every function takes the session first, flushes, and never commits: the caller commits once. Every change to a
concept is a new version (who, when, why) written in the same transaction as the change; proposals, decisions and
imports go to the audit log too. Changes are serialised (backend.lock_glossary) and checked against the whole
glossary, so references always resolve and no preferred label is shared by two concepts in one language.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.errors import InvalidInput, NotFound
from tocsin.glossary import files
from tocsin.glossary.lint import Linter
from tocsin.glossary.schemas import (
    Concept,
    ConceptStatus,
    Finding,
    ProposalKind,
    SearchHit,
)
from tocsin.glossary.search import SearchIndex, fold
from tocsin.models import GlossaryConcept, GlossaryProposal, GlossaryVersion, User

log = logging.getLogger(__name__)

FILES_ACTOR = "files"
LOADED_REASON = "loaded from files"


def utcnow() -> datetime:
    return datetime.now(UTC)


def concept_of(row: GlossaryConcept | GlossaryVersion | GlossaryProposal) -> Concept:
    return Concept.model_validate(row.document)


# ---- reading ------------------------------------------------------------------------------------------------------


async def get_row(session: AsyncSession, *, concept_id: str) -> GlossaryConcept:
    row = await session.get(GlossaryConcept, concept_id)
    if row is None:
        raise NotFound(f"no glossary concept '{concept_id}'", field="concept_id", code="concept_not_found")
    return row


async def list_rows(
    session: AsyncSession, *, domain: str | None = None, status: str | None = None
) -> Sequence[GlossaryConcept]:
    query = select(GlossaryConcept).order_by(GlossaryConcept.id)
    if domain is not None:
        query = query.where(GlossaryConcept.domain == domain)
    if status is not None:
        query = query.where(GlossaryConcept.status == status)
    return (await session.execute(query)).scalars().all()


async def collection(session: AsyncSession) -> dict[str, Concept]:
    return {row.id: concept_of(row) for row in await list_rows(session)}


async def count_concepts(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(GlossaryConcept))).scalar_one())


async def versions(session: AsyncSession, *, concept_id: str) -> Sequence[GlossaryVersion]:
    await get_row(session, concept_id=concept_id)
    query = select(GlossaryVersion).where(GlossaryVersion.concept_id == concept_id).order_by(GlossaryVersion.version)
    return (await session.execute(query)).scalars().all()


async def get_version(session: AsyncSession, *, concept_id: str, version: int) -> GlossaryVersion:
    row = await session.get(GlossaryVersion, (concept_id, version))
    if row is None:
        raise NotFound(f"'{concept_id}' has no version {version}", field="version", code="version_not_found")
    return row


# ---- the in-memory index, rebuilt when the glossary changed -------------------------------------------------------


@dataclass
class Snapshot:
    key: tuple[Any, ...]
    concepts: dict[str, Concept]
    index: SearchIndex
    linter: Linter


_snapshots: dict[str, Snapshot] = {}


async def snapshot(session: AsyncSession) -> Snapshot:
    """The search index and linter for the current glossary. Versions only grow and concepts are never deleted, so
    (count, sum of versions, last change) changes with every change; each worker rebuilds its own copy."""
    key = tuple(
        (
            await session.execute(
                select(
                    func.count(GlossaryConcept.id),
                    func.coalesce(func.sum(GlossaryConcept.version), 0),
                    func.max(GlossaryConcept.updated_at),
                )
            )
        ).one()
    )
    database = str(session.get_bind().engine.url)
    found = _snapshots.get(database)
    if found is not None and found.key == key:
        return found
    concepts = await collection(session)
    found = _snapshots[database] = Snapshot(key, concepts, SearchIndex(concepts), Linter(concepts))
    return found


async def search(session: AsyncSession, *, q: str, lang: str | None = None, limit: int = 10) -> list[SearchHit]:
    if not fold(q):
        raise InvalidInput("the query has no letters or digits", field="q")
    return (await snapshot(session)).index.search(q, lang=lang, limit=limit)


async def lint_text(session: AsyncSession, *, text: str, lang: str) -> list[Finding]:
    # In a thread: the first text in a language loads that language's lemma dictionary (up to a second or two),
    # which must not hold up the event loop (and the WebSocket clients on it).
    return await asyncio.to_thread((await snapshot(session)).linter.lint, text, lang)


async def linter(session: AsyncSession) -> Linter:
    """The linter for the current glossary. Its first text in a language loads that language's lemma dictionary
    (up to a second or two): call its `lint` in a thread, off the event loop."""
    return (await snapshot(session)).linter


# ---- changes --------------------------------------------------------------------------------------------------------


def check_change(current: Mapping[str, Concept], changed: Mapping[str, Concept], *, prefix: str) -> None:
    """Refuse, naming the field, a change that would leave the glossary inconsistent. `prefix` is where the changed
    concepts sit in the request ("document", or "concepts" followed by the id)."""
    merged = {**current, **changed}
    for problem in files.check_collection(merged):
        if problem.concept_id in changed:
            where = prefix if prefix == "document" else f"{prefix}.{problem.concept_id}"
            raise InvalidInput(f"{problem.concept_id}: {problem.message}", field=f"{where}.{problem.field}")


@dataclass
class Applied:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deprecated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def count(self, kind: str, concept_id: str) -> None:
        {"create": self.created, "update": self.updated, "deprecate": self.deprecated}[kind].append(concept_id)


async def apply_version(
    session: AsyncSession,
    *,
    concept: Concept,
    action: str,
    actor: User | None,
    actor_name: str,
    reason: str,
    proposal_id: int | None = None,
    flush: bool = True,
) -> GlossaryConcept:
    """Write the concept as its next version (version 1 if it is new)."""
    now = utcnow()
    document = concept.model_dump(mode="json")
    row = await session.get(GlossaryConcept, concept.id)
    if row is None:
        row = GlossaryConcept(id=concept.id, version=1)
        session.add(row)
    else:
        row.version += 1
    row.domain, row.status, row.document = concept.domain.value, concept.status.value, document
    row.updated_at, row.updated_by = now, actor_name
    session.add(
        GlossaryVersion(
            concept_id=concept.id,
            version=row.version,
            document=document,
            action=action,
            changed_at=now,
            changed_by_id=None if actor is None else actor.id,
            changed_by=actor_name,
            reason=reason,
            proposal_id=proposal_id,
        )
    )
    if flush:
        await session.flush()
    return row


def classify(current: Mapping[str, Concept], concept: Concept) -> str:
    existing = current.get(concept.id)
    if existing is None:
        return ProposalKind.create.value
    if concept.status is ConceptStatus.deprecated and existing.status is ConceptStatus.active:
        return ProposalKind.deprecate.value
    return ProposalKind.update.value


async def apply_concepts(
    session: AsyncSession,
    *,
    concepts: Mapping[str, Concept],
    actor: User | None,
    reason: str,
    action: str,
    prefix: str = "concepts",
) -> Applied:
    """Create new concepts and give changed ones a new version; leave equal ones alone. Checked as one change."""
    await backend.lock_glossary(session)
    current = await collection(session)
    changed = {cid: concept for cid, concept in concepts.items() if current.get(cid) != concept}
    check_change(current, changed, prefix=prefix)
    applied = Applied(unchanged=sorted(set(concepts) - set(changed)))
    name = FILES_ACTOR if actor is None else actor.username
    for concept_id in sorted(changed):
        concept = changed[concept_id]
        applied.count(classify(current, concept), concept_id)
        await apply_version(
            session, concept=concept, action=action, actor=actor, actor_name=name, reason=reason, flush=False
        )
    await session.flush()  # one flush for the lot: concepts are inserted before their versions (foreign key order)
    return applied


# ---- files ----------------------------------------------------------------------------------------------------------


async def load_files(session: AsyncSession, *, directory: Path, actor: User | None = None) -> Applied:
    """`tocsin glossary load`: the reviewed files into the database (new concepts created, changed ones versioned)."""
    concepts = await asyncio.to_thread(files.load_directory, directory)
    return await apply_concepts(session, concepts=concepts, actor=actor, reason=LOADED_REASON, action="load")


async def write_files(session: AsyncSession, *, directory: Path) -> list[str]:
    """`tocsin glossary write`: the approved state back into the files; only files that differ are written."""
    concepts = await collection(session)

    def write_all() -> list[str]:
        return [cid for cid in sorted(concepts) if files.write_concept(directory, concepts[cid])]

    return await asyncio.to_thread(write_all)


async def load_files_if_empty(session: AsyncSession, directory: Path | None = None) -> int:
    """Embedded mode's start: an empty glossary is filled from the files (default: the installed copy of `glossary/`).
    A broken file is logged, not fatal: the rest of Tocsin starts (and nothing of the files is written)."""
    directory = directory or files.default_glossary_dir()
    if await count_concepts(session) > 0:
        return 0
    if not files.concepts_dir(directory).is_dir():
        log.warning("no glossary content at %s; the glossary stays empty", directory)
        return 0
    try:
        applied = await load_files(session, directory=directory)
    except (files.ContentError, InvalidInput) as exc:
        log.error("the glossary files at %s were not loaded: %s", directory, exc)
        raise GlossaryNotLoaded from exc
    log.info("loaded %d glossary concepts from %s", len(applied.created), directory)
    return len(applied.created)


class GlossaryNotLoaded(Exception):
    """The glossary files were refused (logged): the caller's unit of work rolls back what was added of them."""
