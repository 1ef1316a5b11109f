"""``bench interference``: why facts learned one after another overwrite each other, and how
much sparing the slots earlier facts wrote helps; forward passes only, no training.

Each made-up fact's training batch is ranked in sequence (TF-IDF top-t, slots earlier facts
wrote or reserved counting as written), then each fact's held-out questions are read at the
person's name: how many of those reads land on the fact's own slots, and how many other facts'
slots they hit.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from sparse_memory.bench.forgetting import FACT_SEED
from sparse_memory.data.facts import make_facts
from sparse_memory.evaluation import interference_report
from sparse_memory.finetune import SparseConfig
from sparse_memory.prepare import load_prepared

# (written_factor, reserve): 1 is the paper's ranking, 0 never chooses a written slot again;
# reserve 1 spares only the written slots, the default also its next best-ranked ones.
SETTINGS = ((1.0, 1), (0.3, 1), (0.0, 1), (SparseConfig.written_factor, SparseConfig.reserve))


def bench_interference(quick: bool = False, facts: int | None = None) -> dict:
    model, tokenizer, stats = load_prepared()
    n_facts = facts or (20 if quick else 100)
    fact_list = make_facts(n_facts, seed=FACT_SEED)  # the facts of `bench forgetting`
    rows = []
    for factor, reserve in dict.fromkeys(SETTINGS):  # the default may be one of the others
        started = time.perf_counter()
        report = interference_report(model, tokenizer, stats, fact_list, SparseConfig.t, factor, reserve)
        seconds = round(time.perf_counter() - started, 1)
        rows.append({"written_factor": factor, "reserve": reserve, **asdict(report), "seconds": seconds})
        print(rows[-1])
    return {"facts": n_facts, "t": SparseConfig.t, "n_slots": model.memory_config.n_slots, "rows": rows}
