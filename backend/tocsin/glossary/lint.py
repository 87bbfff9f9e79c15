"""Lint a text against the glossary: deprecated and non-preferred terms, and terms a citizen may not understand.

The text is cut into words (letters and digits; apostrophes and hyphens separate words, so "d'alerte" is "d" and
"alerte", and "all-clear" matches "all clear"; a term never runs across a sentence break). Each word stands for its
folded surface form and its folded lemma (simplemma, which ships its dictionaries for all nine languages); each label
is cut and lemmatised the same way, and a label matches a run of words whose forms meet the label's word by word. So
"evacuations", "évacuations" and "Evakuierungen" find "evacuation", "évacuation" and "Evakuierung", and "sheltered in
place" finds "shelter in place".

At each position the longest match wins; for the same span, a label written exactly as in the text wins over one
matched through lemmas, then an active concept's preferred label over an alternative or hidden one, and an active
concept over a deprecated one. Findings:

- deprecated: any label of a deprecated concept; `preferred` is the preferred label of its replacement.
- non_preferred: an alternative or hidden label of an active concept where its preferred label belongs.
- explain: a preferred label of an active concept, the first time the concept appears in the text, with the plain
  explanation a citizen needs. Findings are warnings: nothing is ever refused because of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from simplemma import Lemmatizer
from simplemma.strategies import DefaultStrategy
from simplemma.strategies.dictionaries import StreamDictionaryFactory

from tocsin.glossary.files import replacement_of
from tocsin.glossary.schemas import LANGUAGES, Concept, ConceptStatus, Domain, Finding, FindingKind
from tocsin.glossary.search import fold, fold_variants

# Words: letters and digits with any combining marks (text in decomposed form stays one word).
WORD = re.compile(r"[^\W_](?:[^\W_]|[\u0300-\u036f])*")
# Between two words of one term there is no sentence break: "... the flood. Warning ..." is not "flood warning".
BREAK = re.compile(r"[.!?;:\n]")
# Concepts whose preferred terms are explained to citizens. All four domains: "shelter in place" or "re-entry" (the
# citizen-action domain) are exactly what an alert asks people to do, so they must understand them.
EXPLAIN_DOMAINS = frozenset({Domain.hazard, Domain.warning, Domain.organisation, Domain.citizen_action})

# The memory-frugal dictionaries (about 120 MB for all nine languages instead of 850 MB), each kept once loaded.
_lemmatizer = Lemmatizer(
    lemmatization_strategy=DefaultStrategy(dictionary_factory=StreamDictionaryFactory(cache_max_size=len(LANGUAGES)))
)


@lru_cache(maxsize=200_000)
def word_forms(word: str, lang: str) -> frozenset[str]:
    """The forms a word is matched by: folded surface, folded lemma, and their German transliterations."""
    forms = fold_variants(word)
    forms |= fold_variants(_lemmatizer.lemmatize(word, lang))
    return frozenset(forms)


@dataclass(frozen=True, slots=True)
class Word:
    start: int
    end: int
    surface: str  # folded
    forms: frozenset[str]
    joined: bool  # no sentence break between the previous word and this one


def words_of(text: str, lang: str) -> list[Word]:
    words: list[Word] = []
    previous_end = 0
    for match in WORD.finditer(text):
        joined = bool(words) and BREAK.search(text, previous_end, match.start()) is None
        words.append(Word(match.start(), match.end(), fold(match.group()), word_forms(match.group(), lang), joined))
        previous_end = match.end()
    return words


@dataclass(frozen=True, slots=True)
class _Label:
    concept_id: str
    kind: str  # pref | alt | hidden
    words: tuple[frozenset[str], ...]
    surfaces: tuple[str, ...]
    rank: int  # lower wins for the same span

    def matches(self, words: list[Word], at: int) -> bool:
        if at + len(self.words) > len(words):
            return False
        if not all(words[at + i].joined for i in range(1, len(self.words))):
            return False
        return all(forms & words[at + i].forms for i, forms in enumerate(self.words))

    def verbatim(self, words: list[Word], at: int) -> bool:
        return all(surface == words[at + i].surface for i, surface in enumerate(self.surfaces))


class _LanguageIndex:
    """The labels of one language, found by the forms of their first word."""

    def __init__(self, concepts: Mapping[str, Concept], lang: str) -> None:
        self.by_first: dict[str, list[_Label]] = {}
        for concept in concepts.values():
            active = concept.status is ConceptStatus.active
            for kind, text in concept.term(lang).labels():
                words = words_of(text, lang)
                if not words:
                    continue
                rank = (0 if kind == "pref" else 1) if active else 2
                label = _Label(concept.id, kind, tuple(w.forms for w in words), tuple(w.surface for w in words), rank)
                for form in words[0].forms:
                    self.by_first.setdefault(form, []).append(label)

    def best_at(self, words: list[Word], at: int) -> _Label | None:
        candidates = {label for form in words[at].forms for label in self.by_first.get(form, ())}
        matching = [label for label in candidates if label.matches(words, at)]
        if not matching:
            return None
        # Longest first; then a label written exactly as in the text ("sheltering in place", an alternative label)
        # over one matched through its lemmas ("shelter in place"); then preferred over other labels.
        return min(
            matching,
            key=lambda label: (-len(label.words), not label.verbatim(words, at), label.rank, label.concept_id),
        )


class Linter:
    """Built from the whole glossary; each language's index is built when that language is first linted."""

    def __init__(self, concepts: Mapping[str, Concept]) -> None:
        self.concepts = dict(concepts)
        self._indexes: dict[str, _LanguageIndex] = {}

    def _index(self, lang: str) -> _LanguageIndex:
        index = self._indexes.get(lang)
        if index is None:
            index = self._indexes[lang] = _LanguageIndex(self.concepts, lang)
        return index

    def lint(self, text: str, lang: str) -> list[Finding]:
        if lang not in LANGUAGES or not text.strip():
            return []
        index = self._index(lang)
        words = words_of(text, lang)
        findings: list[Finding] = []
        explained: set[str] = set()
        at = 0
        while at < len(words):
            label = index.best_at(words, at)
            if label is None:
                at += 1
                continue
            start, end = words[at].start, words[at + len(label.words) - 1].end
            finding = self._finding(label, text[start:end], start, end, lang, explained)
            if finding is not None:
                findings.append(finding)
                explained.add(label.concept_id)
            at += len(label.words)
        return findings

    def _finding(
        self, label: _Label, span: str, start: int, end: int, lang: str, explained: set[str]
    ) -> Finding | None:
        concept = self.concepts[label.concept_id]
        if concept.status is ConceptStatus.deprecated:
            replacement = replacement_of(self.concepts, concept)
            return Finding(
                start=start,
                end=end,
                text=span,
                kind=FindingKind.deprecated,
                concept_id=concept.id,
                preferred=replacement.term(lang).pref,
                plain=replacement.term(lang).plain,
                replaced_by=replacement.id,
            )
        terms = concept.term(lang)
        if label.kind != "pref" and fold(span) != fold(terms.pref):
            kind = FindingKind.non_preferred
        elif concept.domain in EXPLAIN_DOMAINS and concept.id not in explained:
            kind = FindingKind.explain
        else:
            return None
        return Finding(
            start=start,
            end=end,
            text=span,
            kind=kind,
            concept_id=concept.id,
            preferred=terms.pref,
            plain=terms.plain,
        )


def glossary_language(tag: str | None) -> str | None:
    """The glossary language of a language tag ("it-IT" -> "it"); None when the glossary does not have it."""
    if not tag:
        return None
    primary = tag.split("-")[0].strip().lower()
    return primary if primary in LANGUAGES else None
