"""Which floating-point path a sparse learn step's decoder takes.

A learn step trains value rows of the memory layer and runs the frozen decoder forward and
backward through the layers above it every step. Those layers may run under bf16 autocast:
where the hardware computes bf16 natively (CUDA GPUs with bf16, CPUs with AVX-512 BF16 or AMX)
that is faster; where it emulates bf16 (AVX2 only) it is slower than fp32. The memory layer and
everything below it stay fp32, so which slots a token reads never changes, and the value rows,
their gradients and their update are fp32 always; so do the final norm and the logits.

``precision``: "fp32" (the reference), "bf16", or "auto" (bf16 where the hardware has it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16", "auto")


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (Linux: the avx512_bf16 or amx_bf16 flag)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """ "fp32" or "bf16": what ``precision`` means on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


@contextlib.contextmanager
def above_memory_in(model, precision: str) -> Iterator[None]:
    """Within the block, the decoder layers above the last memory layer of ``model`` run under
    autocast to bf16 when ``precision`` resolves to bf16; nothing changes otherwise. The final
    norm and the vocabulary projection stay fp32: logits rounded to bf16 (steps of 0.125 at 16)
    blur the loss's gradient and the check that each trained answer comes out right."""
    device = next(model.parameters()).device
    if resolve_precision(precision, device) == "fp32":
        yield
        return
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    top_memory = max(model.memory_layers())
    modules = list(model.model.layers[top_memory + 1 :])
    # Autocast casts a weight that needs no gradient again at every call (it caches only the casts
    # of trainable leaves), and a learn step calls each layer twice per step: the frozen linear
    # weights are cast once for the block instead, to the values autocast would give them. Norm
    # weights stay fp32, as autocast leaves them.
    frozen = [
        linear.weight
        for module in modules
        for linear in module.modules()
        if isinstance(linear, torch.nn.Linear) and not linear.weight.requires_grad
    ]
    fp32_weights = [weight.data for weight in frozen]
    for module in modules:
        module.forward = autocast(module.forward)  # an instance attribute: the class's forward stays
    try:
        for weight in frozen:
            weight.data = weight.data.to(torch.bfloat16)
        yield
    finally:
        for weight, data in zip(frozen, fp32_weights, strict=True):
            weight.data = data
        for module in modules:
            del module.forward
