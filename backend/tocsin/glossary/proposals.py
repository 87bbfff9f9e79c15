"""Change proposals: any staff member proposes a new concept, a change or a deprecation; a glossary editor (not the
proposer) approves it as the concept's next version, or rejects it with a note. Like the service, every function
flushes and never commits: the caller's unit of work commits once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.errors import Conflict, Forbidden, InvalidInput, NotFound
from tocsin.glossary import service
from tocsin.glossary.schemas import Concept, ConceptStatus, ProposalIn, ProposalKind, ProposalStatus
from tocsin.kernel import audit
from tocsin.models import GlossaryConcept, GlossaryProposal, User


async def propose(session: AsyncSession, *, body: ProposalIn, proposer: User) -> GlossaryProposal:
    """Any staff member proposes; a glossary editor decides. The proposal holds the concept as it would become."""
    current = await service.collection(session)
    document, base_version = await _proposed_document(session, body, current)
    service.check_change(current, {document.id: document}, prefix="document")
    proposal = GlossaryProposal(
        concept_id=document.id,
        kind=body.kind.value,
        document=document.model_dump(mode="json"),
        base_version=base_version,
        reason=body.reason,
        proposed_by_id=proposer.id,
        proposed_by=proposer.username,
        proposed_at=service.utcnow(),
        status=ProposalStatus.pending.value,
    )
    session.add(proposal)
    await session.flush()
    detail = {"proposal_id": proposal.id, "concept_id": proposal.concept_id, "kind": proposal.kind}
    await audit.record(session, actor=proposer, action="glossary_propose", detail=detail)
    return proposal


async def _proposed_document(
    session: AsyncSession, body: ProposalIn, current: Mapping[str, Concept]
) -> tuple[Concept, int | None]:
    if body.kind is ProposalKind.deprecate:
        if body.concept_id is None:
            raise InvalidInput("name the concept to deprecate", field="concept_id")
        row = await service.get_row(session, concept_id=body.concept_id)
        existing = current[row.id]
        if existing.status is ConceptStatus.deprecated:
            raise Conflict(f"'{row.id}' is deprecated already", field="concept_id", code="concept_deprecated")
        _check_replacement(current, row.id, body.replaced_by)
        document = existing.model_copy(update={"status": ConceptStatus.deprecated, "replaced_by": body.replaced_by})
        return Concept.model_validate(document.model_dump()), row.version
    if body.document is None:
        raise InvalidInput(f"a {body.kind.value} proposal carries the concept as `document`", field="document")
    document = body.document
    if body.concept_id is not None and body.concept_id != document.id:
        raise InvalidInput("concept_id and document.id differ", field="document.id")
    if body.kind is ProposalKind.create:
        if document.id in current:
            raise Conflict(f"'{document.id}' exists; propose an update", field="document.id", code="concept_exists")
        if document.status is not ConceptStatus.active:
            raise InvalidInput("a new concept is active", field="document.status")
        return document, None
    row = await service.get_row(session, concept_id=document.id)
    if document.status is ConceptStatus.deprecated and current[row.id].status is ConceptStatus.active:
        raise InvalidInput("to deprecate a concept, propose a deprecation", field="document.status")
    if document == current[row.id]:
        raise InvalidInput("the proposed concept is the same as the current one", field="document")
    return document, row.version


def _check_replacement(current: Mapping[str, Concept], concept_id: str, replaced_by: str | None) -> None:
    if replaced_by is None:
        raise InvalidInput("a deprecation names the concept that replaces it", field="replaced_by")
    replacement = current.get(replaced_by)
    if replaced_by == concept_id:
        raise InvalidInput("a concept cannot replace itself", field="replaced_by")
    if replacement is None or replacement.status is not ConceptStatus.active:
        raise InvalidInput(f"'{replaced_by}' is not an active concept", field="replaced_by")


async def get_proposal(session: AsyncSession, *, proposal_id: int) -> GlossaryProposal:
    proposal = await session.get(GlossaryProposal, proposal_id)
    if proposal is None:
        raise NotFound(f"no proposal {proposal_id}", field="proposal_id", code="proposal_not_found")
    return proposal


async def list_proposals(
    session: AsyncSession, *, status: str | None = None, concept_id: str | None = None, limit: int = 200
) -> Sequence[GlossaryProposal]:
    query = select(GlossaryProposal).order_by(GlossaryProposal.id.desc()).limit(limit)
    if status is not None:
        query = query.where(GlossaryProposal.status == status)
    if concept_id is not None:
        query = query.where(GlossaryProposal.concept_id == concept_id)
    return (await session.execute(query)).scalars().all()


async def _pending(session: AsyncSession, proposal_id: int) -> GlossaryProposal:
    await backend.lock_glossary(session)
    proposal = await get_proposal(session, proposal_id=proposal_id)
    if proposal.status != ProposalStatus.pending:
        raise Conflict(f"proposal {proposal_id} is {proposal.status} already", code="proposal_decided")
    return proposal


def _decide(proposal: GlossaryProposal, editor: User, status: ProposalStatus, note: str | None) -> None:
    proposal.status = status.value
    proposal.decided_by_id, proposal.decided_by = editor.id, editor.username
    proposal.decided_at = service.utcnow()
    proposal.decision_note = note


async def approve(
    session: AsyncSession, *, proposal_id: int, editor: User, note: str | None = None
) -> GlossaryProposal:
    """Apply the proposal as the concept's next version, in this transaction. Not by its own proposer."""
    proposal = await _pending(session, proposal_id)
    if proposal.proposed_by_id == editor.id:
        raise Forbidden("a proposal is approved by someone other than its proposer", code="own_proposal")
    concept = service.concept_of(proposal)
    current = await service.collection(session)
    row = await session.get(GlossaryConcept, concept.id)
    if proposal.kind == ProposalKind.create and row is not None:
        raise Conflict(f"'{concept.id}' was created meanwhile", code="concept_exists")
    if row is not None and row.version != proposal.base_version:
        raise Conflict(
            f"'{concept.id}' changed since this proposal (now version {row.version}); propose the change again",
            code="stale_proposal",
        )
    if proposal.kind == ProposalKind.deprecate:
        _check_replacement(current, concept.id, concept.replaced_by)
    service.check_change(current, {concept.id: concept}, prefix="document")
    why = proposal.reason if not note else f"{proposal.reason} (approved: {note})"
    applied = await service.apply_version(
        session,
        concept=concept,
        action=proposal.kind,
        actor=editor,
        actor_name=editor.username,
        reason=why,
        proposal_id=proposal.id,
    )
    _decide(proposal, editor, ProposalStatus.approved, note)
    proposal.applied_version = applied.version
    detail = {"proposal_id": proposal.id, "concept_id": concept.id, "version": applied.version}
    await audit.record(session, actor=editor, action="glossary_approve", detail=detail)
    return proposal


async def reject(session: AsyncSession, *, proposal_id: int, editor: User, note: str) -> GlossaryProposal:
    """Reject with a note saying why. An editor may reject their own proposal: that withdraws it."""
    proposal = await _pending(session, proposal_id)
    _decide(proposal, editor, ProposalStatus.rejected, note)
    await session.flush()
    detail = {"proposal_id": proposal.id, "concept_id": proposal.concept_id, "note": note}
    await audit.record(session, actor=editor, action="glossary_reject", detail=detail)
    return proposal
