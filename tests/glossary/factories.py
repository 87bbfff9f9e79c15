"""Glossary test data: the real content (read once) and small made-up concepts in all nine languages."""

from __future__ import annotations

from functools import cache
from typing import Any

from tests.conftest import REPO, Harness
from tocsin.glossary import files, service
from tocsin.glossary.schemas import LANGUAGES, Concept

GLOSSARY_DIR = REPO / "glossary"


@cache
def content() -> dict[str, Concept]:
    """Every concept of glossary/, loaded through the schema and checked as a whole."""
    return files.load_directory(GLOSSARY_DIR)


def concept(concept_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid concept document with labels made from its id ("test-thing" -> "test thing en")."""
    words = concept_id.replace("-", " ")
    document: dict[str, Any] = {
        "id": concept_id,
        "domain": "hazard",
        "status": "active",
        "replaced_by": None,
        "broader": [],
        "related": [],
        "event_code": None,
        "sources": ["Tocsin test suite"],
        "terms": {
            lang: {
                "pref": f"{words} {lang}",
                "alt": [f"{words} alt {lang}"],
                "hidden": [],
                "definition": f"A made-up concept for tests ({lang}).",
                "plain": f"Something made up ({lang}).",
            }
            for lang in LANGUAGES
        },
    }
    document.update(overrides)
    return document


async def load_content(h: Harness, concepts: dict[str, Concept] | None = None) -> None:
    """Put the glossary into the harness's database as `tocsin glossary load` does."""
    async with h.database.sessions() as session:
        await service.apply_concepts(
            session, concepts=content() if concepts is None else concepts, actor=None, reason="loaded", action="load"
        )
        await session.commit()
