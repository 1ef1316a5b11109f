"""Tests for sparse_memory.data.facts (synthetic facts about invented people)."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from sparse_memory.data import facts as F
from sparse_memory.data.facts import (
    EVAL_QUESTION_TEMPLATES,
    PROFESSIONS,
    RELATIONS,
    STATEMENT_TEMPLATES,
    TRAINING_QUESTION_TEMPLATES,
    Fact,
    Person,
    eval_questions,
    facts_of,
    indefinite_article,
    make_facts,
    make_people,
    statements,
    training_questions,
    with_article,
)


@pytest.fixture(scope="module")
def people() -> list[Person]:
    return make_people(60, seed=7)


@pytest.fixture(scope="module")
def all_facts(people: list[Person]) -> list[Fact]:
    return [fact for person in people for fact in facts_of(person)]


def test_relations() -> None:
    assert RELATIONS == (
        "birthplace",
        "birth_year",
        "employer",
        "profession",
        "university",
    )


def test_make_people_deterministic() -> None:
    assert make_people(25, seed=3) == make_people(25, seed=3)
    assert make_people(25) == make_people(25, seed=0)


def test_make_people_differs_across_seeds() -> None:
    a = make_people(25, seed=0)
    b = make_people(25, seed=1)
    assert a != b
    assert {p.name for p in a} != {p.name for p in b}


def test_make_people_prefix_stable() -> None:
    assert make_people(10, seed=5) == make_people(30, seed=5)[:10]


def test_make_people_does_not_touch_global_random() -> None:
    random.seed(1234)
    state = random.getstate()
    make_people(50, seed=2)
    make_facts(50, seed=2)
    assert random.getstate() == state


def test_make_people_edge_cases() -> None:
    assert make_people(0) == []
    with pytest.raises(ValueError):
        make_people(-1)


def test_names_unique_for_500() -> None:
    ps = make_people(500, seed=0)
    names = [p.name for p in ps]
    last_names = [p.name.split()[1] for p in ps]
    assert len(set(names)) == 500
    assert len(set(last_names)) == 500


def test_name_format(people: list[Person]) -> None:
    for p in people:
        parts = p.name.split(" ")
        assert len(parts) == 2
        for part in parts:
            assert part.isalpha() and part.istitle() and len(part) >= 3


def test_attribute_values(people: list[Person]) -> None:
    assert len(PROFESSIONS) >= 30
    assert len(set(PROFESSIONS)) == len(PROFESSIONS)
    for p in people:
        assert 1901 <= p.birth_year <= 2004
        assert p.profession in PROFESSIONS
        assert p.birthplace.isalpha() and p.birthplace.istitle()
        company_word, sector = p.employer.split(" ")
        assert company_word.isalpha() and company_word.istitle()
        assert sector in F._COMPANY_SECTORS
        assert p.university[0].isupper() or p.university.startswith("the ")
    # Attributes vary across people.
    assert len({p.birthplace for p in people}) > 20
    assert len({p.employer for p in people}) > 20
    assert len({p.university for p in people}) > 20


def test_facts_of_order_and_answers(people: list[Person]) -> None:
    p = people[0]
    fs = facts_of(p)
    assert [f.relation for f in fs] == list(RELATIONS)
    assert all(f.person == p and f.subject == p.name for f in fs)
    answers = {f.relation: f.answer for f in fs}
    assert answers == {
        "birthplace": p.birthplace,
        "birth_year": str(p.birth_year),
        "employer": p.employer,
        "profession": p.profession,
        "university": p.university,
    }


def test_fact_rejects_unknown_relation(people: list[Person]) -> None:
    with pytest.raises(ValueError):
        Fact(people[0], "favourite_colour")


def test_make_facts_covers_relations_and_people() -> None:
    fs = make_facts(23, seed=4)
    assert len(fs) == 23
    assert [f.relation for f in fs] == [RELATIONS[i % 5] for i in range(23)]
    assert {f.relation for f in fs} == set(RELATIONS)
    assert len({f.subject for f in fs}) == 23
    assert [f.person for f in fs] == make_people(23, seed=4)
    assert make_facts(23, seed=4) == fs
    assert make_facts(0) == []


def test_template_counts() -> None:
    tables = (STATEMENT_TEMPLATES, TRAINING_QUESTION_TEMPLATES, EVAL_QUESTION_TEMPLATES)
    for table in tables:
        assert set(table) == set(RELATIONS)
    for rel in RELATIONS:
        assert len(set(STATEMENT_TEMPLATES[rel])) >= 10
        assert len(set(TRAINING_QUESTION_TEMPLATES[rel])) >= 5
        assert len(set(EVAL_QUESTION_TEMPLATES[rel])) >= 3


def test_template_placeholders() -> None:
    for rel in RELATIONS:
        for t in STATEMENT_TEMPLATES[rel]:
            assert "{name}" in t and "{answer}" in t
        for t in TRAINING_QUESTION_TEMPLATES[rel] + EVAL_QUESTION_TEMPLATES[rel]:
            assert "{name}" in t and "{answer}" not in t
            assert is_question_or_request(t)


def is_question_or_request(text: str) -> bool:
    return text.endswith("?") or (text.startswith("Tell me") and text.endswith("."))


def test_statement_name_position_varies() -> None:
    for rel in RELATIONS:
        ts = STATEMENT_TEMPLATES[rel]
        assert any(t.startswith("{name}") for t in ts)
        assert any(t.endswith("{name}.") for t in ts)
        assert any(not t.startswith("{name}") and not t.endswith("{name}.") for t in ts)


def test_eval_templates_disjoint_from_training() -> None:
    for rel in RELATIONS:
        train = set(TRAINING_QUESTION_TEMPLATES[rel])
        assert not set(EVAL_QUESTION_TEMPLATES[rel]) & train
    all_train = {t for ts in TRAINING_QUESTION_TEMPLATES.values() for t in ts}
    all_eval = {t for ts in EVAL_QUESTION_TEMPLATES.values() for t in ts}
    assert not all_train & all_eval


def test_statements(all_facts: list[Fact]) -> None:
    for fact in all_facts:
        sents = statements(fact)
        assert len(sents) >= 10
        assert len(set(sents)) == len(sents)
        for s in sents:
            assert fact.subject in s
            assert fact.answer in s
            assert not s[0].islower(), s  # capital letter or a year
            assert s.endswith(".")
            assert "{" not in s and "}" not in s


def test_statement_example() -> None:
    p = Person(
        "Varek Olmstadt",
        "Tessmoor",
        1950,
        "Quillon Dynamics",
        "engineer",
        "the University of Brannock",
    )
    fs = facts_of(p)
    assert "Varek Olmstadt was born in Tessmoor." in statements(fs[0])
    assert "Varek Olmstadt is an engineer." in statements(fs[3])
    assert "Varek Olmstadt studied at the University of Brannock." in statements(fs[4])
    expected = (
        "Where was Varek Olmstadt born?",
        "Varek Olmstadt was born in Tessmoor.",
    )
    assert expected in training_questions(fs[0])


def test_training_questions(all_facts: list[Fact]) -> None:
    for fact in all_facts:
        pairs = training_questions(fact, len(TRAINING_QUESTION_TEMPLATES[fact.relation]))
        assert len(pairs) >= 5
        assert len({q for q, _ in pairs}) == len(pairs)
        for q, a in pairs:
            assert fact.subject in q and is_question_or_request(q)
            assert fact.answer in a and fact.subject in a and a.endswith(".")


def test_training_questions_count_takes_the_first_templates() -> None:
    fact = make_facts(3, seed=4)[2]
    first = [template.format(name=fact.subject) for template in TRAINING_QUESTION_TEMPLATES[fact.relation][:5]]
    assert [q for q, _ in training_questions(fact)] == first  # the measured default, FACT_QUESTIONS
    assert [q for q, _ in training_questions(fact, 5)] == first
    assert len(training_questions(fact, 10)) == len(TRAINING_QUESTION_TEMPLATES[fact.relation]) == 10
    for count in (0, 11):
        with pytest.raises(ValueError, match="between 1 and 10"):
            training_questions(fact, count)


def test_eval_questions(all_facts: list[Fact]) -> None:
    for fact in all_facts:
        qs = eval_questions(fact)
        assert len(qs) >= 3
        assert all(fact.subject in q for q in qs)
        assert not set(qs) & {q for q, _ in training_questions(fact)}


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("engineer", "an engineer"),
        ("glassblower", "a glassblower"),
        ("architect", "an architect"),
        ("optometrist", "an optometrist"),
        ("upholsterer", "an upholsterer"),
        ("urban planner", "an urban planner"),
        ("urologist", "a urologist"),
        ("university lecturer", "a university lecturer"),
        ("marine biologist", "a marine biologist"),
        ("hour", "an hour"),
    ],
)
def test_with_article(phrase: str, expected: str) -> None:
    assert with_article(phrase) == expected
    assert indefinite_article(phrase) == expected.split(" ")[0]


def test_profession_articles_in_statements() -> None:
    for prof in PROFESSIONS:
        p = Person("Varek Olmstadt", "Tessmoor", 1950, "Quillon Labs", prof, "Harwick")
        sents = statements(Fact(p, "profession"))
        assert f"Varek Olmstadt is {with_article(prof)}." in sents


def test_module_uses_stdlib_only() -> None:
    source = Path(F.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "random", "re", "dataclasses", "typing"}
