"""Settings of the service (API and worker alike), from environment variables.

Everything the core library reads (``SPARSE_MEMORY_*``) plus where the ledger, the update
store and the queue live. ``DATABASE_URL`` and ``REDIS_URL`` are also read without the prefix,
as most deployments name them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field

from sparse_memory.data.reading import DEFAULT_READING
from sparse_memory.finetune import SparseConfig
from sparse_memory.settings import PROJECT_ROOT, CoreSettings


class ServiceSettings(CoreSettings):
    data_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "service",
        description="This instance's ledger (SQLite by default) and update deltas; the prepared base "
        "model is shared between instances.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SPARSE_MEMORY_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL of the ledger, e.g. postgresql+psycopg://user@host/db; "
        "default: a SQLite file in data_dir.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SPARSE_MEMORY_REDIS_URL", "REDIS_URL"),
        description="Celery broker and update events; unset: the worker runs inside the API process.",
    )
    queue_name: str = Field(
        default="sparse-memory", description="Celery queue of learn tasks; also names the model-event channel."
    )
    memory_model: Path | None = Field(
        default=None, description="A saved memory model directory to serve; default: the prepared default model."
    )
    # Learning defaults: what `bench documents` measured best for what users post (the fact
    # benchmarks' learner, SparseConfig, keeps its own: t = 500, its own lr, answer-start weight 1).
    top_t: int = Field(default=2000, description="Value rows one update may change.")
    steps: int = Field(
        default=40,
        description="Sparse steps one update takes at most (it stops 5 steps after its answers come out right).",
    )
    lr: float = Field(default=3e4, description="SGD learning rate of the value rows.")
    written_factor: float = Field(
        default=SparseConfig.written_factor,
        ge=0.0,
        le=1.0,
        description="Ranking-score factor of slots that active updates wrote: 0 never rewrites them "
        "(earlier facts are kept), 1 is the paper's ranking.",
    )
    reserve: int = Field(
        default=SparseConfig.reserve,
        ge=1,
        description="Default of the update option: an update also reserves its next (reserve - 1) x top_t "
        "best-ranked slots, which later updates spare as if written (1: only the written slots).",
    )
    answer_start_weight: float = Field(
        default=10.0,
        ge=1,
        description="Default of the update option: the loss of the first token of each trained answer counts "
        "this many times.",
    )
    batch_parts: int = Field(
        default=4,
        ge=1,
        description="Default of the update option: the batch's sequences are dealt into this many parts and each "
        "step trains on the next part in turn (1: the whole batch every step).",
    )
    reading: list[str] = Field(
        default=list(DEFAULT_READING),
        description="Default of the update option: the forms a document is read into besides its text, sentences "
        "and QA pairs (resolved, about, details, questions, recite, possessive: sparse_memory.data.reading).",
    )
    supersede_corrections: bool = Field(
        default=True,
        description="A document that corrects what an active update said (a later statement of the same relation "
        "about the same name: a new home, a new head count) supersedes that update: it is rolled back and what it "
        "said that the correction leaves standing is learned again with the correction, as one text.",
    )
    spare_answers: bool = Field(
        default=False,
        description="Never write a slot read where two or more real facts (outside the retention probe) predict "
        "their answers: rows that general answers read stay as they were.",
    )
    precision: Literal["fp32", "bf16", "auto"] = Field(
        default=SparseConfig.precision,
        description="The decoder above the memory during a learn step: fp32, bf16, or auto (bf16 where the "
        "CPU or GPU computes it natively).",
    )
    probe_size: int = Field(default=16, description="Retention questions asked before and after each update.")
    max_retention_drop: float | None = Field(
        default=None,
        description="Reject an update whose retention probe drops by more than this fraction (0.1 = 10%).",
    )
    poll_seconds: float = Field(
        default=2.0, description="How often a serving process checks the ledger for updates it missed."
    )
    sweep_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often a worker looks for updates left queued while it idles (their task never reached the "
        "learn queue) and learns them.",
    )
    max_batch: int = Field(default=8, description="Generation requests decoded together.")
    max_waiting_generations: int = Field(
        default=64, ge=1, description="Generation requests that may wait for the model; more are answered 429."
    )
    max_document_chars: int = Field(
        default=65_536, ge=1, description="Characters of text one document may hold; a longer one is answered 413."
    )
    max_request_bytes: int = Field(
        default=1_048_576, ge=1, description="Bytes one request body may hold; a larger one is answered 413."
    )
    max_pending_updates: int = Field(
        default=100, ge=1, description="Updates that may wait to be learned (queued or running); more are answered 429."
    )

    def learning_defaults(self) -> dict:
        """The options of an update that its request leaves out."""
        return {
            "top_t": self.top_t,
            "steps": self.steps,
            "lr": self.lr,
            "reserve": self.reserve,
            "answer_start_weight": self.answer_start_weight,
            "batch_parts": self.batch_parts,
            "reading": list(self.reading),
        }

    def ledger_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"
