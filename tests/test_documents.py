"""Tests for sparse_memory.data.documents (a stream of documents as users write them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from sparse_memory.data.documents import (
    CLOSERS,
    DOCUMENT_KINDS,
    HELD_OUT_QUESTIONS,
    NAME_RELATIONS,
    OPENERS,
    RELATIONS_BY_KIND,
    STATEMENTS,
    USER_QUESTIONS,
    UserDocument,
    corrected_facts,
    correction_stream,
    current_facts,
    user_documents,
)

SEEDS = (0, 1, 2)
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")
FUNCTION_WORDS = set(
    "a an the of in on at to for with and or is are was were be do does did what which who whom where when "
    "how can you me tell name that it its from by as s".split()
)


@pytest.fixture(scope="module")
def streams() -> dict[int, list[UserDocument]]:
    return {seed: user_documents(100, seed) for seed in SEEDS}


@pytest.fixture(scope="module")
def documents(streams: dict[int, list[UserDocument]]) -> list[UserDocument]:
    return [document for stream in streams.values() for document in stream]


def sentences(text: str) -> list[str]:
    return SENTENCE_SPLIT.split(text.strip())


def mask(document: UserDocument) -> str:
    """The text with names, answers and numbers masked, to compare sentence shapes."""
    text = document.text
    for name in sorted({f.entity for f in document.facts} | {f.answer for f in document.facts}, key=len)[::-1]:
        text = text.replace(name, "X")
    text = re.sub(r"\d[\d,]*", "0", text)
    return re.sub(r"(?<=\w )[A-Z][\w']*", "X", text)  # other names, mid-sentence


def stems(text: str) -> set[str]:
    out = set()
    for word in re.findall(r"[a-z]+", text.lower().replace("'s", "")):
        out.add(re.sub(r"(ing|ed|es|s)$", "", word) if len(word) > 5 else word)
    return out


# --------------------------------------------------------------------------- #
# The stream
# --------------------------------------------------------------------------- #


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    assert user_documents(60, seed=4) == user_documents(60, seed=4)
    texts_a = [d.text for d in user_documents(60, seed=4)]
    texts_b = [d.text for d in user_documents(60, seed=5)]
    assert sum(a != b for a, b in zip(texts_a, texts_b, strict=True)) > 50


def test_does_not_depend_on_string_hashing() -> None:
    code = (
        "import hashlib; from sparse_memory.data.documents import user_documents; "
        "print(hashlib.sha256(repr(user_documents(80, 3)).encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_sizes_and_bad_n() -> None:
    assert user_documents(0) == []
    assert len(user_documents(7, seed=1)) == 7
    assert [d.index for d in user_documents(30)] == list(range(30))
    with pytest.raises(ValueError):
        user_documents(-1)


@pytest.mark.parametrize("seed", range(5))
def test_fifty_documents_have_every_kind_and_several_follow_ups(seed: int) -> None:
    kinds = Counter(d.kind for d in user_documents(50, seed))
    assert set(kinds) == set(DOCUMENT_KINDS)
    assert kinds["correction"] >= 3 and kinds["update"] >= 3


def test_share_of_follow_ups(streams: dict[int, list[UserDocument]]) -> None:
    for stream in streams.values():
        follow_ups = sum(d.kind in ("update", "correction") for d in stream)
        assert 15 <= follow_ups <= 20


# --------------------------------------------------------------------------- #
# Each document
# --------------------------------------------------------------------------- #


def test_one_entity_one_to_five_facts_one_to_six_sentences(documents: list[UserDocument]) -> None:
    for document in documents:
        assert 1 <= len(document.facts) <= 5, document
        assert len({(f.entity, f.kind) for f in document.facts}) == 1, document
        assert len({f.relation for f in document.facts}) == len(document.facts), document
        assert 1 <= len(sentences(document.text)) <= 6, document.text


def test_text_names_the_entity_and_states_every_answer(documents: list[UserDocument]) -> None:
    for document in documents:
        for fact in document.facts:
            assert fact.entity in document.text, document.text
            assert fact.answer in document.text, (fact, document.text)
            assert fact.relation in RELATIONS_BY_KIND[fact.kind]
            assert 1 <= len(fact.answer.split()) <= 4, fact


def test_sentences_start_like_sentences(documents: list[UserDocument]) -> None:
    prefixes = tuple(o for table in OPENERS.values() for o in table if o.endswith(" "))
    lower_closers = {c for table in CLOSERS.values() for c in table if c and c[0].islower()}
    for document in documents:
        first, *rest = sentences(document.text)
        assert first[0].isupper() or first[0].isdigit() or first.startswith(prefixes), document.text
        for sentence in rest:
            assert sentence[0].isupper() or sentence[0].isdigit() or sentence in lower_closers, document.text


def test_verbs_agree_with_pronouns(documents: list[UserDocument]) -> None:
    plural_wrong = re.compile(r"\b[Tt]hey (is|was|has|works|lives|plays|makes)\b")
    singular_wrong = re.compile(r"\b([Ss]he|[Hh]e|[Ii]t) (are|were|have|work|live|play|make)\b")
    for document in documents:
        assert not plural_wrong.search(document.text), document.text
        assert not singular_wrong.search(document.text), document.text


# --------------------------------------------------------------------------- #
# Questions
# --------------------------------------------------------------------------- #


def test_held_out_questions_name_the_entity_and_never_copy_a_document(documents: list[UserDocument]) -> None:
    texts = [d.text.lower() for d in documents]
    for document in documents:
        for fact in document.facts:
            assert 2 <= len(fact.questions) <= 3
            assert len(set(fact.questions)) == len(fact.questions)
            for question in fact.questions:
                assert question.endswith("?") and fact.entity in question, question
                body = question.lower().rstrip("?")
                assert not any(body in text for text in texts), question


def test_held_out_questions_use_their_own_words(documents: list[UserDocument]) -> None:
    """Every question has a content word its document does not use; questions repeat the text rarely."""
    for document in documents:
        in_text = stems(document.text)
        for fact in document.facts:
            for question in fact.questions:
                own = stems(question) - FUNCTION_WORDS - stems(fact.entity)
                assert own - in_text, (question, document.text)


def test_user_qa_pairs(documents: list[UserDocument]) -> None:
    held_out = {q for d in documents for f in d.facts for q in f.questions}
    for document in documents:
        assert len(document.qa) == len(document.facts)
        for (question, answer), fact in zip(document.qa, document.facts, strict=True):
            assert answer == fact.answer
            assert fact.entity in question
            assert question not in held_out


def test_question_tables() -> None:
    for kind, relations in RELATIONS_BY_KIND.items():
        for relation in relations:
            assert len(STATEMENTS[relation]) >= 7, relation
            assert len(HELD_OUT_QUESTIONS[relation]) >= 3, relation
            assert len(USER_QUESTIONS[relation]) >= 2, relation
            assert not set(HELD_OUT_QUESTIONS[relation]) & set(USER_QUESTIONS[relation]), relation
            for template in STATEMENTS[relation]:
                assert re.search(r"\{(s|o|p|n|N)\}", template), (kind, template)
                assert re.search(r"\{(a|A)\}", template), (kind, template)


# --------------------------------------------------------------------------- #
# Variety
# --------------------------------------------------------------------------- #


def test_sentence_shapes_vary(streams: dict[int, list[UserDocument]]) -> None:
    for stream in streams.values():
        shapes = [s for d in stream for s in sentences(mask(d))]
        assert len(set(shapes)) / len(shapes) > 0.6
        most_common_share = Counter(shapes).most_common(1)[0][1] / len(shapes)
        assert most_common_share < 0.05


def test_openings_vary(streams: dict[int, list[UserDocument]]) -> None:
    for stream in streams.values():
        openings = Counter(" ".join(mask(d).split()[:4]) for d in stream)
        assert openings.most_common(1)[0][1] / len(stream) <= 0.08, openings.most_common(3)


def test_each_relation_is_phrased_many_ways() -> None:
    """Sentences stating one fact, names and pronouns masked, take many shapes per relation."""
    documents = [d for seed in range(3) for d in user_documents(200, seed)]
    pronouns = re.compile(r"\b(she|he|they|it|her|his|their|its|him|them)\b", re.IGNORECASE)
    shapes: dict[str, list[str]] = {}
    for document in documents:
        if document.kind == "correction":
            continue
        for sentence in sentences(document.text):
            stated = [f for f in document.facts if f.answer in sentence]
            if len(stated) == 1:
                masked = sentence.replace(stated[0].answer, "A").replace(stated[0].entity, "E")
                masked = pronouns.sub("P", re.sub(r"(?<=\w )[A-Z][\w']*", "X", masked))
                shapes.setdefault(stated[0].relation, []).append(masked)
    for relation in (r for rs in RELATIONS_BY_KIND.values() for r in rs):
        assert len(shapes[relation]) >= 10, relation
        assert len(set(shapes[relation])) >= 7, (relation, Counter(shapes[relation]).most_common(3))


# --------------------------------------------------------------------------- #
# Follow-ups, corrections and the current state
# --------------------------------------------------------------------------- #


def test_corrections_point_at_the_latest_earlier_value(streams: dict[int, list[UserDocument]]) -> None:
    for stream in streams.values():
        for document in stream:
            assert bool(document.supersedes) == (document.kind == "correction")
            for earlier_index, relation in document.supersedes:
                (fact,) = [f for f in document.facts if f.relation == relation]
                assert earlier_index < document.index
                (old,) = [f for f in stream[earlier_index].facts if f.relation == relation]
                assert old.entity == fact.entity and old.answer != fact.answer
                between = stream[earlier_index + 1 : document.index]
                assert not any(f.entity == fact.entity and f.relation == relation for d in between for f in d.facts)


def test_updates_add_new_relations_to_an_earlier_entity(streams: dict[int, list[UserDocument]]) -> None:
    for stream in streams.values():
        stated: set[tuple[str, str]] = set()
        entities: set[str] = set()
        for document in stream:
            entity = document.facts[0].entity
            if document.kind in ("update", "correction"):
                assert entity in entities
            else:
                assert entity not in entities, "a fresh document introduces a new entity"
            for fact in document.facts:
                assert ((fact.entity, fact.relation) in stated) == (document.kind == "correction")
                stated.add((fact.entity, fact.relation))
            entities.add(entity)


def test_current_facts_keep_only_the_newest_values(streams: dict[int, list[UserDocument]]) -> None:
    for stream in streams.values():
        current = current_facts(stream)
        keys = [(f.entity, f.relation) for _, f in current]
        assert len(keys) == len(set(keys))
        total = sum(len(d.facts) for d in stream)
        superseded = [pair for d in stream for pair in d.supersedes]
        assert len(current) == total - len(superseded)
        latest = {}
        for document in stream:
            for fact in document.facts:
                latest[(fact.entity, fact.relation)] = (document.index, fact.answer)
        assert {(f.entity, f.relation): (d.index, f.answer) for d, f in current} == latest
        for index, relation in superseded:
            assert all(not (d.index == index and f.relation == relation) for d, f in current)


def test_corrected_facts(streams: dict[int, list[UserDocument]]) -> None:
    for stream in streams.values():
        corrected = corrected_facts(stream)
        assert corrected and all(d.kind == "correction" for d, _ in corrected)
        assert all(pair in current_facts(stream) for pair in corrected)
        corrected_keys = {(stream[i].facts[0].entity, relation) for d in stream for i, relation in d.supersedes}
        assert {(f.entity, f.relation) for _, f in corrected} == corrected_keys


# --------------------------------------------------------------------------- #
# Names
# --------------------------------------------------------------------------- #


def test_names_are_unique_and_none_contains_another(streams: dict[int, list[UserDocument]]) -> None:
    for stream in streams.values():
        kind_of: dict[str, set[str]] = {}
        for document in stream:
            for fact in document.facts:
                kind_of.setdefault(fact.entity, set()).add(fact.kind)
                if fact.relation in NAME_RELATIONS:
                    kind_of.setdefault(fact.answer, set()).add(NAME_RELATIONS[fact.relation])
        assert all(len(kinds) == 1 for kinds in kind_of.values()), {n: k for n, k in kind_of.items() if len(k) > 1}
        names = sorted(name.lower() for name in kind_of)
        for name in names:
            assert not [other for other in names if other != name and name in other], name


def test_a_correction_stream_keeps_the_corrections_and_what_they_correct_numbered_again():
    stream = user_documents(50, seed=8)
    short = correction_stream(stream)
    corrections = [d for d in stream if d.supersedes]
    assert len(corrections) >= 2 and len(short) < len(stream)
    assert [d.index for d in short] == list(range(len(short)))
    assert sum(bool(d.supersedes) for d in short) == len(corrections)
    for document in short:
        for earlier, relation in document.supersedes:
            assert earlier < document.index
            assert any(fact.relation == relation for fact in short[earlier].facts)
    assert len(corrected_facts(short)) == len(corrected_facts(stream))
