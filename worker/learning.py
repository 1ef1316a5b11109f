"""The learn step of the service: from a queued update to an applied (or rejected) one.

One learner per model at a time (a lock shared by every worker process), and updates in id
order: the learner first catches its model up with the ledger, learns on top of exactly the
state every replica will have, stores the delta, and appends the apply event. Its own model
then follows that event like any replica, so worker and API processes never drift apart.
Running the step again for an update that is already finished changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from model_store.ledger import FINISHED, Ledger, Update
from model_store.settings import ServiceSettings
from model_store.state import DeltaStore, ModelState
from sparse_memory.data.reading import (
    Document,
    carried_sentences,
    document_items,
    document_pieces,
    shares_a_subject,
    unique_items,
)
from sparse_memory.data.real_facts import QAItem, all_real_facts
from sparse_memory.evaluation import retention_f1, sort_known
from sparse_memory.finetune import SparseConfig, SparseMemoryFinetuner, combined
from sparse_memory.slots import BackgroundStats
from sparse_memory.text import encode

log = logging.getLogger(__name__)
PROBE_FILE = "probe_set.json"


def document_record(text: str, qa: list[dict] | None = None) -> dict:
    return {"text": text, "sha256": hashlib.sha256(text.encode()).hexdigest(), "qa": qa or []}


def qa_pairs(record: dict) -> list[tuple[str, str]]:
    """A stored document's QA pairs as (question, answer)."""
    return [(pair["question"], pair["answer"]) for pair in record["qa"]]


