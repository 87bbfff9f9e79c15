"""The glossary as files: `glossary/concepts/<id>.yaml`, one concept each, reviewed like code.

Loading reads every file through the schema and then checks the collection as a whole; writing puts a concept back
in the same layout (keys in schema order, lists in flow style, definitions as folded blocks), and leaves a file alone
when it already says the same thing, so writing the approved state back only touches what changed.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tocsin.content import content_dir
from tocsin.errors import field_path
from tocsin.glossary.schemas import LANGUAGES, Concept, ConceptStatus
from tocsin.glossary.search import fold

WRAP_WIDTH = 118
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: the same documents, faster


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one concept, and where: `field` as in the API's errors ("terms.fr.pref")."""

    concept_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.concept_id}: {self.field}: {self.message}"


class ContentError(ValueError):
    """The files cannot be loaded; `problems` lists every one found, not only the first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def default_glossary_dir() -> Path:
    return content_dir("glossary")


def concepts_dir(directory: Path) -> Path:
    """`glossary/` or `glossary/concepts/`: both name the same content."""
    nested = directory / "concepts"
    return nested if nested.is_dir() else directory


def describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:10]:
        where = field_path(tuple(error.get("loc", ())))
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)


def load_concept(path: Path) -> Concept:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ContentError([f"{path.name}: not YAML: {exc}"]) from None
    try:
        concept = Concept.model_validate(data)
    except ValidationError as exc:
        raise ContentError([f"{path.name}: {describe(exc)}"]) from None
    if concept.id != path.stem:
        raise ContentError([f"{path.name}: id '{concept.id}' differs from the file name"])
    return concept


def load_directory(directory: Path) -> dict[str, Concept]:
    """Every concept file of `directory` (or of its `concepts/`), checked one by one and as a whole."""
    folder = concepts_dir(directory)
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise ContentError([f"{folder}: no concept files (*.yaml)"])
    concepts: dict[str, Concept] = {}
    problems: list[str] = []
    for path in paths:
        try:
            concept = load_concept(path)
        except ContentError as exc:
            problems += exc.problems
            continue
        concepts[concept.id] = concept
    problems += [str(problem) for problem in check_collection(concepts)]
    if problems:
        raise ContentError(problems)
    return concepts


def check_collection(concepts: Mapping[str, Concept]) -> list[Problem]:
    """What one file cannot show: references resolve, a deprecated concept's replacement chain ends at an active
    concept, no preferred label is shared by two concepts in one language, and `broader` has no cycle."""
    problems: list[Problem] = []
    owners: dict[tuple[str, str], list[str]] = {}
    for concept in concepts.values():
        for name in ("broader", "related"):
            for i, ref in enumerate(getattr(concept, name)):
                if ref not in concepts:
                    problems.append(Problem(concept.id, f"{name}[{i}]", f"no concept '{ref}'"))
        if concept.replaced_by is not None:
            problem = _replacement_problem(concepts, concept)
            if problem is not None:
                problems.append(problem)
        for lang in LANGUAGES:
            # Compared as search and lint compare them: case, accents and punctuation aside.
            owners.setdefault((lang, fold(concept.term(lang).pref)), []).append(concept.id)
    for (language, _), ids in owners.items():
        for concept_id in ids if len(ids) > 1 else ():
            others = ", ".join(f"'{other}'" for other in ids if other != concept_id)
            label = concepts[concept_id].term(language).pref
            message = f"the preferred label '{label}' is also the preferred label of {others}"
            problems.append(Problem(concept_id, f"terms.{language}.pref", message))
    problems += _broader_cycles(concepts)
    return problems


def _replacement_problem(concepts: Mapping[str, Concept], concept: Concept) -> Problem | None:
    seen = {concept.id}
    current = concept
    while current.replaced_by is not None:
        nxt = concepts.get(current.replaced_by)
        if nxt is None:
            return Problem(concept.id, "replaced_by", f"no concept '{current.replaced_by}'")
        if nxt.id in seen:
            return Problem(concept.id, "replaced_by", "the replacements go round in a circle")
        seen.add(nxt.id)
        current = nxt
    if current.status is not ConceptStatus.active:  # pragma: no cover - a concept without replaced_by is active
        return Problem(concept.id, "replaced_by", "the replacement is not active")
    return None


def replacement_of(concepts: Mapping[str, Concept], concept: Concept) -> Concept:
    """The active concept at the end of a deprecated concept's replacement chain (the concept itself if active)."""
    current = concept
    for _ in range(len(concepts) + 1):
        if current.replaced_by is None or current.replaced_by not in concepts:
            return current
        current = concepts[current.replaced_by]
    return current  # pragma: no cover - check_collection refuses cycles


