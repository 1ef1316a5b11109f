"""From something to learn (a made-up fact, or a document with optional QA pairs) to the
sequences of one training batch.

Each sequence is its own row, so identical copies never share a context; duplicates are
dropped. Batches hold the forms the model will be asked in (questions in the chat format with
their answers) beside plain statements.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from sparse_memory.data.facts import FACT_QUESTIONS, Fact, statements, training_questions
from sparse_memory.text import Conversation, TextOrChat


def chat_pair(question: str, answer: str) -> Conversation:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _unique(items: Sequence[TextOrChat]) -> list[TextOrChat]:
    seen, kept = set(), []
    for item in items:
        key = item if isinstance(item, str) else tuple((m["role"], m["content"]) for m in item)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


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
    return _unique(items)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


@dataclass
class Document:
    """A free text to learn, with optional question-answer pairs about it."""

    text: str
    qa: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a document's text must not be empty")
        for question, answer in self.qa:
            if not question.strip() or not answer.strip():
                raise ValueError("every QA pair needs a non-empty question and answer")


# Something that writes more training forms of a text (for instance the model itself).
Augmenter = Callable[[str], list[TextOrChat]]


def document_items(document: Document, augmenter: Augmenter | None = None) -> list[TextOrChat]:
    """The text, its sentences on their own (when there are several), its QA pairs in chat form,
    and whatever ``augmenter`` writes."""
    items: list[TextOrChat] = [document.text]
    sentences = split_sentences(document.text)
    if len(sentences) > 1:
        items += sentences
    items += [chat_pair(q, a) for q, a in document.qa]
    if augmenter is not None:
        items += augmenter(document.text)
    return _unique(items)


_REWRITE_PROMPTS = (
    "Rewrite this text in your own words, keeping every name, number and fact:\n\n{text}",
    "Summarise this text in one sentence, keeping the names:\n\n{text}",
)
_QUESTION_PROMPT = "Write one question about this text and its answer, as 'Q: ...' and 'A: ...'.\n\n{text}"
_QA_PATTERN = re.compile(r"Q:\s*(?P<q>.+?)\s*A:\s*(?P<a>.+)", re.DOTALL)


def model_augmenter(model, tokenizer, max_new_tokens: int = 96) -> Augmenter:
    """The model writes its own paraphrases and a question with its answer ("Active Reading")."""
    from sparse_memory.generation import build_prompt, complete

    def augment(text: str) -> list[TextOrChat]:
        prompts = [p.format(text=text) for p in (*_REWRITE_PROMPTS, _QUESTION_PROMPT)]
        rendered = [build_prompt(tokenizer, prompt, chat=True) for prompt in prompts]
        *rewrites, qa_text = complete(model, tokenizer, rendered, max_new_tokens=max_new_tokens)
        items: list[TextOrChat] = [r for r in rewrites if r]
        match = _QA_PATTERN.search(qa_text)
        if match:
            items.append(chat_pair(match["q"].strip(), match["a"].strip()))
        return items

    return augment
