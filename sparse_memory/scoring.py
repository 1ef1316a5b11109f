"""SQuAD-style scoring of short answers (standard library only).

``normalize_answer``, ``exact_match`` and ``f1_score`` follow the official SQuAD v1.1
evaluation script. ``cut_answer`` turns a free generation into a short answer, and
``answer_scores`` bundles exact match and F1 on that short answer with a lenient
"contains" check on the whole generation.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "SHORT_ANSWER_VERSION",
    "answer_scores",
    "cut_answer",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "short_answer",
    "unscored_words",
]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")

# A period after one of these words (compared lower-case, without the period) does not end a
# sentence, so "St. John's" or "Mr. Smith" survive the cut.
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "mt", "ft", "jr", "sr", "vs", "gen", "col", "lt"})
# An initial before the period: one capital letter other than the Roman numerals I, V and X
# ("J. R. R. Tolkien", but "Henry I. He" ends a sentence), or a dotted initialism ("D.C", "U.S").
_INITIALISM = re.compile(r"^(?:[A-HJ-UWYZ]|(?:[A-Za-z]\.)+[A-Za-z])$")
_SENTENCE_END = re.compile(r"[.!?]\s")
# Words a chat model wraps around the answer in a full-sentence reply ("He was born in 1950."):
# dropped from the reply together with the words it echoes from the question.
FUNCTION_WORDS = frozenset(
    "a an the in at on of for from to by as with is was are were be been has have had does did do "
    "it its he she they him her them his hers their theirs i you we this that there which who".split()
)
# Verbs that state the relation a question asks about, which a reply repeats in other words
# ("In which year did X come into the world?" - "X was born in 1996."): frame, not answer.
FRAME_WORDS = frozenset(
    "born works worked working employed studied graduated attended lives lived located called named known".split()
)
# Part of the retention set's file: a set probed with another cut is probed again.
SHORT_ANSWER_VERSION = 3
_POSSESSIVE = re.compile(r"['’]s\b")


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace (SQuAD v1.1)."""
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def _f1(prediction: str, answer: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(answer).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """The best token-level F1 between the normalised prediction and any gold answer (0.0 if none)."""
    return max((_f1(prediction, a) for a in answers), default=0.0)


def _is_sentence_end(text: str, dot: int) -> bool:
    """Whether the '.', '!' or '?' at ``dot`` (followed by whitespace) ends a sentence."""
    if text[dot] != ".":
        return True
    words = text[:dot].split()
    if not words:
        return True
    word = words[-1].lstrip("\"'([")
    return not (_INITIALISM.match(word) or word.lower() in ABBREVIATIONS)


def cut_answer(generation: str, max_words: int = 12) -> str:
    """Cut the short answer out of a free generation.

    The rule, applied in order:

    1. Drop leading whitespace, then keep the text up to the first newline (the first line).
    2. Keep the first sentence of that line: the text up to and including the first '.', '!'
       or '?' that is followed by whitespace. A mark with no whitespace after it never ends a
       sentence, so numbers such as "3.5" and "1,000.25" stay whole. A period also does not end a
       sentence after an initial (one capital letter other than the Roman numerals I, V, X, as in
       "J. K. Rowling"), after a dotted initialism ("Washington D.C. is", "the U.S. capital") or
       after a common abbreviation (Mr, Mrs, Ms, Dr, Prof, St, Mt, Ft, Jr, Sr, vs, Gen, Col, Lt;
       any case), so "St. John's" stays whole.
    3. Keep at most ``max_words`` whitespace-separated words, joined by single spaces.

    Example: ``"Canberra. It became the capital in 1913.\\nMore text"`` gives ``"Canberra."``.
    """
    text = generation.lstrip()
    text = text.split("\n", 1)[0]
    for match in _SENTENCE_END.finditer(text):
        if _is_sentence_end(text, match.start()):
            text = text[: match.start() + 1]
            break
    return " ".join(text.split()[:max_words])


def unscored_words(question: str) -> set[str]:
    """The words a reply to ``question`` is not scored on: those the question gives away (a
    possessive "X's" gives away "X"), function words (``FUNCTION_WORDS``) and relation verbs
    (``FRAME_WORDS``), all normalised."""
    echoed = normalize_answer(_POSSESSIVE.sub("", question)).split()
    return set(echoed) | FUNCTION_WORDS | FRAME_WORDS


def _without(text: str, words: set[str]) -> str:
    """``text`` without ``words`` (compared normalised), in order; unchanged if nothing would be left."""
    kept = [word for word in text.split() if normalize_answer(word) and normalize_answer(word) not in words]
    return " ".join(kept) if kept else text


def short_answer(generation: str, question: str | None = None) -> str:
    """The answer part of a reply: ``cut_answer``, then without ``unscored_words(question)``, in
    their original order.

    "The capital of Australia is Canberra." to "What is the capital of Australia?" gives
    "Canberra."; if nothing would be left, the cut answer is returned unchanged.
    """
    cut = cut_answer(generation)
    return cut if question is None else _without(cut, unscored_words(question))


def answer_scores(generation: str, answers: Sequence[str], question: str | None = None) -> dict[str, float]:
    """Scores of one generation against its gold answers.

    ``em`` and ``f1`` compare ``short_answer(generation, question)`` with the answers, which
    lose the same ``unscored_words(question)`` first;
    ``contains`` is 1.0 when any normalised gold answer occurs as a run of whole words in the
    normalised full generation (so "paris" counts inside "it is paris france" but not inside
    "parisian").
    """
    short = short_answer(generation, question)
    padded = f" {normalize_answer(generation)} "
    golds = [g for g in (normalize_answer(a) for a in answers) if g]
    # The gold answers lose the same words as the reply, so that like is compared with like: the
    # "of" in "the University of Ulvoock", or "university" when the question asks where someone
    # went to university, is scored on neither side.
    scored = list(answers)
    if question is not None:
        unscored = unscored_words(question)
        scored = [_without(answer, unscored) for answer in answers]
    return {
        "em": exact_match(short, scored),
        "f1": f1_score(short, scored),
        "contains": float(any(f" {g} " in padded for g in golds)),
    }
