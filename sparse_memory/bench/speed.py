"""``bench learn-speed``: how long learning one fact takes, and how well it is learned, with the
reference learner and with the default one, in the same run.

The first ``facts`` facts of `bench forgetting`'s stream are each learned alone from the fresh
memory (as `bench late --after 0` does) and undone, by both learners in turn, fact by fact, so
that both see the same load on the machine. A fact's seconds are what a service update spends
on it: the learn call (ranking the slots, the steps, the loss after) and the retention probe
asked after it: the reference generates the probe's replies, as the service did, the default
checks them in one forward pass (``evaluation.ReplyProbe``), as the service does. Its F1 is on
the fact's held-out questions right after its own steps.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from functools import partial

import torch
from tqdm.auto import tqdm

from sparse_memory.bench.forgetting import FACT_SEED, learned_scores
from sparse_memory.data.augment import fact_items
from sparse_memory.data.facts import make_facts
from sparse_memory.evaluation import ReplyProbe, probe_items, retention_f1
from sparse_memory.finetune import REFERENCE_SPARSE, SparseConfig, SparseMemoryFinetuner
from sparse_memory.precision import cpu_has_native_bf16, resolve_precision
from sparse_memory.prepare import load_prepared
from sparse_memory.text import encode

PROBE_SIZE = 16  # the service's default retention probe


def bench_learn_speed(
    quick: bool = False, facts: int | None = None, lr: float | None = None, max_steps: int | None = None
) -> dict:
    """``lr``, ``max_steps``: the default learner's, to try others (the reference keeps its own)."""
    n_facts = facts or (3 if quick else 10)
    if n_facts < 1:
        raise ValueError(f"--facts must be at least 1, got {n_facts}")
    model, tokenizer, stats = load_prepared()
    device = next(model.parameters()).device
    items = probe_items(model, tokenizer, PROBE_SIZE)
    probes = {
        "reference": partial(retention_f1, model, tokenizer, items),
        "default": partial(ReplyProbe.build(model, tokenizer, items).score, model),
    }
    asked = {"lr": lr, "max_steps": max_steps}
    default = SparseConfig(**{name: value for name, value in asked.items() if value is not None})
    configs = {"reference": SparseConfig(**REFERENCE_SPARSE), "default": default}
    runs = {name: [] for name in configs}
    for fact in tqdm(make_facts(n_facts, seed=FACT_SEED), desc="learn-speed", unit="fact"):
        batch = encode(tokenizer, fact_items(fact))
        for name, config in configs.items():
            runs[name].append(_learn_alone(model, tokenizer, stats, config, batch, fact, probes[name]))
            tqdm.write(f"{name} {fact.answer!r}: {runs[name][-1]}")
    results = {name: _summary(rows, configs[name], device) for name, rows in runs.items()}
    reference, default = results["reference"], results["default"]
    return {
        "facts": n_facts,
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "precision_ref": reference["precision"],
        "precision": default["precision"],
        "learners": results,
        "seconds_per_fact_p50_ref": reference["seconds_per_fact_p50"],
        "seconds_per_fact_p50": default["seconds_per_fact_p50"],
        "speedup": round(reference["seconds_per_fact_p50"] / default["seconds_per_fact_p50"], 2),
        "f1_ref": reference["f1"],
        "f1": default["f1"],
        "f1_delta": round(default["f1"] - reference["f1"], 3),
    }


def _learn_alone(model, tokenizer, stats, config: SparseConfig, batch, fact, probe) -> dict:
    """Learn one fact from the fresh memory with ``config``, ``probe()`` and score it, then undo it."""
    learner = SparseMemoryFinetuner(model, stats, config)
    result = learner.learn(batch)
    started = time.perf_counter()
    probe()
    probe_seconds = time.perf_counter() - started
    f1 = learned_scores(model, tokenizer, [fact])["f1"]
    learner.undo(result)
    return {
        "seconds": round(result.seconds + probe_seconds, 2),
        "learn_seconds": round(result.seconds, 2),
        "ranking_seconds": round(result.ranking_seconds, 2),
        "probe_seconds": round(probe_seconds, 2),
        "steps": result.steps,
        "f1": round(f1, 3),
    }


