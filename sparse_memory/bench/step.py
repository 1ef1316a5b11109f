"""One training step of each method on the same fact batch and model: seconds and peak memory.

Each method runs in its own fresh process so that its peak memory is its own (on a CPU the
peak resident set size only grows; on CUDA the allocator's peak is reset per process too).
"""

from __future__ import annotations

import multiprocessing
import queue
import resource
import statistics
import sys
import time

import torch

from sparse_memory.data.augment import fact_items
from sparse_memory.data.facts import make_facts
from sparse_memory.finetune import (
    METHOD_KINDS,
    REFERENCE_SPARSE,
    LearnResult,
    SparseConfig,
    SparseMemoryFinetuner,
    make_learner,
)
from sparse_memory.precision import resolve_precision
from sparse_memory.prepare import load_memory_model, prepare
from sparse_memory.settings import CoreSettings
from sparse_memory.slots import BackgroundStats
from sparse_memory.text import encode


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _start_over(learner, result: LearnResult) -> None:
    """Sparse memory finetuning spares the slots its earlier updates wrote or reserved, so the
    same batch learned again would rank other slots, and soon none: put the rows back and forget
    the marks, so that every timed call writes the same slots."""
    if isinstance(learner, SparseMemoryFinetuner):
        learner.undo(result)
        for marks in (*learner.written.values(), *learner.changed.values()):
            marks.zero_()


def _measure(method: str, directory: str, device: str, repeats: int, results) -> None:
    """``method``: one of METHOD_KINDS, or "smf_reference" (smf as ``REFERENCE_SPARSE`` computes a step)."""
    torch.manual_seed(0)
    model, tokenizer = load_memory_model(directory, device)
    stats = BackgroundStats.load(directory)
    batch = encode(tokenizer, fact_items(make_facts(1, seed=11)[0])).to(device)
    # How the reference learner computes a step (its stopping rule does not count here).
    reference = {name: REFERENCE_SPARSE[name] for name in ("precision", "template_prefix_once")}
    settings = reference if method == "smf_reference" else {}
    learner = make_learner(method.removesuffix("_reference"), model, stats, max_steps=1, target_loss=None, **settings)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    loaded_mb = _peak_rss_mb()
    _start_over(learner, learner.learn(batch))  # warm-up: allocator, optimizer state
    # A learn call also ranks slots (smf) and measures the loss after; the difference between
    # calls of two steps and of one step is the cost of one training step alone.
    one_step, two_steps = [], []
    for _ in range(repeats):
        for steps, times in ((1, one_step), (2, two_steps)):
            learner.config.max_steps = steps
            started = time.perf_counter()
            result = learner.learn(batch)
            times.append(time.perf_counter() - started)
            _start_over(learner, result)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else _peak_rss_mb()
    results.put(
        {
            "seconds_per_step": round(statistics.median(two_steps) - statistics.median(one_step), 3),
            "seconds_per_learn_call_of_one_step": round(statistics.median(one_step), 3),
            "peak_mb": round(peak, 1),
            "loaded_mb": round(loaded_mb, 1),
            "tokens": int(batch.attention_mask.sum()),
            "sequences": int(batch.input_ids.shape[0]),
        }
    )


def _result_of(process, results, method: str) -> dict:
    """What ``process`` puts on ``results``; an error, not a wait without end, if it dies first."""
    while True:
        try:
            return results.get(timeout=5)
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError(
                    f"the {method} step measurement failed (exit code {process.exitcode}): its traceback is above"
                ) from None


def bench_step(quick: bool = False) -> dict:
    settings = CoreSettings()
    where = prepare(settings)
    device = str(settings.torch_device())
    repeats = 2 if quick else 5
    context = multiprocessing.get_context("spawn")
    results = {}
    for method in (*METHOD_KINDS, "smf_reference"):
        results_queue = context.Queue()
        process = context.Process(target=_measure, args=(method, str(where.memory), device, repeats, results_queue))
        process.start()
        results[method] = _result_of(process, results_queue, method)
        process.join()
        print(f"{method}: {results[method]['seconds_per_step']:.2f} s/step, peak {results[method]['peak_mb']:.0f} MB")
    summary = {
        "device": device,
        "memory_unit": "MB (CUDA allocator peak)" if "cuda" in device else "MB (peak RSS)",
        "native_bf16": resolve_precision("auto", device) == "bf16",
        "precision": resolve_precision(SparseConfig.precision, device),
        # Below 1: the default step is faster than the reference learner's.
        "time_ratio_smf_reference": round(
            results["smf"]["seconds_per_step"] / results["smf_reference"]["seconds_per_step"], 3
        ),
    }
    for method in ("full", "lora"):
        summary[f"time_ratio_smf_{method}"] = round(
            results["smf"]["seconds_per_step"] / results[method]["seconds_per_step"], 3
        )
        summary[f"mem_ratio_smf_{method}"] = round(results["smf"]["peak_mb"] / results[method]["peak_mb"], 3)
    return {**summary, "methods": results}
