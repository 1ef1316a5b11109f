"""Tests for sparse_memory.scoring (SQuAD-style short-answer scoring), with hand-computed values."""

from __future__ import annotations

import pytest

from sparse_memory.scoring import answer_scores, cut_answer, exact_match, f1_score, normalize_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("An apple, a day.", "apple day"),
        ("  Washington, D.C. ", "washington dc"),
        ("Theatre", "theatre"),  # "the" only as a whole word
        ("It's 3.5", "its 35"),  # punctuation is deleted, not replaced by a space
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match() -> None:
    assert exact_match("the Eiffel Tower.", ["Eiffel Tower"]) == 1.0
    assert exact_match("Eiffel Tower", ["Paris", "eiffel  tower"]) == 1.0
    assert exact_match("Eiffel Tower in Paris", ["Eiffel Tower"]) == 0.0
    assert exact_match("Paris", []) == 0.0


def test_f1_by_hand() -> None:
    # prediction {eiffel, tower}, gold {eiffel, tower, in, paris}: 2 shared tokens,
    # precision 2/2 = 1, recall 2/4 = 1/2, F1 = 2 * 1 * 1/2 / (1 + 1/2) = 2/3.
    assert f1_score("the Eiffel tower", ["Eiffel Tower in Paris"]) == pytest.approx(2 / 3)
    # prediction {paris, france, capital}, gold {capital, city, of, france}: 2 shared,
    # precision 2/3, recall 2/4, F1 = 2 * (1/3) / (7/6) = 4/7.
    assert f1_score("Paris, France capital", ["capital city of France"]) == pytest.approx(4 / 7)
    # The best gold answer counts.
    assert f1_score("the Eiffel tower", ["Berlin", "Eiffel Tower in Paris"]) == pytest.approx(2 / 3)
    # Repeated tokens count once per occurrence in both: precision 1/2, recall 1/1, F1 = 2/3.
    assert f1_score("paris paris", ["Paris"]) == pytest.approx(2 / 3)
    assert f1_score("Berlin", ["Paris"]) == 0.0
    assert f1_score("the", ["a"]) == 0.0  # both normalise to nothing: SQuAD v1.1 gives 0
    assert f1_score("Paris", []) == 0.0


@pytest.mark.parametrize(
    ("generation", "expected"),
    [
        ("Canberra", "Canberra"),
        ("Canberra\nIt became the capital in 1913.", "Canberra"),
        ("\n\n  Paris is the capital.\nSecond line", "Paris is the capital."),
        ("Canberra. It became the capital in 1913.", "Canberra."),
        ("Who knows? Maybe Sydney.", "Who knows?"),
        ("Wow! Canberra.", "Wow!"),
        ("It is 3.5 meters long. Really.", "It is 3.5 meters long."),
        ("Pi is about 3.14159! Yes.", "Pi is about 3.14159!"),
        ("Version 2.0.1 came out in 2024. Then 2.1.", "Version 2.0.1 came out in 2024."),
        ("It costs $1,000.50 today. Or more.", "It costs $1,000.50 today."),
        ("The answer is 3. Then 4.", "The answer is 3."),
        ("St. John's is the capital. It is small.", "St. John's is the capital."),
        ("Washington D.C. is the capital. Yes.", "Washington D.C. is the capital."),
        ("J. K. Rowling wrote it. Yes.", "J. K. Rowling wrote it."),
        ("It was Henry I. Then Stephen.", "It was Henry I."),
        ("Ends without a stop", "Ends without a stop"),
        ("", ""),
    ],
)
def test_cut_answer(generation: str, expected: str) -> None:
    assert cut_answer(generation) == expected


def test_cut_answer_keeps_at_most_max_words() -> None:
    words = " ".join(f"w{i}" for i in range(20))
    assert cut_answer(words) == " ".join(f"w{i}" for i in range(12))
    assert cut_answer("one  two\tthree four", max_words=3) == "one two three"
    assert cut_answer("one two. three four five", max_words=3) == "one two."


def test_answer_scores() -> None:
    assert answer_scores("Canberra. It has been the capital since 1913.", ["Canberra"]) == {
        "em": 1.0,
        "f1": 1.0,
        "contains": 1.0,
    }
    # Short answer "The capital is Sydney, not Canberra." -> {capital, is, sydney, not, canberra}:
    # precision 1/5, recall 1, F1 = 2 * 1/5 / (6/5) = 1/3.
    scores = answer_scores("The capital is Sydney, not Canberra.", ["Canberra"])
    assert scores["em"] == 0.0
    assert scores["f1"] == pytest.approx(1 / 3)
    assert scores["contains"] == 1.0
    # contains looks at the whole generation, em and f1 only at the first sentence.
    scores = answer_scores("I am not sure.\nIt might be Paris.", ["Paris"])
    assert (scores["em"], scores["f1"], scores["contains"]) == (0.0, 0.0, 1.0)
    # Whole words only.
    assert answer_scores("Parisian food is great.", ["Paris"])["contains"] == 0.0
    assert answer_scores("The Eiffel Tower, in Paris.", ["eiffel tower"])["contains"] == 1.0
    # An answer that normalises to nothing never counts as contained.
    assert answer_scores("the end", ["The"])["contains"] == 0.0


def test_short_answer_drops_the_echoed_question_and_function_words():
    from sparse_memory.scoring import short_answer

    question = "What is the capital of Australia?"
    assert short_answer("The capital of Australia is Canberra. It is inland.", question) == "Canberra."
    assert short_answer("Varek Olmstadt was born in 1950.", "In what year was Varek Olmstadt born?") == "1950."
    assert short_answer("He works at Quillon Dynamics.", "Who employs Varek?") == "Quillon Dynamics."
    in_other_words = "In which year did Zasalor Olmner come into the world?"
    assert short_answer("Zasalor Olmner was born in 1996.", in_other_words) == "1996."
    # only relation verbs go: a word the reply adds to the answer still costs precision
    assert short_answer("She is a professional electrician.", "What is Galin's job?") == "professional electrician."
    assert short_answer("Australia.", question) == "Australia."  # nothing left: keep the cut answer
    scores = answer_scores("The capital of Australia is Canberra.", ["Canberra"], question)
    assert scores == {"em": 1.0, "f1": 1.0, "contains": 1.0}
    assert answer_scores("The capital of Australia is Canberra.", ["Canberra"])["em"] == 0.0


def test_the_gold_answer_loses_the_same_unscored_words_as_the_reply():
    from sparse_memory.scoring import short_answer

    gold = ["the University of Ulvoock"]
    # "of" is a function word on both sides: the right answer is exactly right
    reply = "Tosia Naskrath graduated from the University of Ulvoock."
    assert answer_scores(reply, gold, "Tosia Naskrath graduated from which institution?")["em"] == 1.0
    # a possessive in the question gives the name away
    possessive = "Which school is Tosia Naskrath's alma mater?"
    assert short_answer("Tosia Naskrath studied at the University of Ulvoock.", possessive) == "University Ulvoock."
    # a word the question gives away is scored on neither side ...
    went = "Can you tell me where Tosia Naskrath went to university?"
    assert answer_scores("Tosia Naskrath studied at the University of Ulvoock.", gold, went)["em"] == 1.0
    # ... so a wrong university earns nothing for the word "University"
    assert answer_scores("Tosia Naskrath studied at the University of Amsterdam.", gold, went)["f1"] == 0.0