def _broader_cycles(concepts: Mapping[str, Concept]) -> list[Problem]:
    problems: list[Problem] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(concept_id: str, path: list[str]) -> None:
        state[concept_id] = 1
        for parent in concepts[concept_id].broader:
            if parent not in concepts:
                continue
            if state.get(parent) == 1:
                cycle = [*path[path.index(parent) :], parent] if parent in path else [concept_id, parent]
                problems.append(Problem(concept_id, "broader", f"broader goes round in a circle: {' > '.join(cycle)}"))
            elif parent not in state:
                visit(parent, [*path, parent])
        state[concept_id] = 2

    for concept_id in sorted(concepts):
        if concept_id not in state:
            visit(concept_id, [concept_id])
    return problems


# ---- writing ------------------------------------------------------------------------------------------------------


def _loads_as(text: str, expected: Any) -> bool:
    try:
        return bool(yaml.safe_load(text) == expected)
    except yaml.YAMLError:
        return False


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def _flow_item(value: str) -> str:
    return value if _loads_as(f"[{value}]", [value]) else _quoted(value)


def _flow_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_flow_item(v) for v in values) + "]"


def _scalar(value: str | None) -> str:
    if value is None:
        return "null"
    return value if _loads_as(f"k: {value}", {"k": value}) else _quoted(value)


def _folded(value: str, indent: int) -> list[str]:
    """`>-` with the text wrapped at WRAP_WIDTH; double-quoted when folding would not give the text back."""
    pad = " " * indent
    lines = textwrap.wrap(
        value, width=WRAP_WIDTH, initial_indent=pad, subsequent_indent=pad, break_long_words=False,
        break_on_hyphens=False,
    )  # fmt: skip
    block = [">-", *lines]
    if _loads_as("k: " + "\n".join(block), {"k": value}):
        return block
    return [_quoted(value)]


def dump_concept(concept: Concept) -> str:
    """The concept as YAML in the layout of the files in `glossary/concepts/`."""
    lines = [
        f"id: {concept.id}",
        f"domain: {concept.domain.value}",
        f"status: {concept.status.value}",
        f"replaced_by: {_scalar(concept.replaced_by)}",
        f"broader: {_flow_list(concept.broader)}",
        f"related: {_flow_list(concept.related)}",
    ]
    if concept.event_code is None:
        lines.append("event_code: null")
    else:
        code = concept.event_code
        lines.append(f"event_code: {{valueName: {_quoted(code.valueName)}, value: {_quoted(code.value)}}}")
    lines.append(f"sources: {_flow_list(concept.sources)}")
    lines.append("terms:")
    for lang in LANGUAGES:
        terms = concept.term(lang)
        lines.append(f"  {lang}:")
        lines.append(f"    pref: {_scalar(terms.pref)}")
        lines.append(f"    alt: {_flow_list(terms.alt)}")
        lines.append(f"    hidden: {_flow_list(terms.hidden)}")
        for name in ("definition", "plain"):
            block = _folded(getattr(terms, name), indent=6)
            lines.append(f"    {name}: {block[0]}")
            lines += block[1:]
    return "\n".join(lines) + "\n"


def write_concept(directory: Path, concept: Concept) -> bool:
    """Write the concept's file unless it already holds this concept; True when the file was written."""
    path = concepts_dir(directory) / f"{concept.id}.yaml"
    if path.exists():
        try:
            if load_concept(path) == concept:
                return False
        except ContentError:
            pass  # a broken file is replaced by the approved state
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dump_concept(concept)
    path.write_text(text, encoding="utf-8")
    return True
