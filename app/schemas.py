"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from model_store.ledger import Update
from sparse_memory.data.reading import READING_FORMS

ReadingForm = Literal[READING_FORMS]


class QAPair(BaseModel):
    # A pair is learned as one sequence of the model's window (256 tokens), never split.
    question: str = Field(min_length=1, max_length=1000)
    answer: str = Field(min_length=1, max_length=1000)


class DocumentIn(BaseModel):
    text: str = Field(
        min_length=1, description="The text to learn (at most SPARSE_MEMORY_MAX_DOCUMENT_CHARS characters)."
    )
    qa: list[QAPair] | None = Field(
        default=None, max_length=256, description="Questions about the text with their answers."
    )

    @model_validator(mode="after")
    def _not_blank(self) -> DocumentIn:
        if not self.text.strip():
            raise ValueError("a document's text must contain more than whitespace")
        return self


class LearnOptions(BaseModel):
    top_t: int | None = Field(default=None, ge=1, description="Value rows the update may change.")
    steps: int | None = Field(default=None, ge=1, le=1000, description="Sparse steps at most.")
    lr: float | None = Field(default=None, gt=0, description="Learning rate of the value rows.")
    reserve: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Also reserve the next (reserve - 1) x top_t best-ranked slots, which later updates spare.",
    )
    answer_start_weight: float | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="The loss of the first token of each trained answer counts this many times: a reply that "
        "opens as the trained answers open goes on with what they say.",
    )
    batch_parts: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="The batch's sequences are dealt into this many parts and each step trains on the next "
        "part in turn (1: the whole batch every step).",
    )
    reading: list[ReadingForm] | None = Field(
        default=None,
        description="Forms each document is read into besides its text, sentences and QA pairs: resolved "
        "(sentences with pronouns replaced by names), about (questions about each entity answered with its "
        "sentences), details (a question for each detail of a sentence, in place), questions (each detail asked with "
        "the question word first, and the subject asked for), recite (every question about a name answered with "
        "one recital of its sentences, those that open with it first); [] for none.",
    )


class LearnRequest(BaseModel):
    documents: list[DocumentIn] = Field(min_length=1, max_length=64)
    options: LearnOptions | None = None


class LearnAccepted(BaseModel):
    update_id: int
    status: str


class DocumentOut(BaseModel):
    text: str
    sha256: str
    pieces: list[str] = Field(
        default_factory=list, description="A long document's pieces, each learned as one batch (none: one piece)."
    )
    carried: list[str] = Field(
        default_factory=list,
        description="What the updates this document corrects said and it leaves standing, learned with it.",
    )


class UpdateOut(BaseModel):
    id: int
    status: str
    created_at: datetime
    started_at: datetime | None = Field(description="When a worker began to learn it (the queue wait ends).")
    applied_at: datetime | None
    rolled_back_at: datetime | None
    documents: list[DocumentOut]
    options: dict
    slots: list[int]
    scores: list[float]
    delta_norm: float | None
    loss_before: float | None
    loss_after: float | None
    steps: int | None
    model_version: int | None
    probe: dict | None
    error: str | None
    supersedes: list[int] = Field(default_factory=list, description="Updates this correction rolled back.")
    superseded_by: int | None = Field(default=None, description="The correction that rolled this update back.")
    delta_sha256: str | None = Field(default=None, description="SHA-256 of its delta file, checked at every replay.")

    @classmethod
    def of(cls, update: Update) -> UpdateOut:
        return cls(
            id=update.id,
            status=update.status,
            created_at=update.created_at,
            started_at=update.started_at,
            applied_at=update.applied_at,
            rolled_back_at=update.rolled_back_at,
            documents=[
                DocumentOut(
                    text=d["text"], sha256=d["sha256"], pieces=d.get("pieces", []), carried=d.get("carried", [])
                )
                for d in update.documents
            ],
            options=update.options,
            slots=update.slots or [],
            scores=update.scores or [],
            delta_norm=update.delta_norm,
            loss_before=update.loss_before,
            loss_after=update.loss_after,
            steps=update.steps,
            model_version=update.model_version,
            probe=update.probe,
            error=update.error,
            supersedes=update.supersedes or [],
            superseded_by=update.superseded_by,
            delta_sha256=update.delta_sha256,
        )


class UpdateList(BaseModel):
    items: list[UpdateOut]
    total: int


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class GenerateRequest(BaseModel):
    prompt: str | None = Field(default=None, description="Plain text to continue (no chat template).")
    messages: list[Message] | None = Field(default=None, description="A conversation; the chat template is applied.")
    max_new_tokens: int = Field(default=64, ge=1, le=2048)
    temperature: float = Field(default=0.0, ge=0.0, le=10.0, description="0: greedy.")
    stream: bool = Field(default=False, description="Server-Sent Events: text pieces, then the result.")

    @model_validator(mode="after")
    def _one_input(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError('give exactly one of "prompt" or "messages"')
        if self.messages is not None and not self.messages:
            raise ValueError('"messages" must hold at least one message')
        return self


class GenerateResponse(BaseModel):
    text: str
    model_version: int
