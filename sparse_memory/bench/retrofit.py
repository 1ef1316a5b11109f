"""What the retrofit costs and whether its addressing is semantic, on the prepared default model.

``bench retrofit``: exactness at insertion, held-out NLL after the warm-up, the NLL the memory's
output is worth, slot usage, generation speed against the base, and question/statement slot
overlap for the default memory beside a random-key memory at layer 15.
``bench addressing``: the overlap across memory layers and reads per head (how the default
was chosen).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from sparse_memory.data.corpus import general_batches
from sparse_memory.data.facts import make_facts
from sparse_memory.data.wikipedia import articles
from sparse_memory.evaluation import addressing_report, heldout_nll
from sparse_memory.generation import build_prompt
from sparse_memory.memory import MemoryConfig
from sparse_memory.modeling import retrofit
from sparse_memory.prepare import BACKGROUND_SEED, load_base, load_memory_model, prepare, warm_up_addressing
from sparse_memory.settings import CoreSettings
from sparse_memory.slots import BackgroundStats, compute_background_stats

OVERLAP_FACT_SEED = 7  # made-up people never used for anything else
OVERLAP_T = 500
GENERATION_PROMPTS = [
    "What is the capital of France?",
    "Explain photosynthesis in two sentences.",
    "Name three planets of the solar system.",
    "Who wrote Romeo and Juliet?",
]


@contextmanager
def memory_output_zeroed(model):
    """Temporarily zero every memory's values: the model then computes as if it had no memory."""
    saved = {layer: memory.values.detach().clone() for layer, memory in model.memory_layers().items()}
    try:
        for memory in model.memory_layers().values():
            memory.values.data.zero_()
        yield
    finally:
        for layer, memory in model.memory_layers().items():
            memory.values.data.copy_(saved[layer])


@torch.no_grad()
def max_logit_diff(model_a, model_b, tokenizer, texts: list[str]) -> float:
    device = next(model_a.parameters()).device
    batch = tokenizer(texts, return_tensors="pt", padding=True).to(device)
    a = model_a(**batch).logits
    b = model_b(**batch).logits
    mask = batch["attention_mask"].bool()
    return float((a - b).abs()[mask].max())


