"""Every file in glossary/ loads through the schema, and the glossary holds together as a whole."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from tests.glossary.factories import GLOSSARY_DIR, content
from tocsin.glossary import files
from tocsin.glossary.schemas import LANGUAGES, Concept, ConceptStatus, Domain
from tocsin.glossary.search import fold

FILES = sorted((GLOSSARY_DIR / "concepts").glob("*.yaml"))
REQUIRED = {"evacuation", "evacuation-order", "shelter-in-place", "all-clear", "digital-breakdown", "flood"}


class TestEveryFile:
    @pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
    def test_file_loads_through_the_schema(self, path: Path) -> None:
        concept = files.load_concept(path)
        assert concept.id == path.stem
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert list(raw) == list(Concept.model_fields), "keys in the order of glossary/README.md"
        assert sorted(raw["terms"]) == sorted(LANGUAGES), "no language missing, none extra"
        for lang in LANGUAGES:
            terms = raw["terms"][lang]
            assert isinstance(terms["pref"], str), f"{lang}: one preferred label"
            assert terms["definition"].strip()
            assert terms["plain"].strip()

    @pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
    def test_file_writes_back_to_the_same_concept(self, path: Path, tmp_path: Path) -> None:
        concept = files.load_concept(path)
        assert files.write_concept(tmp_path, concept) is True
        assert files.load_concept(tmp_path / path.name) == concept


class TestTheWholeGlossary:
    def test_at_least_120_concepts_with_the_required_ones(self) -> None:
        assert len(content()) >= 120
        assert REQUIRED <= set(content())

    def test_no_preferred_label_is_shared_by_two_concepts_in_one_language(self) -> None:
        owners: dict[tuple[str, str], list[str]] = defaultdict(list)
        for concept in content().values():
            for lang in LANGUAGES:
                owners[(lang, fold(concept.term(lang).pref))].append(concept.id)
        shared = {key: ids for key, ids in owners.items() if len(ids) > 1}
        assert shared == {}

    def test_every_reference_resolves(self) -> None:
        ids = set(content())
        for concept in content().values():
            assert set(concept.broader) <= ids, concept.id
            assert set(concept.related) <= ids, concept.id
            if concept.status is ConceptStatus.deprecated:
                assert concept.replaced_by in ids, concept.id

    def test_every_domain_is_used_and_hazard_events_carry_oet_codes(self) -> None:
        assert {c.domain for c in content().values()} == set(Domain)
        coded = [c for c in content().values() if c.event_code is not None]
        assert coded, "hazard events carry their OASIS Event Terms List code"
        assert all(c.domain is Domain.hazard and c.event_code.valueName == "OET:v1.2" for c in coded)  # type: ignore[union-attr]

    def test_every_concept_names_a_source(self) -> None:
        assert all(c.sources for c in content().values())


class TestProblemsAreFound:
    def test_unresolved_reference_and_shared_pref_label_are_reported(self) -> None:
        flood = content()["flood"]
        copy = flood.model_copy(update={"id": "flood-copy", "broader": ["nowhere"]})
        problems = files.check_collection({**content(), "flood-copy": copy})
        fields = {(p.concept_id, p.field) for p in problems}
        assert ("flood-copy", "broader[0]") in fields
        assert ("flood-copy", "terms.en.pref") in fields
        assert ("flood", "terms.en.pref") in fields

    def test_broader_cycle_is_reported(self) -> None:
        a = content()["flood"].model_copy(update={"broader": ["river-flood"]})
        problems = files.check_collection({**content(), "flood": a})
        assert any(p.field == "broader" and "circle" in p.message for p in problems)

    def test_missing_language_names_the_file(self, tmp_path: Path) -> None:
        source = (GLOSSARY_DIR / "concepts" / "flood.yaml").read_text(encoding="utf-8")
        broken = source[: source.index("  el:")]
        (tmp_path / "flood.yaml").write_text(broken, encoding="utf-8")
        with pytest.raises(files.ContentError, match=r"flood.yaml: terms: .*missing languages: el"):
            files.load_concept(tmp_path / "flood.yaml")

    def test_id_must_equal_the_file_name(self, tmp_path: Path) -> None:
        source = (GLOSSARY_DIR / "concepts" / "flood.yaml").read_text(encoding="utf-8")
        (tmp_path / "deluge.yaml").write_text(source, encoding="utf-8")
        with pytest.raises(files.ContentError, match="differs from the file name"):
            files.load_concept(tmp_path / "deluge.yaml")

    def test_a_directory_with_a_broken_reference_is_refused_with_every_problem(self, tmp_path: Path) -> None:
        for name in ("flood", "heavy-rain"):
            source = (GLOSSARY_DIR / "concepts" / f"{name}.yaml").read_text(encoding="utf-8")
            (tmp_path / f"{name}.yaml").write_text(source, encoding="utf-8")
        with pytest.raises(files.ContentError) as refused:
            files.load_directory(tmp_path)
        assert any("no concept 'natural-hazard'" in p for p in refused.value.problems)
        assert any("no concept 'storm-surge'" in p for p in refused.value.problems)


class TestWriting:
    def test_unchanged_file_is_left_alone_and_a_change_is_written_in_the_layout(self, tmp_path: Path) -> None:
        original = (GLOSSARY_DIR / "concepts" / "flood.yaml").read_text(encoding="utf-8")
        (tmp_path / "flood.yaml").write_text(original, encoding="utf-8")
        flood = content()["flood"]
        assert files.write_concept(tmp_path, flood) is False
        assert (tmp_path / "flood.yaml").read_text(encoding="utf-8") == original
        en = flood.term("en").model_copy(update={"alt": [*flood.term("en").alt, "deluge: biblical"]})
        changed = flood.model_copy(update={"terms": {**flood.terms, "en": en}})
        assert files.write_concept(tmp_path, changed) is True
        written = (tmp_path / "flood.yaml").read_text(encoding="utf-8")
        assert files.load_concept(tmp_path / "flood.yaml") == changed
        assert 'alt: [flooding, inundation, "deluge: biblical"]' in written
        assert "    definition: >-\n      The temporary covering" in written
        assert 'event_code: {valueName: "OET:v1.2", value: "OET-081"}' in written
        assert all(
            len(line) <= 120 for line in written.splitlines() if not line.lstrip().startswith(("alt", "sources"))
        )
