from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from tocsin.auth.deps import OptionalUser, Staff, require
from tocsin.auth.schemas import Role
from tocsin.db import SessionDep
from tocsin.errors import UnsupportedMediaType, refusals, text_body
from tocsin.glossary import exchange, proposals, service
from tocsin.glossary.schemas import (
    ID_PATTERN,
    MAX_IMPORT_BYTES,
    MAX_QUERY,
    ConceptOut,
    ConceptStatus,
    ConceptSummary,
    DecisionIn,
    Domain,
    ExportFormat,
    ImportOut,
    Language,
    LintIn,
    LintOut,
    ProposalIn,
    ProposalOut,
    ProposalStatus,
    Reason,
    RejectIn,
    SearchHit,
    VersionOut,
)
from tocsin.glossary.skos import MEDIA_TYPES
from tocsin.kernel.work import WorkDep
from tocsin.models import GlossaryConcept, User
from tocsin.types import DbId

ConceptPath = Annotated[str, Path(min_length=1, max_length=100, pattern=ID_PATTERN, description="a concept id: flood")]

router = APIRouter(prefix="/api/v1", tags=["glossary"])

GlossaryEditor = Annotated[User, Depends(require(Role.glossary_editor))]
IMPORT_TYPES = {
    "text/turtle": ExportFormat.ttl,
    "application/x-turtle": ExportFormat.ttl,
    "application/ld+json": ExportFormat.jsonld,
    "application/json": ExportFormat.jsonld,
    "text/csv": ExportFormat.csv,
}
IMPORT_PATH = "/api/v1/glossary/import"
IMPORT_MAX_BYTES = MAX_IMPORT_BYTES  # BodySizeLimit lets this path carry more than a JSON request


def _concept_out(row: GlossaryConcept, user: User | None) -> ConceptOut:
    return ConceptOut(
        concept=service.concept_of(row),
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by if user is not None else None,
    )


def _summary(row: GlossaryConcept) -> ConceptSummary:
    concept = service.concept_of(row)
    return ConceptSummary(
        id=concept.id,
        domain=concept.domain,
        status=concept.status,
        replaced_by=concept.replaced_by,
        version=row.version,
        pref={lang: terms.pref for lang, terms in concept.terms.items()},
    )


@router.get("/glossary/concepts", response_model=list[ConceptSummary])
async def list_concepts(
    session: SessionDep, domain: Domain | None = None, status: ConceptStatus | None = None
) -> list[ConceptSummary]:
    """Every concept with its preferred label in each language (public), optionally of one domain or status."""
    rows = await service.list_rows(
        session, domain=None if domain is None else domain.value, status=None if status is None else status.value
    )
    return [_summary(row) for row in rows]


@router.get("/glossary/concepts/{concept_id}", response_model=ConceptOut)
async def get_concept(session: SessionDep, user: OptionalUser, concept_id: ConceptPath) -> ConceptOut:
    """One concept with all its languages, as approved (public; who changed it last is shown to staff only)."""
    return _concept_out(await service.get_row(session, concept_id=concept_id), user)


@router.get("/glossary/concepts/{concept_id}/versions", response_model=list[VersionOut])
async def list_versions(session: SessionDep, _: Staff, concept_id: ConceptPath) -> list[VersionOut]:
    """Every version of a concept, oldest first: who changed it, when, and why (staff)."""
    return [VersionOut.model_validate(row) for row in await service.versions(session, concept_id=concept_id)]


@router.get("/glossary/concepts/{concept_id}/versions/{version}", response_model=VersionOut)
async def get_version(session: SessionDep, _: Staff, concept_id: ConceptPath, version: DbId) -> VersionOut:
    """One version of a concept (staff)."""
    return VersionOut.model_validate(await service.get_version(session, concept_id=concept_id, version=version))


@router.get("/glossary/search", response_model=list[SearchHit])
async def search(
    session: SessionDep,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY)],
    lang: Language | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[SearchHit]:
    """Search every label in every language, ignoring case and accents, tolerant of typos ("evacuaton",
    "ueberschwemmung"). `lang` ranks that language's labels first and gives `pref` in it (public)."""
    return await service.search(session, q=q, lang=lang, limit=limit)


