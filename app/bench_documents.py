"""``sparse-memory bench documents``: documents as users write them, learned one after another
through the service's own learn step, then asked about in other words.

Each document of ``user_documents`` (notes, bios, news paragraphs, announcements, later updates
and corrections about the same entities) becomes an update in a ledger of the run's own and is
learned by the worker's ``Learner``, the code behind ``POST /learn``. Then every fact, as it stands
after the whole stream (a corrected fact with its newer value), is asked through the chat template
with its held-out questions, answered as ``POST /generate`` answers by default. Reports the share
of replies that contain the answer, SQuAD F1, what corrections did, retention on known real facts,
held-out NLL and seconds per document. The run's ledger and deltas stay in ``var/bench``, so a
stopped run goes on from the last document learned.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from app.schemas import GenerateRequest
from model_store.checkpoint import load_checkpoint
from model_store.ledger import FINISHED, Ledger, UnknownUpdate
from model_store.settings import ServiceSettings
from sparse_memory.bench.forgetting import retention_set
from sparse_memory.data.documents import (
    DOCUMENT_SEED,
    UserDocument,
    corrected_facts,
    correction_stream,
    current_facts,
    user_documents,
)
from sparse_memory.data.reading import READING_FORMS
from sparse_memory.data.wikipedia import articles
from sparse_memory.evaluation import ask, heldout_nll, retention_f1, retention_replies
from sparse_memory.precision import resolve_precision
from sparse_memory.prepare import prepare
from sparse_memory.scoring import answer_scores
from worker.learning import Learner, document_record

REPLY_TOKENS = GenerateRequest.model_fields["max_new_tokens"].default  # as /generate answers
SAMPLE_ANSWERS = 24


def run_name(n_documents: int, qa: bool, reading: list[str], options: dict, supersede_corrections: bool) -> str:
    forms = "+".join(reading) if reading else "plain"
    changed = "".join(
        f"_{key}{value:g}" if isinstance(value, int | float) else f"_{key}_{value}"
        for key, value in sorted(options.items())
    )
    supersede = "" if supersede_corrections else "_no_supersede"
    return f"docs{n_documents}_{'qa' if qa else 'noqa'}_{forms}{changed}{supersede}"


def bench_documents(
    quick: bool = False,
    documents: int | None = None,
    qa: bool = False,
    reading: list[str] | None = None,
    lr: float | None = None,
    max_steps: int | None = None,
    top_t: int | None = None,
    reserve: int | None = None,
    answer_start_weight: float | None = None,
    batch_parts: int | None = None,
    seed: int | None = None,
    corrections: bool = False,
    spare_answers: bool = False,
    results_dir: Path = Path("benchmarks/results"),
) -> dict:
    """``corrections``: learn only the documents of the stream a correction touches.
    ``spare_answers``: the service's setting of that name on (its default otherwise)."""
    base_settings = ServiceSettings()
    if spare_answers:
        base_settings = base_settings.model_copy(update={"spare_answers": True})
    n_documents = documents or (8 if quick else 50)
    stream_seed = DOCUMENT_SEED if seed is None else seed
    stream = user_documents(n_documents, seed=stream_seed)
    if corrections:
        stream = correction_stream(stream)
        if not stream:
            raise ValueError(f"the stream of {n_documents} documents (seed {stream_seed}) holds no correction")
    options = base_settings.learning_defaults()
    if reading is not None:
        unknown = sorted(set(reading) - set(READING_FORMS))
        if unknown:
            raise ValueError(f"unknown reading forms {unknown}; choose from {', '.join(READING_FORMS)}")
        options["reading"] = reading
    asked = {
        "lr": lr,
        "steps": max_steps,
        "top_t": top_t,
        "reserve": reserve,
        "answer_start_weight": answer_start_weight,
        "batch_parts": batch_parts,
    }
    given = {key: value for key, value in asked.items() if value is not None}
    options |= given
    name = run_name(n_documents, qa, options["reading"], given, base_settings.supersede_corrections)
    name += ("_corrections" if corrections else "") + ("" if seed is None else f"_seed{seed}")
    name += "_spare_answers" if base_settings.spare_answers else ""
    precision = resolve_precision(base_settings.precision, base_settings.torch_device())
    name += "" if precision == "fp32" else f"_{precision}"  # bf16 learns otherwise: its runs stand apart
    run_dir = base_settings.data_dir.parent / "bench" / "documents" / name
    settings = base_settings.model_copy(update={"data_dir": run_dir, "database_url": None})
    prepare(settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, model, tokenizer, stats = load_checkpoint(settings, log=lambda message: None)
    retention = retention_set(model, tokenizer, checkpoint, size=40 if quick else 150)
    wiki = [a.text for a in articles("heldout")[: 20 if quick else 100]]
    before = _baseline(model, tokenizer, retention, wiki, results_dir / "documents_before.json", quick)

    ledger = Ledger(settings.ledger_url())
    ledger.migrate()
    # Each update asks the service's retention probe, as in the service: which update costs
    # retention shows in per_document; the benchmark's own retention set is asked once, at the end.
    learner = Learner(settings, ledger, model, tokenizer, stats, held_out=retention)
    per_document = _learn_stream(learner, ledger, stream, qa, options, run_dir / "progress.json")
    seconds = [document["seconds"] for document in per_document]
    asked_right_after = [contains for document in per_document for contains in document["right_after"]]
    learner.state.catch_up(ledger)
    result = {
        "documents": len(stream),
        "stream": n_documents,
        "corrections_only": corrections,
        "seed": stream_seed,
        "qa_supplied": qa,
        "options": options,
        "supersede_corrections": settings.supersede_corrections,
        "spare_answers": settings.spare_answers,
        "precision": precision,
        **_answers(learner.model, tokenizer, stream),
        "answered_right_after": round(sum(asked_right_after) / max(len(asked_right_after), 1), 4),
        **_retention(learner.model, tokenizer, retention, wiki, before),
        "seconds_per_document": round(sum(seconds) / len(seconds), 1),
        "seconds_per_document_max": round(max(seconds), 1),
        "statuses": _statuses(ledger, len(stream)),
        "per_document": [
            {key: value for key, value in document.items() if key != "right_after"}
            | {"answered_right_after": _share([{"contains": c} for c in document["right_after"]])}
            for document in per_document
        ],
        "memory_slots": model.memory_config.n_slots,
        "memory_gate": model.memory_config.gate,
    }
    if not quick:
        (results_dir / "documents").mkdir(parents=True, exist_ok=True)
        (results_dir / "documents" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _baseline(model, tokenizer, retention, wiki, path: Path, quick: bool) -> dict:
    """Retention F1 and NLL of the unchanged model: the same for every run, so measured once."""
    key = f"retention{len(retention)}_wiki{len(wiki)}"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    if key not in cached:
        cached[key] = {
            "retention_f1": retention_f1(model, tokenizer, retention),
            "nll": heldout_nll(model, tokenizer, wiki),
        }
        if not quick:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cached, indent=2) + "\n")
    return cached[key]


