"""Search across the nine languages: case, accents and punctuation aside, German transliterations, typos.

Every label (preferred, alternative and hidden, in every language) is indexed under its folded form and, where it
has ä, ö, ü or ß, under its German transliteration too, so "Überschwemmung", "uberschwemmung" and
"ueberschwemmung" all find it. Exact matches rank first, then prefixes, then typo-tolerant matches (rapidfuzz).
The index lives in memory; the service rebuilds it only when the glossary changed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process

from tocsin.glossary.schemas import LANGUAGES, Concept, SearchHit

LabelKind = Literal["pref", "alt", "hidden"]

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_SEPARATORS = re.compile(r"[\W_]+")
KIND_RANK: dict[str, int] = {"pref": 0, "alt": 1, "hidden": 2}

EXACT = 100.0
PREFIX = 90.0  # up to 99 for a prefix that is nearly the whole label
WORD_PREFIX = 80.0  # a word of the label starts with the query
FUZZY_CUTOFF = 80.0  # rapidfuzz ratio (0..100) below which a label is not a typo of the query
FUZZY_WEIGHT = 0.75  # so a typo-tolerant match always ranks below a prefix
MIN_FUZZY_QUERY = 4
LANG_BOOST = 3.0


def fold(text: str) -> str:
    """NFKD, combining marks dropped, casefolded; punctuation and runs of blanks become one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", stripped.casefold()).strip()


def fold_variants(text: str) -> set[str]:
    """The folded text, plus its German transliteration when it has umlauts or ß (ä -> ae, ...)."""
    variants = {fold(text)}
    lowered = unicodedata.normalize("NFC", text).casefold()
    if any(ch in lowered for ch in "äöüß"):
        variants.add(fold(lowered.translate(_GERMAN)))
    variants.discard("")
    return variants


@dataclass(frozen=True, slots=True)
class IndexedLabel:
    concept_id: str
    label: str
    lang: str
    kind: LabelKind
    key: str


@dataclass(frozen=True, slots=True)
class _Scored:
    score: float
    entry: IndexedLabel


class SearchIndex:
    """Every label of every concept, folded, in memory."""

    def __init__(self, concepts: Mapping[str, Concept]) -> None:
        self.concepts = dict(concepts)
        self.entries: list[IndexedLabel] = []
        for concept in self.concepts.values():
            for lang in LANGUAGES:
                for kind, label in concept.term(lang).labels():
                    for key in sorted(fold_variants(label)):
                        self.entries.append(IndexedLabel(concept.id, label, lang, kind, key))
        self.keys = [entry.key for entry in self.entries]
        # Each word of a label on its own, so a typo in one word of "evacuation order" still finds it.
        self.words: list[tuple[str, int]] = [
            (word, i) for i, entry in enumerate(self.entries) for word in entry.key.split() if len(word) >= 3
        ]

    def search(self, query: str, *, lang: str | None = None, limit: int = 10) -> list[SearchHit]:
        queries = fold_variants(query)
        best: dict[str, tuple[float, _Scored]] = {}
        for scored in self._candidates(queries):
            entry = scored.entry
            rank = scored.score + (LANG_BOOST if lang is not None and entry.lang == lang else 0.0)
            current = best.get(entry.concept_id)
            if current is None or (rank, -KIND_RANK[entry.kind]) > (current[0], -KIND_RANK[current[1].entry.kind]):
                best[entry.concept_id] = (rank, scored)
        ordered = sorted(best.values(), key=lambda item: (-item[0], KIND_RANK[item[1].entry.kind], item[1].entry.label))
        return [self._hit(scored, lang) for _, scored in ordered[:limit]]

    def _candidates(self, queries: set[str]) -> list[_Scored]:
        found: list[_Scored] = []
        for query in queries:
            fuzzy_done: set[int] = set()
            for i, entry in enumerate(self.entries):
                key = entry.key
                if key == query:
                    found.append(_Scored(EXACT, entry))
                elif key.startswith(query):
                    found.append(_Scored(PREFIX + 9.0 * len(query) / len(key), entry))
                elif len(query) >= 3 and any(word.startswith(query) for word in key.split()):
                    found.append(_Scored(WORD_PREFIX + 9.0 * len(query) / len(key), entry))
                else:
                    continue
                fuzzy_done.add(i)
            if len(query) < MIN_FUZZY_QUERY:
                continue
            for _, score, i in process.extract(
                query, self.keys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=None
            ):
                if i not in fuzzy_done:
                    fuzzy_done.add(i)
                    found.append(_Scored(score * FUZZY_WEIGHT, self.entries[i]))
            if " " not in query:
                words = [word for word, _ in self.words]
                for _, score, j in process.extract(
                    query, words, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=None
                ):
                    i = self.words[j][1]
                    if i not in fuzzy_done:
                        fuzzy_done.add(i)
                        found.append(_Scored(score * FUZZY_WEIGHT * 0.95, self.entries[i]))
        return found

    def _hit(self, scored: _Scored, lang: str | None) -> SearchHit:
        entry = scored.entry
        concept = self.concepts[entry.concept_id]
        return SearchHit(
            concept_id=concept.id,
            label=entry.label,
            lang=entry.lang,
            kind=entry.kind,
            pref=concept.term(lang or entry.lang).pref,
            status=concept.status,
            replaced_by=concept.replaced_by,
            score=round(scored.score, 1),
        )