def generation_seconds(model, tokenizer, prompts: list[str], new_tokens: int) -> float:
    """Greedy decoding of exactly ``new_tokens`` per prompt, one prompt at a time (KV cache on)."""
    device = next(model.parameters()).device
    started = time.perf_counter()
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        model.generate(
            **ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return time.perf_counter() - started


def generation_speed_ratio(model, base, tokenizer, new_tokens: int, rounds: int) -> tuple[float, float, float]:
    """Tokens/s of the memory model over the base's, rounds interleaved so noise hits both alike."""
    prompts = [build_prompt(tokenizer, p, chat=True) for p in GENERATION_PROMPTS]
    generation_seconds(model, tokenizer, prompts[:1], 4)  # warm-up
    generation_seconds(base, tokenizer, prompts[:1], 4)
    model_s, base_s = [], []
    for _ in range(rounds):
        base_s.append(generation_seconds(base, tokenizer, prompts, new_tokens))
        model_s.append(generation_seconds(model, tokenizer, prompts, new_tokens))
    tokens = len(prompts) * new_tokens
    model_tps, base_tps = tokens / min(model_s), tokens / min(base_s)
    return model_tps / base_tps, model_tps, base_tps


def overlap_of(
    base, tokenizer, memory: MemoryConfig, warm: bool, n_background: int, n_facts: int, calibration_tokens: int
) -> dict:
    """Retrofit ``memory`` into ``base``, optionally warm it up, count a background, measure overlap."""
    torch.manual_seed(0)
    model = retrofit(base, memory)
    if warm:
        warm_up_addressing(model, tokenizer, calibration_tokens)
    stats = compute_background_stats(
        model, general_batches(tokenizer, n_background, seed=BACKGROUND_SEED), total=n_background
    )
    report = addressing_report(model, tokenizer, stats, make_facts(n_facts, seed=OVERLAP_FACT_SEED), t=OVERLAP_T)
    return {
        "overlap": round(report.question_overlap, 4),
        "cross_fact_overlap": round(report.cross_fact_overlap, 4),
        "slot_usage": round(stats.usage(memory.layers[0]), 4),
    }


def bench_retrofit(quick: bool = False) -> dict:
    settings = CoreSettings()
    device = settings.torch_device()
    where = prepare(settings)
    base, tokenizer = load_base(where.base, device)
    model, _ = load_memory_model(where.memory, device)
    stats = BackgroundStats.load(where.memory)
    memory = model.memory_config
    n_facts = 20 if quick else 60
    n_heldout = 40 if quick else 120

    probe_texts = [a.text for a in articles("heldout")[:8]]
    inserted = retrofit(base, memory)
    insertion_diff = max_logit_diff(base, inserted, tokenizer, probe_texts)
    warmed_diff = max_logit_diff(base, model, tokenizer, probe_texts)
    del inserted
    print(f"max |logit difference| from the base: at insertion {insertion_diff:.2e}, after warm-up {warmed_diff:.2e}")

    heldout = [a.text for a in articles("heldout")[:n_heldout]]
    base_nll = heldout_nll(base, tokenizer, heldout)
    model_nll = heldout_nll(model, tokenizer, heldout)
    with memory_output_zeroed(model):
        ablated_nll = heldout_nll(model, tokenizer, heldout)
    print(f"held-out Wikipedia NLL: base {base_nll:.4f}, memory model {model_nll:.4f}, memory zeroed {ablated_nll:.4f}")

    speed_ratio, model_tps, base_tps = generation_speed_ratio(
        model, base, tokenizer, 16 if quick else 48, 2 if quick else 3
    )
    print(f"greedy generation: memory model {model_tps:.1f} tok/s, base {base_tps:.1f} tok/s")

    layer = memory.layers[0]
    report = addressing_report(model, tokenizer, stats, make_facts(n_facts, seed=OVERLAP_FACT_SEED), t=OVERLAP_T)
    overlap = report.question_overlap
    print(f"question/statement slot overlap at name tokens (t={OVERLAP_T}): {overlap:.3f}")
    del model
    n_background = 20 if quick else 60
    random_shape = dict(memory.to_dict(), query_norm=False)
    random_15 = overlap_of(
        base, tokenizer, MemoryConfig.from_dict(dict(random_shape, layers=[15])), False, n_background, n_facts, 0
    )
    random_default = overlap_of(base, tokenizer, MemoryConfig.from_dict(random_shape), False, n_background, n_facts, 0)
    print(f"random keys: layer 15 {random_15['overlap']:.3f}, layer {layer} {random_default['overlap']:.3f}")

    return {
        "base": str(where.base),
        "memory": memory.to_dict(),
        "insertion_max_logit_diff": insertion_diff,
        "warmed_max_logit_diff": warmed_diff,
        "nll_base": round(base_nll, 5),
        "nll_memory": round(model_nll, 5),
        "nll_ratio": round(model_nll / base_nll, 5),
        "memory_ablation_nll_delta": round(ablated_nll - model_nll, 5),
        "slot_usage": round(stats.usage(layer), 4),
        "background_batches": stats.n_batches,
        "gen_tokens_per_s": round(model_tps, 2),
        "gen_tokens_per_s_base": round(base_tps, 2),
        "gen_speed_ratio": round(speed_ratio, 3),
        "question_slot_overlap": round(overlap, 4),
        "cross_fact_overlap": round(report.cross_fact_overlap, 4),
        "question_slot_overlap_random": random_15["overlap"],
        "question_slot_overlap_random_same_layer": random_default["overlap"],
        "overlap_facts": n_facts,
        "overlap_t": OVERLAP_T,
    }


def bench_addressing(quick: bool = False) -> dict:
    """Overlap for memories at several layers and reads per head, warmed up as the default is."""
    settings = CoreSettings()
    where = prepare(settings)
    base, tokenizer = load_base(where.base, settings.torch_device())
    # Every layer at the default 16 reads per head, and the reads per head at layers 3 and 15.
    shapes = [(1, 16), (3, 16), (3, 32)] if quick else [(layer, 16) for layer in (1, 2, 3, 4, 6, 8, 15)]
    if not quick:
        shapes += [(3, 8), (3, 32), (15, 32)]
    n_facts, n_background = (20, 20) if quick else (40, 60)
    rows = []
    for layer, k in shapes:
        memory = MemoryConfig.from_dict(dict(settings.memory().to_dict(), layers=[layer], k=k))
        measured = overlap_of(base, tokenizer, memory, True, n_background, n_facts, settings.calibration_tokens)
        row = {"layer": layer, "k": k, **measured}
        print(row)
        rows.append(row)
    return {"rows": rows, "overlap_t": OVERLAP_T, "facts": n_facts, "background_batches": n_background}