def _learn_stream(
    learner: Learner, ledger: Ledger, stream: list[UserDocument], qa: bool, options: dict, log: Path
) -> list[dict]:
    """Each document as its own update, in order; update i + 1 is document i. Documents learned
    by an earlier, stopped run of the same command are not learned again. Returns per document:
    its status, steps, seconds, retention probe drop, and which of its questions were answered
    right after it (what the stream's end adds to that is interference)."""
    done = json.loads(log.read_text()).get("documents", []) if log.is_file() else []
    for document in tqdm(stream, desc="learn", unit="doc"):
        update_id = document.index + 1
        try:
            update = ledger.get(update_id)
        except UnknownUpdate:
            pairs = [{"question": q, "answer": a} for q, a in document.qa] if qa else None
            update = ledger.create_update([document_record(document.text, pairs)], options)
        if update.id != update_id or update.documents[0]["text"] != document.text:
            raise RuntimeError(f"{log.parent} holds another run's ledger: remove it and run again")
        if update.status in FINISHED:
            continue
        started = time.perf_counter()
        finished = learner.process(update_id)
        seconds = time.perf_counter() - started
        rows = _ask_all(learner.model, learner.tokenizer, [(document, fact) for fact in document.facts])
        done = done[: document.index] + [
            {
                "index": document.index,
                "kind": document.kind,
                "status": finished.status,
                "steps": finished.steps,
                "seconds": round(seconds, 1),
                "probe_drop": None if finished.probe is None else round(finished.probe["drop"], 4),
                "right_after": [row["contains"] for row in rows],
            }
        ]
        log.write_text(json.dumps({"documents": done}))
        tqdm.write(
            f"document {document.index} ({document.kind}): {finished.status}, "
            f"{finished.steps} steps, {seconds:.0f} s, probe drop {done[-1]['probe_drop']}"
        )
    return done


