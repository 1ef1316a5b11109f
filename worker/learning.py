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
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file

from model_store.ledger import FINISHED, Ledger, Update
from model_store.settings import ServiceSettings
from model_store.state import DeltaStore, ModelState
from sparse_memory.data.reading import (
    Document,
    chat_pair,
    corrected_sentences,
    document_items,
    document_pieces,
    split_in_two,
    standing_text,
)
from sparse_memory.data.real_facts import QAItem
from sparse_memory.evaluation import ReplyProbe, answer_slots, general_replies, probe_items
from sparse_memory.finetune import SparseConfig, SparseMemoryFinetuner, combined
from sparse_memory.slots import BackgroundStats, layer_of, load_tensors_and_metadata, reply_opening_slots
from sparse_memory.text import EncodedBatch, SequenceTooLong, encode

log = logging.getLogger(__name__)
PROBE_FILE = "probe_set.json"
ANSWER_SLOTS_FILE = "answer_slots.safetensors"


def document_record(text: str, qa: list[dict] | None = None) -> dict:
    return {"text": text, "sha256": hashlib.sha256(text.encode()).hexdigest(), "qa": qa or []}


def qa_pairs(record: dict) -> list[tuple[str, str]]:
    """A stored document's QA pairs as (question, answer)."""
    return [(pair["question"], pair["answer"]) for pair in record["qa"]]


def probe_set(model, tokenizer, data_dir: Path, size: int) -> ReplyProbe:
    """A small fixed set of real facts the base model answers right, with the base model's
    replies, chosen once per instance: ``model`` is the base model."""
    path = data_dir / PROBE_FILE
    stored = json.loads(path.read_text()) if path.is_file() else None
    if stored is not None and all("reply_ids" in fact for fact in stored):
        items = [QAItem.from_dict(fact) for fact in stored]
        return ReplyProbe.build(model, tokenizer, items, [fact["reply_ids"] for fact in stored])
    # A new instance, or a probe chosen before replies were kept: the base model answers now.
    items = [QAItem.from_dict(fact) for fact in stored] if stored is not None else probe_items(model, tokenizer, size)
    probe = ReplyProbe.build(model, tokenizer, items)
    path.parent.mkdir(parents=True, exist_ok=True)
    facts = [asdict(item) | {"reply_ids": reply} for item, reply in zip(probe.items, probe.replies, strict=True)]
    path.write_text(json.dumps(facts, indent=1))
    return probe