def _summary(rows: list[dict], config: SparseConfig, device) -> dict:
    seconds = [row["seconds"] for row in rows]
    steps = sum(row["steps"] for row in rows)
    step_seconds = sum(row["learn_seconds"] - row["ranking_seconds"] for row in rows)
    return {
        "precision": resolve_precision(config.precision, device),
        "lr": config.lr,
        "steps_after_answered": config.steps_after_answered,
        "seconds_per_fact_p50": round(statistics.median(seconds), 2),
        "seconds_per_fact_mean": round(statistics.fmean(seconds), 2),
        "steps_per_fact": round(steps / len(rows), 1),
        # Each learn call also computes the loss after its steps: one forward pass, counted here.
        "seconds_per_step": round(step_seconds / max(steps, 1), 3),
        "ranking_seconds_mean": round(statistics.fmean(row["ranking_seconds"] for row in rows), 2),
        "probe_seconds_mean": round(statistics.fmean(row["probe_seconds"] for row in rows), 2),
        "f1": round(statistics.fmean(row["f1"] for row in rows), 3),
        "per_fact": rows,
    }


# A learner that forgets on purpose: a higher rate than the service's, and the slots where replies
# open left writable, so that the probe has drops to tell apart.
PROBE_AGREEMENT_LEARNER = {
    "t": 2000,
    "lr": 6e4,
    "max_steps": 16,
    "target_loss": None,
    "steps_after_answered": None,
    "answer_start_weight": 10.0,
}


def bench_probe(quick: bool = False, documents: int | None = None) -> dict:
    """Whether the retention probe checked in one forward pass (``ReplyProbe``) says what
    generating the replies says: the first ``documents`` documents of `bench documents`' stream
    learned in a row by a learner that forgets, and after each, the share of the probe's facts
    each way, on a probe of about 30 real facts."""
    from sparse_memory.data.documents import DOCUMENT_SEED, user_documents
    from sparse_memory.data.reading import Document, document_items, document_pieces

    n_documents = documents or (3 if quick else 12)
    model, tokenizer, stats = load_prepared()
    probe = ReplyProbe.build(model, tokenizer, probe_items(model, tokenizer, 64))
    if not probe:
        raise ValueError("the model answers none of the probe's real facts right: nothing to compare")
    learner = SparseMemoryFinetuner(model, stats, SparseConfig(**PROBE_AGREEMENT_LEARNER))
    states = []
    for index, document in enumerate(tqdm([None, *user_documents(n_documents, seed=DOCUMENT_SEED)], desc="probe")):
        if document is not None:
            for piece in document_pieces(Document(document.text)):
                learner.learn(encode(tokenizer, document_items(piece), truncate=False))
        started = time.perf_counter()
        one_pass = probe.score(model)
        one_pass_seconds = time.perf_counter() - started
        started = time.perf_counter()
        generated = retention_f1(model, tokenizer, probe.items)
        states.append(
            {
                "documents_learned": index,
                "one_pass": round(one_pass, 4),
                "generated": round(generated, 4),
                "one_pass_seconds": round(one_pass_seconds, 2),
                "generated_seconds": round(time.perf_counter() - started, 2),
            }
        )
        tqdm.write(json.dumps(states[-1]))
    return {
        "probe_facts": len(probe),
        "documents": n_documents,
        "learner": PROBE_AGREEMENT_LEARNER,
        "states": states,
        "states_that_agree": sum(state["one_pass"] == state["generated"] for state in states),
        "max_difference": max(abs(state["one_pass"] - state["generated"]) for state in states),
        "one_pass_seconds_p50": statistics.median(state["one_pass_seconds"] for state in states),
        "generated_seconds_p50": statistics.median(state["generated_seconds"] for state in states),
    }
