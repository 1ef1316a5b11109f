"""Warm-up of a retrofitted memory's addressing, with the base model frozen.

A memory with random keys reads different slots for a question and a statement about the
same person: random sub-keys cut the query space at arbitrary places, and the shared
offset of all hidden states decides much of the top-k. The warm-up fits the addressing to
the hidden states the memory actually sees on general text (Wikipedia and chat): each query
dimension is centred and scaled by its statistics there, so the offset shared by all tokens
no longer decides the top-k and what varies between tokens does. (Sub-keys at k-means
centroids of the queries were also tried: no measurable gain, lower slot usage.)

No gradient step is taken and the values are not touched: a zero-initialised memory stays
an exact no-op, so the base model's knowledge is untouched by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tqdm.auto import tqdm

from sparse_memory.memory import ProductKeyMemory
from sparse_memory.text import EncodedBatch


@torch.no_grad()
def capture_memory_inputs(model, batches: Iterable[EncodedBatch], max_tokens: int) -> dict[int, torch.Tensor]:
    """Normalised memory inputs at non-padding positions: layer -> (tokens, hidden)."""
    memories = model.memory_layers()
    captured: dict[int, list[torch.Tensor]] = {layer: [] for layer in memories}
    current_mask: list[torch.Tensor] = []

    def keep(layer: int, memory: ProductKeyMemory):
        def hook(_module, inputs):
            hidden = memory.normalise_input(inputs[0])
            captured[layer].append(hidden[current_mask[0].bool()].cpu())

        return hook

    handles = [memory.register_forward_pre_hook(keep(layer, memory)) for layer, memory in memories.items()]
    device = next(model.parameters()).device
    n_tokens = 0
    progress = tqdm(total=max_tokens, desc="capture memory inputs", unit="tok")
    try:
        for batch in batches:
            batch = batch.to(device)
            current_mask[:] = [batch.attention_mask]
            model.memory_accesses(batch.input_ids, batch.attention_mask)
            added = int(batch.attention_mask.sum())
            n_tokens += added
            progress.update(added)
            if n_tokens >= max_tokens:
                break
    finally:
        progress.close()
        for handle in handles:
            handle.remove()
    return {layer: torch.cat(chunks)[:max_tokens] for layer, chunks in captured.items()}


@torch.no_grad()
def calibrate_addressing(memory: ProductKeyMemory, inputs: torch.Tensor) -> None:
    """Set the query standardisation from captured (normalised) memory inputs."""
    if inputs.shape[0] < 2:
        raise ValueError(f"calibration needs at least 2 tokens, got {inputs.shape[0]}")
    raw = memory.query_proj(inputs.to(memory.values.device))
    memory.query_mean.copy_(raw.mean(0))
    memory.query_std.copy_(raw.std(0).clamp_min(1e-6))
