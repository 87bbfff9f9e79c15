"""Export and import: the approved glossary as SKOS (Turtle, JSON-LD) or CSV, and such files back in.

An import is read and checked as a whole (schema, references, preferred labels) before anything is written. A glossary
editor may apply it at once, as new versions with the reason given; otherwise every changed concept becomes a change
proposal for review.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.errors import PayloadTooLarge
from tocsin.glossary import csvtable, service, skos
from tocsin.glossary.schemas import MAX_IMPORT_BYTES, Concept, ExportFormat, ImportOut, ProposalStatus
from tocsin.kernel import audit
from tocsin.models import GlossaryProposal, User


async def export(session: AsyncSession, *, fmt: ExportFormat, base_url: str) -> bytes:
    concepts = sorted((await service.collection(session)).values(), key=lambda c: c.id)
    if fmt is ExportFormat.csv:
        return csvtable.export(concepts)
    return await asyncio.to_thread(skos.export, concepts, base_url=base_url, fmt=fmt)


def _parse_import(data: bytes, fmt: ExportFormat) -> dict[str, Concept]:
    return csvtable.import_concepts(data) if fmt is ExportFormat.csv else skos.import_concepts(data, fmt)


def _keep_order(existing: Concept | None, incoming: Concept) -> Concept:
    """RDF has no order: where a list has the same members as the concept's own, keep the concept's order."""
    if existing is None:
        return incoming
    data = incoming.model_dump()
    mine = existing.model_dump()
    for key in ("broader", "related", "sources"):
        if sorted(data[key]) == sorted(mine[key]):
            data[key] = mine[key]
    for lang, terms in data["terms"].items():
        for key in ("alt", "hidden"):
            if sorted(terms[key]) == sorted(mine["terms"][lang][key]):
                terms[key] = mine["terms"][lang][key]
    return Concept.model_validate(data)


async def import_file(
    session: AsyncSession, *, data: bytes, fmt: ExportFormat, actor: User, reason: str, apply: bool
) -> ImportOut:
    """Read a SKOS (Turtle, JSON-LD) or CSV file; apply it as new versions (`apply`, a glossary editor's call) or
    turn every changed concept into a change proposal for review."""
    if len(data) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"the file is larger than {MAX_IMPORT_BYTES} bytes", field="file")
    incoming = await asyncio.to_thread(_parse_import, data, fmt)
    current = await service.collection(session)
    if fmt is not ExportFormat.csv:
        incoming = {cid: _keep_order(current.get(cid), concept) for cid, concept in incoming.items()}
    if apply:
        applied = await service.apply_concepts(session, concepts=incoming, actor=actor, reason=reason, action="import")
        proposal_ids: list[int] = []
    else:
        applied, proposal_ids = await _propose_all(session, current, incoming, actor=actor, reason=reason)
    detail = {
        "format": fmt.value,
        "applied": apply,
        "created": applied.created,
        "updated": applied.updated,
        "deprecated": applied.deprecated,
        "proposals": proposal_ids,
    }
    await audit.record(session, actor=actor, action="glossary_import", detail=detail)
    return ImportOut(format=fmt, applied=apply, proposals=proposal_ids, **asdict(applied))


async def _propose_all(
    session: AsyncSession, current: Mapping[str, Concept], incoming: Mapping[str, Concept], *, actor: User, reason: str
) -> tuple[service.Applied, list[int]]:
    changed = {cid: concept for cid, concept in incoming.items() if current.get(cid) != concept}
    service.check_change(current, changed, prefix="concepts")
    versions_now = {row.id: row.version for row in await service.list_rows(session)}
    applied = service.Applied(unchanged=sorted(set(incoming) - set(changed)))
    ids: list[int] = []
    for concept_id in sorted(changed):
        kind = service.classify(current, changed[concept_id])
        applied.count(kind, concept_id)
        proposal = GlossaryProposal(
            concept_id=concept_id,
            kind=kind,
            document=changed[concept_id].model_dump(mode="json"),
            base_version=versions_now.get(concept_id),
            reason=reason,
            proposed_by_id=actor.id,
            proposed_by=actor.username,
            proposed_at=service.utcnow(),
            status=ProposalStatus.pending.value,
        )
        session.add(proposal)
        await session.flush()
        ids.append(proposal.id)
    return applied, ids
