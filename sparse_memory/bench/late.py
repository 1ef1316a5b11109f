"""``bench late``: how well facts late in `bench forgetting`'s stream are learned, in minutes
instead of the hours a 100-fact run takes on a CPU.

Sparing the slots earlier facts wrote or reserved leaves later facts less specific slots, and
their F1 right after their own steps fades along the stream. The slots the first ``after``
facts would spare are found by ranking alone (``SparseMemoryFinetuner.spare``: the memory's
reads do not depend on its values), then each of the next ``facts`` facts is learned alone from
that state, measured on its held-out questions, and undone. Against a full run this leaves out
only the earlier facts' learned rows: on the default memory, facts 61-70 scored 0.31 here and
0.29 in the 100-fact default run.
"""

from __future__ import annotations

import time

from tqdm.auto import tqdm

from sparse_memory.bench.forgetting import FACT_SEED, MethodSpec, at_learning_rate, learned_scores, method_specs
from sparse_memory.data.facts import Fact, make_facts
from sparse_memory.prepare import load_prepared
from sparse_memory.slots import BackgroundStats


def bench_late(
    quick: bool = False,
    after: int | None = None,
    facts: int | None = None,
    methods: list[str] | None = None,
    max_steps: int = 30,
    lr: float | None = None,
) -> dict:
    specs = method_specs(methods or ["smf", "smf_reserve1"])
    if lr is not None:
        specs = [at_learning_rate(spec, lr) for spec in specs]
    dense = [spec.name for spec in specs if spec.kind != "smf"]
    if dense:
        raise ValueError(f"bench late compares sparse memory finetuning settings (spared slots); drop {dense}")
    after = (10 if quick else 60) if after is None else after
    n_facts = facts or (3 if quick else 10)
    if after < 0:
        raise ValueError(f"--after must be 0 or more facts, got {after}")
    model, tokenizer, stats = load_prepared()
    stream = make_facts(after + n_facts, seed=FACT_SEED)  # the facts of `bench forgetting`
    results = {spec.name: learn_late(spec, model, tokenizer, stats, stream, after, max_steps) for spec in specs}
    return {
        "after": after,
        "facts": n_facts,
        "memory_slots": model.memory_config.n_slots,
        "methods": results,
    }


def learn_late(
    spec: MethodSpec, model, tokenizer, stats: BackgroundStats, stream: list[Fact], after: int, max_steps: int
) -> dict:
    """Spare what ``stream[:after]`` would, then learn each later fact alone from there: its F1
    right after its own steps. The model is left as it was."""
    learner = spec.learner(model, stats, max_steps)
    for fact in tqdm(stream[:after], desc=f"rank {spec.name}", unit="fact"):
        learner.spare(spec.batch(tokenizer, fact))
    spared = {layer: mask.clone() for layer, mask in learner.written.items()}
    own_f1, steps, started = [], 0, time.perf_counter()
    for fact in tqdm(stream[after:], desc=f"learn {spec.name}", unit="fact"):
        result = learner.learn(spec.batch(tokenizer, fact))
        own_f1.append(learned_scores(model, tokenizer, [fact])["f1"])
        steps += result.steps
        learner.undo(result)
        learner.written = {layer: mask.clone() for layer, mask in spared.items()}
    scores = {
        "learned_f1_own": sum(own_f1) / len(own_f1),
        "learned_f1_own_per_fact": [round(f1, 3) for f1 in own_f1],
        "spared_slots": int(sum(mask.sum() for mask in spared.values())),
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"{spec.name}: {scores}")
    return scores