@router.post("/glossary/lint", response_model=LintOut)
async def lint_text(session: SessionDep, body: LintIn) -> LintOut:
    """The spans of a text that use deprecated or non-preferred terms (with the preferred term) or glossary terms a
    citizen may not understand (with the plain explanation). Inflected forms count. Warnings only (public)."""
    return LintOut(lang=body.lang, findings=await service.lint_text(session, text=body.text, lang=body.lang))


@router.get(
    "/glossary/export",
    response_class=Response,
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}},
)
async def export(
    request: Request, session: SessionDep, fmt: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.ttl
) -> Response:
    """The approved glossary as SKOS (Turtle `ttl`, JSON-LD `jsonld`) or as CSV, one row per concept and language
    (public). docs/glossary.md describes the mapping and the columns."""
    body = await exchange.export(session, fmt=fmt, base_url=str(request.app.state.settings.public_url))
    filename = f"tocsin-glossary.{fmt.value}"
    return Response(
        body,
        media_type=f"{MEDIA_TYPES[fmt]}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(
    "/glossary/import",
    response_model=ImportOut,
    responses=refusals(409, 415),
    openapi_extra=text_body(list(IMPORT_TYPES), "SKOS as Turtle or JSON-LD, or the glossary CSV table"),
)
async def import_file(
    request: Request,
    work: WorkDep,
    editor: GlossaryEditor,
    reason: Annotated[Reason, Query(description="why: recorded with every version or proposal")],
    apply: bool = False,
) -> ImportOut:
    """Import SKOS (`text/turtle`, `application/ld+json`) or CSV (`text/csv`), at most 5 MB (glossary editor).
    Every changed concept becomes a change proposal, or with `apply=true` a new version at once."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = IMPORT_TYPES.get(content_type)
    if fmt is None:
        raise UnsupportedMediaType(
            "send text/turtle, application/ld+json or text/csv", field="content-type", code="unsupported_format"
        )
    data = await request.body()
    return await exchange.import_file(work.session, data=data, fmt=fmt, actor=editor, reason=reason, apply=apply)


@router.post("/glossary/proposals", response_model=ProposalOut, status_code=201, responses=refusals(404, 409))
async def propose(work: WorkDep, user: Staff, body: ProposalIn) -> ProposalOut:
    """Propose a new concept, a change or a deprecation, saying why (any staff role). A glossary editor decides."""
    return ProposalOut.model_validate(await proposals.propose(work.session, body=body, proposer=user))


@router.get("/glossary/proposals", response_model=list[ProposalOut])
async def list_proposals(
    session: SessionDep,
    _: Staff,
    status: ProposalStatus | None = None,
    concept_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[ProposalOut]:
    """Change proposals, newest first (staff)."""
    rows = await proposals.list_proposals(
        session, status=None if status is None else status.value, concept_id=concept_id, limit=limit
    )
    return [ProposalOut.model_validate(row) for row in rows]


@router.get("/glossary/proposals/{proposal_id}", response_model=ProposalOut)
async def get_proposal(session: SessionDep, _: Staff, proposal_id: DbId) -> ProposalOut:
    """One change proposal (staff)."""
    return ProposalOut.model_validate(await proposals.get_proposal(session, proposal_id=proposal_id))


@router.post("/glossary/proposals/{proposal_id}/approve", response_model=ProposalOut, responses=refusals(409))
async def approve(
    work: WorkDep, editor: GlossaryEditor, proposal_id: DbId, body: DecisionIn | None = None
) -> ProposalOut:
    """Approve and apply a proposal as the concept's next version (glossary editor, not the proposer)."""
    note = body.note if body else None
    return ProposalOut.model_validate(
        await proposals.approve(work.session, proposal_id=proposal_id, editor=editor, note=note)
    )


@router.post("/glossary/proposals/{proposal_id}/reject", response_model=ProposalOut, responses=refusals(409))
async def reject(work: WorkDep, editor: GlossaryEditor, proposal_id: DbId, body: RejectIn) -> ProposalOut:
    """Reject a proposal with a note saying why (glossary editor; rejecting one's own withdraws it)."""
    return ProposalOut.model_validate(
        await proposals.reject(work.session, proposal_id=proposal_id, editor=editor, note=body.note)
    )