def _ask_all(model, tokenizer, pairs) -> list[dict]:
    rows = []
    for document, fact in pairs:
        for question in fact.questions:
            rows.append(
                {"document": document.index, "relation": fact.relation, "question": question, "answer": fact.answer}
            )
    replies = ask(model, tokenizer, [row["question"] for row in rows], max_new_tokens=REPLY_TOKENS)
    for row, reply in zip(rows, replies, strict=True):
        scores = answer_scores(reply, (row["answer"],), row["question"])
        row |= {"reply": reply, "contains": scores["contains"], "f1": scores["f1"]}
    return rows


def _share(rows: list[dict], key: str = "contains") -> float | None:
    return round(sum(row[key] for row in rows) / len(rows), 4) if rows else None


def _answers(model, tokenizer, stream: list[UserDocument]) -> dict:
    rows = _ask_all(model, tokenizer, current_facts(stream))
    corrected = {(d.index, f.relation) for d, f in corrected_facts(stream)}
    superseded = {(earlier, relation) for d in stream for earlier, relation in d.supersedes}
    newer = [row for row in rows if (row["document"], row["relation"]) in corrected]
    # The facts a corrected document stated that no later document changed.
    kept = [
        row
        for row in rows
        if row["document"] in {e for e, _ in superseded} and (row["document"], row["relation"]) not in superseded
    ]
    old_values = {(d.index, f.relation): f.answer for d in stream for f in d.facts}
    stale = []
    for row in newer:
        document = stream[row["document"]]
        for earlier, relation in document.supersedes:
            if relation == row["relation"]:
                stale.append(
                    answer_scores(row["reply"], (old_values[(earlier, relation)],), row["question"])["contains"]
                )
    return {
        "answered": _share(rows),
        "f1": _share(rows, "f1"),
        "questions": len(rows),
        "corrections_answered_newer": _share(newer),
        "corrections_answered_older": round(sum(stale) / len(stale), 4) if stale else None,
        "corrections": len(newer),
        "corrected_documents_other_facts_answered": _share(kept),
        "answered_by_document": {
            index: _share([row for row in rows if row["document"] == index])
            for index in sorted({row["document"] for row in rows})
        },
        "answered_by_relation": {
            relation: _share([row for row in rows if row["relation"] == relation])
            for relation in sorted({row["relation"] for row in rows})
        },
        "sample": rows[:: max(len(rows) // SAMPLE_ANSWERS, 1)][:SAMPLE_ANSWERS],
    }


def _retention(model, tokenizer, retention, wiki, before: dict) -> dict:
    replies = retention_replies(model, tokenizer, retention)
    after = sum(f1 for _, f1 in replies) / max(len(replies), 1)
    nll = heldout_nll(model, tokenizer, wiki)
    # The known facts no longer answered right, and what replaced them: a learned name in
    # every reply points at rows the chat template reads.
    lost = [
        {"question": item.question, "answer": item.answers[0], "reply": reply, "f1": round(f1, 3)}
        for item, (reply, f1) in zip(retention, replies, strict=True)
        if f1 < 1.0
    ]
    return {
        "retention_f1_before": before["retention_f1"],
        "retention_f1_after": after,
        "retention_lost_sample": lost[:SAMPLE_ANSWERS],
        "retention_drop": round((before["retention_f1"] - after) / max(before["retention_f1"], 1e-9), 4),
        "nll_before": before["nll"],
        "nll_after": nll,
        "nll_rise": round((nll - before["nll"]) / before["nll"], 5),
    }


def _statuses(ledger: Ledger, count: int) -> dict[str, int]:
    statuses: dict[str, int] = {}
    for update_id in range(1, count + 1):
        status = ledger.get(update_id).status
        statuses[status] = statuses.get(status, 0) + 1
    return statuses