def probe_set(model, tokenizer, data_dir: Path, size: int) -> list[QAItem]:
    """A small fixed set of real facts the base model answers right, chosen once per instance."""
    path = data_dir / PROBE_FILE
    if not path.is_file():
        candidates = all_real_facts()
        candidates = candidates[:: max(len(candidates) // (size * 6), 1)][: size * 6]
        known, _ = sort_known(model, tokenizer, candidates)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([asdict(item) for item in known[:size]], indent=1))
    return [QAItem.from_dict(item) for item in json.loads(path.read_text())]


class Learner:
    """Holds a model that follows the ledger and learns queued updates into it."""

    def __init__(
        self,
        settings: ServiceSettings,
        ledger: Ledger,
        model,
        tokenizer,
        stats: BackgroundStats,
        publish: Callable[[int], None] = lambda version: None,
        base: dict | None = None,
    ):
        """``base``: the base rows of a ``ModelState`` of the same checkpoint, shared (see ModelState)."""
        self.settings = settings
        self.ledger = ledger
        self.tokenizer = tokenizer
        self.stats = stats
        self.publish = publish
        self.state = ModelState(model, DeltaStore(settings.data_dir / "updates"), base)
        # The probe is asked of the base model, before any update is replayed.
        self.probe = probe_set(model, tokenizer, settings.data_dir, settings.probe_size) if settings.probe_size else []
        self._probe_scores: dict[int, float] = {}  # model version -> probe F1

    @property
    def model(self):
        return self.state.model

    def process(self, update_id: int) -> Update:
        """Learn every queued update up to ``update_id`` in id order; returns that update."""
        with self.ledger.learner_lock(self.settings.data_dir):
            while (update := self.ledger.next_queued(up_to=update_id)) is not None:
                self.learn(update)
        return self.ledger.get(update_id)

    def _probe_score(self) -> float | None:
        if not self.probe:
            return None
        if self.state.version not in self._probe_scores:
            self._probe_scores[self.state.version] = retention_f1(self.model, self.tokenizer, self.probe)
        return self._probe_scores[self.state.version]

    def learn(self, update: Update) -> Update:
        if update.status in FINISHED:
            return update
        started = time.perf_counter()
        self.ledger.mark_running(update.id)
        self.state.catch_up(self.ledger)
        old_rows, learned = {}, []
        try:
            documents = [Document(d["text"], qa_pairs(d)) for d in update.documents]
            # Updates queued before the option existed were learned from text, sentences and QA only.
            reading = update.options.get("reading", [])
            pieces = [document_pieces(document) for document in documents]
            device = next(self.model.parameters()).device
            rewritable = self._updates_about(documents) if self.settings.rewrite_same_subject else []
            # What earlier documents about the same names said and these leave standing is learned
            # again beside them, in the first batch: the rows it rewrites keep it.
            carried = [item for kept in self._carried(rewritable, documents) for item in document_items(kept, reading)]
            batches = []
            for piece in (piece for split in pieces for piece in split):
                items = document_items(piece, reading)
                items = items if batches else unique_items(items + carried)
                batches.append(encode(self.tokenizer, items).to(device))
            options = update.options
            config = SparseConfig(
                t=options["top_t"],
                lr=options["lr"],
                max_steps=options["steps"],
                written_factor=self.settings.written_factor,
                reserve=options.get("reserve", 1),  # updates queued before the option existed reserved none
                answer_start_weight=options.get("answer_start_weight", 1.0),  # and weighted every token alike
            )
            probe_before = self._probe_score()
            written = self.state.written(rewritable)
            finetuner = SparseMemoryFinetuner(self.model, self.stats, config, written=written)
            # One piece after another: each spares the slots of the pieces before it.
            for batch in batches:
                learned.append(finetuner.learn(batch))
            result = combined(learned)
            old_rows = {layer: (rows.slots, rows.old_rows) for layer, rows in result.rows.items()}
            deltas = {layer: (rows.slots, rows.delta) for layer, rows in result.rows.items()}
            # The probe asks the model every replica will serve: base rows + the stored delta.
            self._write_rows({layer: (slots, old_rows[layer][1] + delta) for layer, (slots, delta) in deltas.items()})
            probe_after = retention_f1(self.model, self.tokenizer, self.probe) if self.probe else None
            self._write_rows(old_rows)  # the model moves only by replaying the ledger
            self.state.store.save(update.id, deltas, {layer: rows.reserved for layer, rows in result.rows.items()})
            probe = None
            status = "applied"
            if probe_before is not None:
                drop = (probe_before - probe_after) / max(probe_before, 1e-9)
                probe = {"before": probe_before, "after": probe_after, "drop": drop, "questions": len(self.probe)}
                limit = self.settings.max_retention_drop
                if limit is not None and drop > limit:
                    status = "rejected"
            finished = self.ledger.finish(
                update.id,
                status,
                slots=[int(s) for rows in result.rows.values() for s in rows.slots],
                scores=[float(s) for rows in result.rows.values() for s in rows.scores],
                delta_norm=float(torch.sqrt(sum((rows.delta.double() ** 2).sum() for rows in result.rows.values()))),
                loss_before=result.loss_before,
                loss_after=result.loss_after,
                steps=result.steps,
                probe=probe,
                documents=[
                    document | {"pieces": [piece.text for piece in split]} if len(split) > 1 else document
                    for document, split in zip(update.documents, pieces, strict=True)
                ],
            )
        except Exception as error:  # recorded on the update; the model stays as the ledger says
            log.exception("update %s failed", update.id)
            for done in reversed(learned):  # pieces learned before the failure: nothing half-applied
                self._write_rows({layer: (rows.slots, rows.old_rows) for layer, rows in done.rows.items()})
            self._write_rows(old_rows)
            return self.ledger.finish(update.id, "failed", error=f"{type(error).__name__}: {error}")
        if finished.status == "applied" and finished.model_version == self.state.version + 1 and probe is not None:
            self._probe_scores[finished.model_version] = probe["after"]  # the next update's "before"
        self.state.catch_up(self.ledger)
        if finished.status == "applied":
            self.publish(finished.model_version)
        log.info("update %s %s in %.1f s", update.id, finished.status, time.perf_counter() - started)
        return finished

    def _updates_about(self, documents: list[Document]) -> list[int]:
        """Active updates whose documents are about a name these documents give."""
        later = " ".join(document.text for document in documents)
        return [
            update_id
            for update_id in self.state.active
            if any(shares_a_subject(d["text"], later) for d in self.ledger.get(update_id).documents)
        ]

    def _carried(self, update_ids: list[int], documents: list[Document]) -> list[Document]:
        """The earlier documents of ``update_ids``, each cut to the sentences ``documents`` leave
        standing (reading's ``carried_sentences``), with their QA pairs."""
        later = " ".join(document.text for document in documents)
        carried = []
        for update_id in update_ids:
            for earlier in self.ledger.get(update_id).documents:
                kept = carried_sentences(earlier["text"], later)
                if kept:
                    carried.append(Document(" ".join(kept), qa_pairs(earlier)))
        return carried

    @torch.no_grad()
    def _write_rows(self, rows_by_layer: dict) -> None:
        """Set value rows in place: layer -> (slots, rows)."""
        for layer, (slots, rows) in rows_by_layer.items():
            self.state.memories[layer].values[slots] = rows
