"""Benchmarks behind ``sparse-memory bench NAME``; each returns one JSON-able dict."""

from __future__ import annotations

import importlib

# name -> (module, function); modules are imported only when their benchmark runs.
BENCHMARKS = {
    "lookup": ("sparse_memory.bench.lookup", "bench_lookup"),
    "retrofit": ("sparse_memory.bench.retrofit", "bench_retrofit"),
    "addressing": ("sparse_memory.bench.retrofit", "bench_addressing"),
    "step": ("sparse_memory.bench.step", "bench_step"),
    "forgetting": ("sparse_memory.bench.forgetting", "bench_forgetting"),
    "interference": ("sparse_memory.bench.interference", "bench_interference"),
    "late": ("sparse_memory.bench.late", "bench_late"),
    "learn-speed": ("sparse_memory.bench.speed", "bench_learn_speed"),
    "probe": ("sparse_memory.bench.speed", "bench_probe"),
}

# `bench forgetting` saves a run's state after a fact at most this often: a full-finetuning save
# is the weights and both AdamW moments (about 9 GB with the default memory), and on a GPU a fact
# takes seconds. On a CPU a fact takes longer than this, so every fact is saved.
PROGRESS_EVERY_S = 60.0


def run_benchmark(name: str, **options) -> dict:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    module, function = BENCHMARKS[name]
    return getattr(importlib.import_module(module), function)(**options)