def spared_answer_slots(model, tokenizer, data_dir: Path, held_out: Sequence[QAItem]) -> dict[int, torch.Tensor]:
    """``evaluation.answer_slots`` of ``model`` (the base model) without the ``held_out`` facts:
    computed once per instance and held-out set (a pass over every real fact), then read back."""
    path = data_dir / ANSWER_SLOTS_FILE
    key = hashlib.sha256("\n".join(sorted(item.question for item in held_out)).encode()).hexdigest()
    if path.is_file():
        tensors, metadata = load_tensors_and_metadata(path)
        if metadata.get("held_out") == key:
            return {layer_of(name): spared.bool() for name, spared in tensors.items()}
    spared = answer_slots(model, tokenizer, held_out)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    tensors = {f"layer_{layer}.spared": mask.to(torch.uint8) for layer, mask in spared.items()}
    save_file(tensors, partial, {"held_out": key})
    partial.replace(path)
    return spared


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
        held_out: Sequence[QAItem] = (),
    ):
        """``base``: the base rows of a ``ModelState`` of the same checkpoint, shared (see ModelState).
        ``held_out``: real facts retention is measured on besides the probe's (a benchmark's), which
        the slots spared for real facts' answers (``spare_answers``) must not come from."""
        self.settings = settings
        self.ledger = ledger
        self.tokenizer = tokenizer
        self.stats = stats
        self.publish = publish
        self.state = ModelState(model, DeltaStore(settings.data_dir / "updates"), base)
        # The probe's replies are the base model's, taken before any update is replayed.
        self.probe = (
            probe_set(model, tokenizer, settings.data_dir, settings.probe_size) if settings.probe_size else None
        )
        # Slots where replies to general questions open (and, with spare_answers, where real facts'
        # answers are predicted): an update never writes them.
        device = next(model.parameters()).device
        self.never = reply_opening_slots(model, encode(tokenizer, general_replies()).to(device))
        if settings.spare_answers:
            measured = [*held_out, *(self.probe.items if self.probe else ())]
            answers = spared_answer_slots(model, tokenizer, settings.data_dir, measured)
            self.never = {layer: spared | answers[layer] for layer, spared in self.never.items()}
        self._probe_scores: dict[int, float] = {}  # model version -> share of probe answers kept

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
            self._probe_scores[self.state.version] = self.probe.score(self.model)
        return self._probe_scores[self.state.version]

    def learn(self, update: Update) -> Update:
        if update.status in FINISHED:
            return update
        started = time.perf_counter()
        seconds: dict[str, float] = {}  # where an update's time goes, for the log
        self.ledger.mark_running(update.id)
        try:
            self.state.catch_up(self.ledger)  # a delta missing or altered fails the update, with the reason
            documents = [Document(d["text"], qa_pairs(d)) for d in update.documents]
            corrections = self._corrections(documents) if self.settings.supersede_corrections else {}
            superseded = sorted({update_id for by_update in corrections.values() for update_id in by_update})
            carried = {
                index: [kept for kept_list in by_update.values() for kept in kept_list]
                for index, by_update in corrections.items()
            }
            # A correction is learned as one text with what the updates it corrects said and it
            # leaves standing, the correction first: the name gets one recital, without the old value.
            learned = [
                Document(
                    " ".join([document.text, *(kept.text for kept in carried.get(index, []))]),
                    document.qa + [pair for kept in carried.get(index, []) for pair in kept.qa],
                )
                for index, document in enumerate(documents)
            ]
            # Updates queued before the option existed were learned from text, sentences and QA only.
            reading = update.options.get("reading", [])
            fitted = [
                [fit for piece in document_pieces(document) for fit in self._fitted(piece, reading)]
                for document in learned
            ]
            pieces = [[piece for piece, _ in split] for split in fitted]
            device = next(self.model.parameters()).device
            batches = [batch.to(device) for split in fitted for _, batch in split]
            options = update.options
            config = SparseConfig(
                t=options["top_t"],
                lr=options["lr"],
                max_steps=options["steps"],
                written_factor=self.settings.written_factor,
                reserve=options.get("reserve", 1),  # updates queued before the option existed reserved none
                answer_start_weight=options.get("answer_start_weight", 1.0),  # and weighted every token alike
                batch_parts=options.get("batch_parts", 1),  # and stepped on the whole batch
                precision=self.settings.precision,
            )
            phase = time.perf_counter()
            probe_before = self._probe_score()
            seconds["probe_before"] = time.perf_counter() - phase
            # Learned on the model every replica will serve once the superseded updates are rolled back.
            with self.state.without(superseded):
                result, probe_after = self._learn_rows(batches, config, seconds)
            deltas = {layer: (rows.slots, rows.delta) for layer, rows in result.rows.items()}
            delta_sha256 = self.state.store.save(
                update.id, deltas, {layer: rows.reserved for layer, rows in result.rows.items()}
            )
            probe = None
            status = "applied"
            if probe_before is not None:
                drop = (probe_before - probe_after) / max(probe_before, 1e-9)
                probe = {"before": probe_before, "after": probe_after, "drop": drop, "questions": len(self.probe)}
                limit = self.settings.max_retention_drop
                if limit is not None and drop > limit:
                    status = "rejected"
            records = []
            for index, (document, split) in enumerate(zip(update.documents, pieces, strict=True)):
                record = dict(document)
                if len(split) > 1:
                    record["pieces"] = [piece.text for piece in split]
                if carried.get(index):
                    record["carried"] = [kept.text for kept in carried[index]]
                records.append(record)
            finished = self.ledger.finish(
                update.id,
                status,
                supersedes=superseded,
                slots=[int(s) for rows in result.rows.values() for s in rows.slots],
                scores=[float(s) for rows in result.rows.values() for s in rows.scores],
                delta_norm=float(torch.sqrt(sum((rows.delta.double() ** 2).sum() for rows in result.rows.values()))),
                loss_before=result.loss_before,
                loss_after=result.loss_after,
                steps=result.steps,
                probe=probe,
                documents=records,
                delta_sha256=delta_sha256,
            )
        except Exception as error:  # recorded on the update; the model stays as the ledger says
            log.exception("update %s failed", update.id)
            return self.ledger.finish(update.id, "failed", error=f"{type(error).__name__}: {error}")
        if finished.status == "applied" and finished.model_version == self.state.version + 1 and probe is not None:
            self._probe_scores[finished.model_version] = probe["after"]  # the next update's "before"
        self.state.catch_up(self.ledger)
        if finished.status == "applied":
            self.publish(finished.model_version)
        log.info(
            "update %s %s in %.1f s (%s)",
            update.id,
            finished.status,
            time.perf_counter() - started,
            ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()),
        )
        return finished

    def _fitted(self, piece: Document, reading: list[str]) -> list[tuple[Document, EncodedBatch]]:
        """``piece`` with its batch, or split in two until the sequences each part is read into
        fit in the tokenizer window (none is cut short). A QA pair is never split: it must fit
        on its own."""
        try:
            return [(piece, encode(self.tokenizer, document_items(piece, reading), truncate=False))]
        except SequenceTooLong:
            if piece.qa:
                try:
                    encode(self.tokenizer, [chat_pair(q, a) for q, a in piece.qa], truncate=False)
                except SequenceTooLong as error:
                    raise ValueError(f"a question-answer pair is too long to learn ({error}): shorten it") from error
            return [fit for half in split_in_two(piece) for fit in self._fitted(half, reading)]

    def _learn_rows(self, batches, config: SparseConfig, seconds: dict[str, float]):
        """Learn the batches one after another (each spares the slots of those before it); returns
        the combined result and the probe score of the model with its delta. The rows are as they
        were when it returns or raises: the model moves only by replaying the ledger. ``seconds``
        gets the time of the steps and of the probe after them."""
        phase = time.perf_counter()
        finetuner = SparseMemoryFinetuner(
            self.model, self.stats, config, written=self.state.written(), never=self.never
        )
        learned = []
        try:
            for batch in batches:
                learned.append(finetuner.learn(batch))
            result = combined(learned)
            seconds["learn"] = time.perf_counter() - phase
            phase = time.perf_counter()
            # The probe asks the model every replica will serve: the rows before + the stored delta.
            self._write_rows({layer: (rows.slots, rows.old_rows + rows.delta) for layer, rows in result.rows.items()})
            probe_after = self.probe.score(self.model) if self.probe else None
            seconds["probe_after"] = time.perf_counter() - phase
            return result, probe_after
        finally:
            for done in reversed(learned):
                self._write_rows({layer: (rows.slots, rows.old_rows) for layer, rows in done.rows.items()})

    def _corrections(self, documents: list[Document]) -> dict[int, dict[int, list[Document]]]:
        """Per document (by index), the active updates it corrects, each with what its documents
        said (with what they carried from updates they superseded) and the correction leaves
        standing. An update is superseded by the first document that corrects it."""
        corrections: dict[int, dict[int, list[Document]]] = {}
        earlier = {  # each active update's documents, with what they carried, read once
            update_id: [
                Document(" ".join([d["text"], *d.get("carried", [])]), qa_pairs(d))
                for d in self.ledger.get(update_id).documents
            ]
            for update_id in self.state.active
        }
        for index, document in enumerate(documents):
            for update_id, said in list(earlier.items()):
                if any(corrected_sentences(e.text, document.text) for e in said):
                    del earlier[update_id]  # superseded by the first document that corrects it
                    standing = [kept for e in said if (kept := standing_text(e, document.text))]
                    corrections.setdefault(index, {})[update_id] = standing
        return corrections

    @torch.no_grad()
    def _write_rows(self, rows_by_layer: dict) -> None:
        """Set value rows in place: layer -> (slots, rows)."""
        for layer, (slots, rows) in rows_by_layer.items():
            self.state.memories[layer].values[slots] = rows
