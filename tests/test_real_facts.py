"""Tests for sparse_memory.data.real_facts (real facts from countryinfo, mendeleev and bsdgames)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from sparse_memory.data import real_facts as R
from sparse_memory.data.real_facts import (
    QAItem,
    QuizSyntaxError,
    all_real_facts,
    country_capitals,
    element_facts,
    quiz_canonical,
    quiz_facts,
    quiz_variants,
    split_quiz_line,
)
from sparse_memory.scoring import normalize_answer

# Under CI=true the quiz tests always run, so a CI image without bsdgames fails loudly.
needs_quiz = pytest.mark.skipif(
    not Path("/usr/share/games/bsdgames/quiz").exists() and os.environ.get("CI") != "true",
    reason="bsdgames is not installed (apt-get install bsdgames, or make data)",
)


def by_question(items: list[QAItem]) -> dict[str, QAItem]:
    return {item.question: item for item in items}


def check_items(items: list[QAItem], source: str | None = None) -> None:
    for item in items:
        assert item.question.strip() and item.question.endswith("?"), item
        assert item.question == " ".join(item.question.split()), item
        assert item.answers and all(a.strip() and normalize_answer(a) for a in item.answers), item
        assert len({normalize_answer(a) for a in item.answers}) == len(item.answers), item
        assert item.source in R.SOURCES and (source is None or item.source == source), item
        assert item.statement.endswith((".", "!", "?")) and not item.statement.endswith(".."), item
        assert item.statement[0].isupper(), item
        assert item.answers[0] in item.statement, item


def clear_caches() -> None:
    R._country_capitals.cache_clear()
    R._element_facts.cache_clear()
    R._quiz_facts.cache_clear()


# --------------------------------------------------------------------------------------------
# countryinfo


def test_country_capitals() -> None:
    items = country_capitals()
    assert len(items) >= 190
    check_items(items, "countryinfo")
    facts = by_question(items)
    australia = facts["What is the capital of Australia?"]
    assert australia.answers == ("Canberra",)
    assert australia.statement == "The capital of Australia is Canberra."
    assert facts["What is the capital of the Netherlands?"].answers[0] == "Amsterdam"
    assert facts["What is the capital of Kazakhstan?"].answers[:2] == ("Astana", "Nur-Sultan")
    assert "Bogota" in facts["What is the capital of Colombia?"].answers  # accent-free variant
    assert "Porto Novo" in facts["What is the capital of Benin?"].answers  # hyphen-free variant
    assert facts["What is the capital of the United States?"].statement.endswith("Washington D.C.")
    assert not any("Palestine" in q or "Antilles" in q or "Hong Kong" in q for q in facts)


# --------------------------------------------------------------------------------------------
# mendeleev


def test_element_facts() -> None:
    items = element_facts()
    assert len(items) >= 100
    check_items(items, "mendeleev")
    facts = by_question(items)
    assert sum(q.startswith("What is the chemical symbol for ") for q in facts) == 118
    assert facts["What is the chemical symbol of the element with atomic number 26?"].answers == ("Fe",)
    assert facts["What is the chemical symbol for iron?"].answers == ("Fe",)
    assert facts["What is the atomic number of iron?"].answers == ("26",)
    assert facts["Which chemical element has the symbol Fe?"].answers == ("iron",)
    assert "Aluminium" in facts["Which chemical element has the symbol Al?"].answers
    assert facts["In what year was oxygen discovered?"].answers == ("1774",)
    assert "In what year was iron discovered?" not in facts  # known to the ancients
    assert "Who discovered iron?" not in facts
    assert "Who discovered nobelium?" not in facts  # an institute, not a person
    oxygen = facts["Who discovered oxygen?"]
    assert oxygen.answers[0] == "Joseph Priestley and Carl Wilhelm Scheele"  # spelling fixed
    assert {"Joseph Priestley", "Priestley", "Scheele"} <= set(oxygen.answers)


def test_missing_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mendeleev" else real_find_spec(name, *a)
    )
    R._element_facts.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="mendeleev"):
            element_facts()
    finally:
        R._element_facts.cache_clear()


# --------------------------------------------------------------------------------------------
# bsdgames quiz: the parser on hand-written lines


def test_split_quiz_line() -> None:
    assert split_quiz_line("Cal{if{ornia}}|CA:Sacramento:CA:{golden }poppy") == [
        "Cal{if{ornia}}|CA",
        "Sacramento",
        "CA",
        "{golden }poppy",
    ]
    assert split_quiz_line(r"To be{,} or not to be{\:}:that is the question") == [
        r"To be{,} or not to be{\:}",
        "that is the question",
    ]
    assert split_quiz_line("Out, damned spot!::Macbeth") == ["Out, damned spot!", "", "Macbeth"]


def test_quiz_variants_and_canonical() -> None:
    assert quiz_variants("{The }Gambia") == ("The Gambia", "Gambia")
    assert quiz_variants("Cal{if{ornia}}|CA") == ("California", "Calif", "Cal", "CA")
    assert quiz_variants("Hen[ry|] [IV|4]") == ("Henry IV", "Henry 4", "Hen IV", "Hen 4")
    assert quiz_variants("Vienna|Wien") == ("Vienna", "Wien")
    assert quiz_variants("Washington{ DC}") == ("Washington DC", "Washington")
    # Accents are overstrikes: mark, backspace, letter (either order); they compose to one letter.
    assert quiz_variants("Bogot['\ba|a\b'|a]") == ("Bogotá", "Bogota")
    assert quiz_variants("Mo[z|,\bc|c\b,|c]ambique") == ("Mozambique", "Moçambique", "Mocambique")
    # Optional parenthetical notes are not part of the answer.
    assert quiz_variants("21{(Fibonacci)}") == ("21",)
    assert quiz_canonical("{G{eorge} }Washington") == "George Washington"
    assert quiz_canonical(r"To be{,} or not to be{\:}") == "To be, or not to be"
    assert quiz_canonical("{The }Merchant{ of Venice}") == "The Merchant of Venice"
    with pytest.raises(QuizSyntaxError):
        quiz_variants("[Squares|n[**|^]2} base 8")


def test_quiz_missing_directory_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install bsdgames"):
        quiz_facts(directory=tmp_path)


# --------------------------------------------------------------------------------------------
# bsdgames quiz: the installed files


@needs_quiz
def test_quiz_facts() -> None:
    items = quiz_facts()
    assert len(items) >= 200
    check_items(items, "bsdgames")
    assert len({R._question_key(i.question) for i in items}) == len(items)
    facts = by_question(items)
    assert facts["What is the capital of Ohio?"].answers == ("Columbus",)
    assert facts["What is the capital of the U.S. state of Georgia?"].answers == ("Atlanta",)
    assert facts["What is the capital of Georgia?"].answers[0] == "Tbilisi"  # the country
    assert facts["What is the two-letter postal abbreviation for Texas?"].answers == ("TX",)
    assert facts["What is a group of crows called?"].answers == ("murder",)
    assert facts["What is a group of crows called?"].statement == "A group of crows is called a murder."
    assert set(facts["What is a group of bees called?"].answers) == {"swarm"}  # two records merged
    assert {"kitten", "pup"} <= set(facts["What is a baby fox called?"].answers)
    assert facts['Which Shakespeare play contains the line "To be, or not to be"?'].answers == ("Hamlet",)
    assert facts["In the Chinese zodiac, which animal comes after the rat?"].answers == ("ox",)
    # Grover Cleveland served twice, so "who succeeded him" has two answers: both are dropped.
    assert not any("succeeded Grover Cleveland" in q for q in facts)
    # Loose variants that name someone else are not accepted.
    after_reagan = facts["Who succeeded Ronald Wilson Reagan as President of the United States?"]
    assert after_reagan.answers[0] == "George Herbert Walker Bush"
    assert "George W Bush" not in after_reagan.answers and "George H W Bush" in after_reagan.answers
    after_monroe = facts["Who succeeded James Monroe as President of the United States?"]
    assert "John Adams" not in after_monroe.answers
    assert facts["Who succeeded Charles I as ruler of England?"].answers[0] == "Oliver Cromwell"
    assert quiz_facts(limit=7) == items[:7]


@needs_quiz
def test_quiz_facts_are_deterministic() -> None:
    first = quiz_facts()
    clear_caches()
    assert quiz_facts() == first


# --------------------------------------------------------------------------------------------
# all sources


def test_all_real_facts_without_quiz() -> None:
    items = all_real_facts(sources=("countryinfo", "mendeleev"))
    assert items == country_capitals() + element_facts()  # no shared questions
    with pytest.raises(ValueError, match="unknown sources"):
        all_real_facts(sources=("wikipedia",))


@needs_quiz
def test_all_real_facts_deduplicates_and_merges() -> None:
    items = all_real_facts()
    check_items(items)
    keys = [R._question_key(i.question) for i in items]
    assert len(set(keys)) == len(keys)
    assert len(items) < len(country_capitals()) + len(element_facts()) + len(quiz_facts())
    assert [i.source for i in items[: len(country_capitals())]] == ["countryinfo"] * len(country_capitals())
    facts = by_question(items)
    austria = facts["What is the capital of Austria?"]
    assert austria.source == "countryinfo" and austria.answers == ("Vienna", "Wien")  # quiz variant added
    assert facts["What is the capital of Australia?"].answers[0] == "Canberra"
    assert facts["What is the chemical symbol of the element with atomic number 26?"].answers == ("Fe",)
    assert facts["What is the capital of Ohio?"].source == "bsdgames"


@needs_quiz
def test_all_real_facts_are_deterministic() -> None:
    first = all_real_facts()
    clear_caches()
    assert all_real_facts() == first
