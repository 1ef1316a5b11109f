"""From a made-up fact of the benchmarks to the sequences of one training batch (a document a
user posts is read by ``sparse_memory.data.reading``).

Each sequence is its own row, so identical copies never share a context; duplicates are
dropped. Batches hold the forms the model will be asked in (questions in the chat format with
their answers) beside plain statements.
"""

from __future__ import annotations

from typing import Literal, get_args

from sparse_memory.data.facts import FACT_QUESTIONS, Fact, statements, training_questions
from sparse_memory.data.reading import chat_pair, unique_items
from sparse_memory.text import TextOrChat

AnswerForms = Literal["sentence", "varied"]
ANSWER_FORMS: tuple[str, ...] = get_args(AnswerForms)


def fact_items(fact: Fact, answers: AnswerForms = "sentence", questions: int = FACT_QUESTIONS) -> list[TextOrChat]:
    """Statement paraphrases plus the first ``questions`` training questions, asked and answered
    in chat form.

    ``answers="sentence"`` answers every question with the one full sentence that opens with the
    person's name. ``"varied"`` also answers each with the bare answer and with one of the
    statements: a reply that opens otherwise ("The company is ...") then still finds the answer.
    """
    if answers not in ANSWER_FORMS:
        raise ValueError(f"unknown answer forms {answers!r}; choose from {ANSWER_FORMS}")
    said, asked = statements(fact), training_questions(fact, questions)
    items = [*said, *(chat_pair(q, a) for q, a in asked)]
    if answers == "varied":
        bare = fact.answer[0].upper() + fact.answer[1:] + "."
        for index, (question, sentence) in enumerate(asked):
            others = [statement for statement in said if statement != sentence]  # a form not yet given
            items += [chat_pair(question, bare), chat_pair(question, others[index % len(others)])]
    return unique_items(items)
