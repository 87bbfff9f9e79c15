"""The content schema of a glossary concept (exactly the format of `glossary/README.md`) and the API shapes.

A `Concept` is checked on its own here; what needs the whole glossary (references resolve, no preferred label shared
by two concepts in one language) is checked by `files.check_collection`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

Language = Literal["en", "fr", "de", "it", "es", "nl", "pl", "pt", "el"]
LANGUAGES: tuple[Language, ...] = ("en", "fr", "de", "it", "es", "nl", "pl", "pt", "el")

ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
# A label is one line without leading or trailing blanks; '|' separates list items in the CSV format.
LABEL_PATTERN = r"^[^\s|](?:[^|\n\r\t]*[^\s|])?$"
OET_VALUE_NAME = "OET:v1.2"

MAX_QUERY = 200
MAX_LINT_TEXT = 20_000
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_REASON = 2_000

ConceptId = Annotated[str, Field(min_length=1, max_length=100, pattern=ID_PATTERN)]
Label = Annotated[str, Field(min_length=1, max_length=200, pattern=LABEL_PATTERN)]
Source = Annotated[str, Field(min_length=1, max_length=300, pattern=LABEL_PATTERN)]
Prose = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=3_000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON)]


class Domain(StrEnum):
    hazard = "hazard"
    warning = "warning"
    organisation = "organisation"
    citizen_action = "citizen-action"


class ConceptStatus(StrEnum):
    active = "active"
    deprecated = "deprecated"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventCode(_Strict):
    """A CAP eventCode from the OASIS Event Terms List."""

    valueName: Literal["OET:v1.2"]
    value: Annotated[str, Field(pattern=r"^OET-\d{3}$")]


class Terms(_Strict):
    """The words for a concept in one language."""

    pref: Label
    alt: Annotated[list[Label], Field(max_length=50)] = []
    hidden: Annotated[list[Label], Field(max_length=50)] = []
    definition: Prose
    plain: Prose

    @model_validator(mode="after")
    def _each_label_once(self) -> Terms:
        seen: set[str] = set()
        for label in (self.pref, *self.alt, *self.hidden):
            if label in seen:
                raise ValueError(f"the label '{label}' appears twice (pref, alt and hidden must differ)")
            seen.add(label)
        return self

    def labels(self) -> list[tuple[Literal["pref", "alt", "hidden"], str]]:
        found: list[tuple[Literal["pref", "alt", "hidden"], str]] = [("pref", self.pref)]
        found += [("alt", label) for label in self.alt]
        found += [("hidden", label) for label in self.hidden]
        return found


class Concept(_Strict):
    """One concept: one file `glossary/concepts/<id>.yaml`. Field order is the file's key order."""

    id: ConceptId
    domain: Domain
    status: ConceptStatus = ConceptStatus.active
    replaced_by: ConceptId | None = None
    broader: Annotated[list[ConceptId], Field(max_length=50)] = []
    related: Annotated[list[ConceptId], Field(max_length=50)] = []
    event_code: EventCode | None = None
    sources: Annotated[list[Source], Field(min_length=1, max_length=20)]
    terms: dict[Language, Terms]

    @field_validator("terms")
    @classmethod
    def _every_language(cls, value: dict[Language, Terms]) -> dict[Language, Terms]:
        missing = [lang for lang in LANGUAGES if lang not in value]
        if missing:
            raise ValueError(f"missing languages: {', '.join(missing)}")
        return {lang: value[lang] for lang in LANGUAGES}

    @model_validator(mode="after")
    def _consistent(self) -> Concept:
        if self.status is ConceptStatus.deprecated and self.replaced_by is None:
            raise ValueError("replaced_by: a deprecated concept names the concept that replaces it")
        if self.status is ConceptStatus.active and self.replaced_by is not None:
            raise ValueError("replaced_by: only a deprecated concept is replaced")
        if self.replaced_by == self.id:
            raise ValueError("replaced_by: a concept cannot replace itself")
        for name in ("broader", "related"):
            ids: list[str] = getattr(self, name)
            if self.id in ids:
                raise ValueError(f"{name}: a concept cannot refer to itself")
            if len(set(ids)) != len(ids):
                raise ValueError(f"{name}: an id appears twice")
        if self.event_code is not None and self.domain is not Domain.hazard:
            raise ValueError("event_code: only hazard events have an OASIS event code")
        return self

    def term(self, lang: str) -> Terms:
        return self.terms[lang]  # type: ignore[index]

    def canonical(self) -> Concept:
        """The same concept with every list sorted: equal for two concepts that differ only in list order (RDF
        keeps no order)."""
        data = self.model_dump()
        for key in ("broader", "related", "sources"):
            data[key] = sorted(data[key])
        for terms in data["terms"].values():
            terms["alt"] = sorted(terms["alt"])
            terms["hidden"] = sorted(terms["hidden"])
        return Concept.model_validate(data)


