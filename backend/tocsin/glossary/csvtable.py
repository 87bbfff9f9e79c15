"""The glossary as a CSV table: one row per concept and language, for translators and spreadsheets.

Columns, in this order: id, domain, status, replaced_by, broader, related, event_code_name, event_code_value,
sources, lang, pref, alt, hidden, definition, plain. Lists (broader, related, sources, alt, hidden) are joined with
" | " (labels and sources cannot contain "|"). The concept columns (id to sources) repeat on each of a concept's nine
rows and must agree on import. UTF-8, comma-separated, RFC 4180 quoting, header row first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from tocsin.errors import InvalidInput, field_path
from tocsin.glossary.schemas import LANGUAGES, Concept

CONCEPT_COLUMNS = (
    "id",
    "domain",
    "status",
    "replaced_by",
    "broader",
    "related",
    "event_code_name",
    "event_code_value",
    "sources",
)
TERM_COLUMNS = ("lang", "pref", "alt", "hidden", "definition", "plain")
COLUMNS = CONCEPT_COLUMNS + TERM_COLUMNS
LIST_COLUMNS = frozenset({"broader", "related", "sources", "alt", "hidden"})
SEPARATOR = " | "
MAX_ROWS = 100_000


def _join(values: Iterable[str]) -> str:
    return SEPARATOR.join(values)


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split("|") if item.strip()]


def export(concepts: Iterable[Concept]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for concept in sorted(concepts, key=lambda c: c.id):
        code = concept.event_code
        head = [
            concept.id,
            concept.domain.value,
            concept.status.value,
            concept.replaced_by or "",
            _join(concept.broader),
            _join(concept.related),
            "" if code is None else code.valueName,
            "" if code is None else code.value,
            _join(concept.sources),
        ]
        for lang in LANGUAGES:
            terms = concept.term(lang)
            writer.writerow(
                [*head, lang, terms.pref, _join(terms.alt), _join(terms.hidden), terms.definition, terms.plain]
            )
    return out.getvalue().encode("utf-8")


def _concept_part(row: dict[str, str]) -> dict[str, Any]:
    code_name, code_value = row["event_code_name"].strip(), row["event_code_value"].strip()
    return {
        "id": row["id"].strip(),
        "domain": row["domain"].strip(),
        "status": row["status"].strip() or "active",
        "replaced_by": row["replaced_by"].strip() or None,
        "broader": _split(row["broader"]),
        "related": _split(row["related"]),
        "event_code": {"valueName": code_name, "value": code_value} if code_name or code_value else None,
        "sources": _split(row["sources"]),
    }


def _rows(data: bytes) -> list[tuple[int, dict[str, str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the file is not UTF-8", field="file") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput("the file is empty", field="file")
        header = [name.strip() for name in header]
        missing = [name for name in COLUMNS if name not in header]
        unknown = [name for name in header if name not in COLUMNS]
        if missing or unknown:
            detail = "; ".join(
                part
                for part in (
                    f"missing columns: {', '.join(missing)}" if missing else "",
                    f"unknown columns: {', '.join(unknown)}" if unknown else "",
                )
                if part
            )
            raise InvalidInput(f"the header row does not match the glossary columns ({detail})", field="header")
        rows: list[tuple[int, dict[str, str]]] = []
        for values in reader:
            if not any(value.strip() for value in values):
                continue
            line = reader.line_num
            if len(values) != len(header):
                raise InvalidInput(f"line {line}: {len(values)} cells, expected {len(header)}", field=f"lines[{line}]")
            rows.append((line, dict(zip(header, values, strict=True))))
            if len(rows) > MAX_ROWS:
                raise InvalidInput(f"more than {MAX_ROWS} rows", field="file")
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: not CSV: {exc}", field=f"lines[{reader.line_num}]") from None
    if not rows:
        raise InvalidInput("the file has a header but no rows", field="file")
    return rows


def import_concepts(data: bytes) -> dict[str, Concept]:
    documents: dict[str, dict[str, Any]] = {}
    first_line: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, row in _rows(data):
        part = _concept_part(row)
        concept_id = part["id"]
        if not concept_id:
            raise InvalidInput(f"line {line}: no id", field=f"lines[{line}].id")
        if concept_id in first_line:
            seen_line, seen = first_line[concept_id]
            for column, value in part.items():
                if seen[column] != value:
                    raise InvalidInput(
                        f"line {line}: {column} of '{concept_id}' differs from line {seen_line}",
                        field=f"lines[{line}].{column}",
                    )
        else:
            first_line[concept_id] = (line, part)
            documents[concept_id] = {**part, "terms": {}}
        lang = row["lang"].strip()
        if lang in documents[concept_id]["terms"]:
            raise InvalidInput(f"line {line}: a second '{lang}' row for '{concept_id}'", field=f"lines[{line}].lang")
        documents[concept_id]["terms"][lang] = {
            "pref": row["pref"].strip(),
            "alt": _split(row["alt"]),
            "hidden": _split(row["hidden"]),
            "definition": row["definition"],
            "plain": row["plain"],
        }
    concepts: dict[str, Concept] = {}
    for concept_id, document in documents.items():
        try:
            concepts[concept_id] = Concept.model_validate(document)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = field_path(tuple(error.get("loc", ())))
            field = f"concepts.{concept_id}" + (f".{where}" if where else "")
            raise InvalidInput(f"{field}: {error['msg']}", field=field) from None
    return concepts