# ---- API ----------------------------------------------------------------------------------------------------------


class ConceptOut(BaseModel):
    concept: Concept
    version: int
    updated_at: datetime
    updated_by: str | None = Field(description="who made the current version (shown to staff only)")


class ConceptSummary(BaseModel):
    id: str
    domain: Domain
    status: ConceptStatus
    replaced_by: str | None
    version: int
    pref: dict[str, str] = Field(description="the preferred label in each language")


class VersionOut(BaseModel):
    # Read from a GlossaryVersion row (VersionOut.model_validate(row)): `concept` is its `document`. A comment, not a
    # docstring: a docstring would become the schema's description in the OpenAPI document.
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    concept_id: str
    version: int
    action: str = Field(description="create | update | deprecate | load | import")
    changed_at: datetime
    changed_by: str
    reason: str
    proposal_id: int | None
    concept: Concept = Field(validation_alias="document")


class SearchHit(BaseModel):
    concept_id: str
    label: str = Field(description="the label that matched")
    lang: str = Field(description="the language of the matched label")
    kind: Literal["pref", "alt", "hidden"]
    pref: str = Field(description="the preferred label in the requested language (else in the matched one)")
    status: ConceptStatus
    replaced_by: str | None
    score: float = Field(description="100 for an exact match; prefix matches next, then typo-tolerant ones")


class LintIn(_Strict):
    text: Annotated[str, Field(max_length=MAX_LINT_TEXT)]
    lang: Language


class FindingKind(StrEnum):
    deprecated = "deprecated"
    non_preferred = "non_preferred"
    explain = "explain"


class Finding(BaseModel):
    start: int = Field(description="offset of the first character of the span (Unicode code points)")
    end: int = Field(description="offset just past the span")
    text: str
    kind: FindingKind
    concept_id: str
    preferred: str = Field(description="the preferred term in the text's language (the replacement's if deprecated)")
    plain: str = Field(description="the plain-language explanation for citizens")
    replaced_by: str | None = None


class LintOut(BaseModel):
    lang: Language
    findings: list[Finding]


class InfoLintOut(BaseModel):
    index: int
    language: str
    lang: str | None = Field(description="the glossary language used; null when the glossary has none")
    fields: dict[str, list[Finding]]


class AlertLintOut(BaseModel):
    alert_id: uuid.UUID
    infos: list[InfoLintOut]


class ProposalKind(StrEnum):
    create = "create"
    update = "update"
    deprecate = "deprecate"


class ProposalStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class ProposalIn(_Strict):
    """create: `document` is the new concept. update: `document` replaces the concept (same id). deprecate:
    `concept_id` and `replaced_by`. Every proposal says why (`reason`)."""

    kind: ProposalKind
    reason: Reason
    concept_id: ConceptId | None = None
    document: Concept | None = None
    replaced_by: ConceptId | None = None


class DecisionIn(_Strict):
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_REASON)] | None = None


class RejectIn(_Strict):
    note: Reason


class ProposalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from a GlossaryProposal row

    id: int
    concept_id: str
    kind: ProposalKind
    status: ProposalStatus
    reason: str
    document: Concept
    base_version: int | None
    proposed_by: str
    proposed_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    applied_version: int | None


class ExportFormat(StrEnum):
    ttl = "ttl"
    jsonld = "jsonld"
    csv = "csv"


class ImportOut(BaseModel):
    format: ExportFormat
    applied: bool = Field(description="true: applied as new versions; false: change proposals were created")
    created: list[str]
    updated: list[str]
    deprecated: list[str]
    unchanged: list[str]
    proposals: list[int]
