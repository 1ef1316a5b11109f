"""The product-key memory layer (Lample et al. 2019; Berges et al. 2024).

A token's hidden state becomes a query per head; exact top-k search over N = n_keys^2
product keys picks k slots per head; the output is a softmax-weighted sum of those
slots' value rows, gated "memory+" style, ``W2(y * silu(W1 x))``, or ungated, ``W2 y``.

Each token reads ``heads * k`` of N value rows, so a gradient through the memory touches a
tiny, input-dependent slice of its values: the property sparse memory finetuning uses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MemoryConfig:
    """Shape and placement of the memory layers inserted into a decoder.

    ``layers`` are decoder-layer indices. ``layout="beside"`` adds the memory's output to
    the residual next to the layer's MLP (zero values make the insertion exact);
    ``layout="replace"`` puts the memory where the MLP was (the papers' layout).
    """

    # Defaults measured on SmolLM2-135M (docs/method.md, `sparse-memory bench addressing`): layer 3 of 30
    # and 16 reads per head gave the highest question/statement slot overlap.
    layers: list[int] = field(default_factory=lambda: [3])
    layout: Literal["beside", "replace"] = "beside"
    # Sub-keys per half; N = n_keys ** 2 slots. 1,048,576 slots (the paper's size): at 100 facts,
    # 65,536 filled up and forgot 35% of the retention set
    # (docs/experiments/learning-vs-forgetting.md, "Learning vs forgetting").
    n_keys: int = 1024
    heads: int = 4
    k: int = 16  # slots read per head per token
    key_dim: int = 256  # query dimension per head; each sub-key has key_dim // 2
    value_dim: int | None = None  # defaults to the model's hidden size
    input_norm: Literal["rms", "learned"] = "rms"  # unit-RMS input; "learned" adds a weight
    query_norm: bool = True  # standardise each query dimension (statistics set by calibration)
    value_init: Literal["zeros", "normal"] = "zeros"
    # "silu": memory+ gating, W2(y * silu(W1 x)); "none": W2 y. A retrofitted memory's W1 is
    # random and frozen, so its gate scales each value dimension by a context-dependent random
    # factor: a row written from a fact's training sentences reads out differently in a new
    # question. Ungated, 100 facts were learned to F1 0.74 instead of 0.49 and 11.7% of known real
    # facts lost instead of 5.7% (docs/experiments/learning-vs-forgetting.md, "The memory's gate"):
    # gated stays the default for now.
    # Memories saved before this field existed were gated (``from_dict``).
    gate: Literal["silu", "none"] = "silu"

    def __post_init__(self) -> None:
        self.layers = [int(i) for i in self.layers]
        if self.layout not in ("beside", "replace"):
            raise ValueError(f"memory layout must be 'beside' or 'replace', got {self.layout!r}")
        if self.input_norm not in ("rms", "learned"):
            raise ValueError(f"memory input_norm must be 'rms' or 'learned', got {self.input_norm!r}")
        if self.value_init not in ("zeros", "normal"):
            raise ValueError(f"memory value_init must be 'zeros' or 'normal', got {self.value_init!r}")
        if self.gate not in ("silu", "none"):
            raise ValueError(f"memory gate must be 'silu' or 'none', got {self.gate!r}")
        if self.key_dim % 2:
            raise ValueError(f"memory key_dim must be even (it is split in halves), got {self.key_dim}")
        if not 0 < self.k <= self.n_keys:
            raise ValueError(f"memory k must be in 1..n_keys ({self.n_keys}), got {self.k}")
        if len(set(self.layers)) != len(self.layers) or not self.layers:
            raise ValueError(f"memory layers must be a non-empty list of distinct indices, got {self.layers}")

    @property
    def n_slots(self) -> int:
        return self.n_keys**2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MemoryConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown memory config fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{"gate": "silu", **data})


@dataclass
class LookupResult:
    """Top-k slots of each (token, head): ``indices`` and ``scores`` of shape (..., heads, k)."""

    indices: torch.Tensor
    scores: torch.Tensor


def product_key_topk(query: torch.Tensor, sub_keys_1: torch.Tensor, sub_keys_2: torch.Tensor, k: int) -> LookupResult:
    """Exact top-k over the product-key grid without scoring all N slots.

    query: (tokens, heads, key_dim); sub_keys_*: (heads, n_keys, key_dim // 2).
    The score of slot (a, b) is ``q1 . K1[a] + q2 . K2[b]``, so the true top-k lies in the
    k x k grid of the halves' own top-k: O(n_keys + k^2) work per query instead of O(N).
    """
    n_keys = sub_keys_1.shape[1]
    half = query.shape[-1] // 2
    q1, q2 = query[..., :half], query[..., half:]
    scores_1 = torch.einsum("thd,hnd->thn", q1, sub_keys_1)
    scores_2 = torch.einsum("thd,hnd->thn", q2, sub_keys_2)
    top_1, idx_1 = scores_1.topk(k, dim=-1)  # (t, h, k)
    top_2, idx_2 = scores_2.topk(k, dim=-1)
    grid = top_1.unsqueeze(-1) + top_2.unsqueeze(-2)  # (t, h, k, k)
    best, flat = grid.flatten(-2).topk(k, dim=-1)
    slots = idx_1.gather(-1, flat // k) * n_keys + idx_2.gather(-1, flat % k)
    return LookupResult(indices=slots, scores=best)


def brute_force_topk(
    query: torch.Tensor, sub_keys_1: torch.Tensor, sub_keys_2: torch.Tensor, k: int, chunk: int = 64
) -> LookupResult:
    """Reference top-k that scores every one of the N slots (for tests and the benchmark)."""
    half = query.shape[-1] // 2
    out_scores, out_idx = [], []
    for start in range(0, query.shape[0], chunk):
        q = query[start : start + chunk]
        scores_1 = torch.einsum("thd,hnd->thn", q[..., :half], sub_keys_1)
        scores_2 = torch.einsum("thd,hnd->thn", q[..., half:], sub_keys_2)
        all_scores = (scores_1.unsqueeze(-1) + scores_2.unsqueeze(-2)).flatten(-2)  # (t, h, N)
        top, idx = all_scores.topk(k, dim=-1)
        out_scores.append(top)
        out_idx.append(idx)
    return LookupResult(indices=torch.cat(out_idx), scores=torch.cat(out_scores))


class ProductKeyMemory(nn.Module):
    """A product-key memory, memory+ gated or not; input and output have the model's width.

    Parameters: ``query_proj`` (hidden -> heads*key_dim), ``sub_keys_1/2``
    (heads, n_keys, key_dim/2), ``values`` (N, value_dim), ``gate_proj`` (W1, gated memories only) and
    ``out_proj`` (W2). Buffers ``query_mean``/``query_std`` hold the query standardisation,
    set by calibration on background text (identity until then).
    """

    def __init__(self, hidden_size: int, config: MemoryConfig, rms_eps: float = 1e-6):
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size
        self.value_dim = config.value_dim or hidden_size
        self.rms_eps = rms_eps
        h, d = config.heads, config.key_dim
        self.query_proj = nn.Linear(hidden_size, h * d, bias=False)
        self.sub_keys_1 = nn.Parameter(torch.empty(h, config.n_keys, d // 2))
        self.sub_keys_2 = nn.Parameter(torch.empty(h, config.n_keys, d // 2))
        self.values = nn.Parameter(torch.empty(config.n_slots, self.value_dim))
        self.gate_proj = nn.Linear(hidden_size, self.value_dim, bias=False) if config.gate == "silu" else None
        self.out_proj = nn.Linear(self.value_dim, hidden_size, bias=False)
        self.input_norm_weight = nn.Parameter(torch.ones(hidden_size)) if config.input_norm == "learned" else None
        self.register_buffer("query_mean", torch.zeros(h * d))
        self.register_buffer("query_std", torch.ones(h * d))
        # Set by MemoryModelMixin when a caller asks for slot accesses: (batch, seq, heads, k).
        self.capture_accesses = False
        self.last_accesses: torch.Tensor | None = None
        # Set by full finetuning: the gradient of ``values`` comes as the rows the batch read (a
        # sparse tensor), not as an N-row dense tensor that is mostly zeros.
        self.sparse_value_grad = False
        # Set by the sparse finetuner: these slots read from ``trainable_rows`` instead of ``values``.
        self.trainable_slots: torch.Tensor | None = None
        self.trainable_rows: torch.Tensor | None = None
        self._slot_position: torch.Tensor | None = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        cfg = self.config
        bound = 1 / math.sqrt(cfg.key_dim // 2)
        nn.init.uniform_(self.sub_keys_1, -bound, bound)
        nn.init.uniform_(self.sub_keys_2, -bound, bound)
        nn.init.normal_(self.query_proj.weight, std=self.hidden_size**-0.5)
        if self.gate_proj is not None:
            nn.init.normal_(self.gate_proj.weight, std=self.hidden_size**-0.5)
        nn.init.normal_(self.out_proj.weight, std=self.value_dim**-0.5)
        if cfg.value_init == "zeros":
            self.values.zero_()
        else:
            nn.init.normal_(self.values, std=self.value_dim**-0.5)
        if self.input_norm_weight is not None:
            self.input_norm_weight.fill_(1.0)
        self.query_mean.zero_()
        self.query_std.fill_(1.0)

    def normalise_input(self, x: torch.Tensor) -> torch.Tensor:
        # A decoder's hidden state can have a small RMS at the memory's layer; without unit RMS
        # the gate is tiny, the top-k softmax flat, and the values' gradient vanishes.
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.rms_eps)
        return x * self.input_norm_weight if self.input_norm_weight is not None else x

    def queries(self, normed: torch.Tensor) -> torch.Tensor:
        """(..., hidden) normalised input -> (tokens, heads, key_dim) queries."""
        q = self.query_proj(normed.reshape(-1, self.hidden_size))
        if self.config.query_norm:
            q = (q - self.query_mean) / self.query_std
        return q.view(-1, self.config.heads, self.config.key_dim)

    def lookup(self, normed: torch.Tensor) -> LookupResult:
        return product_key_topk(self.queries(normed), self.sub_keys_1, self.sub_keys_2, self.config.k)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        normed = self.normalise_input(hidden)
        found = self.lookup(normed)
        weights = found.scores.softmax(dim=-1)
        tokens = found.indices.shape[0]
        flat_slots = found.indices.reshape(tokens, -1)
        flat_weights = weights.reshape(tokens, -1).to(self.values.dtype)
        # embedding_bag sums the heads*k weighted rows per token without an N-sized tensor.
        read = F.embedding_bag(
            flat_slots, self.values, per_sample_weights=flat_weights, mode="sum", sparse=self.sparse_value_grad
        )
        if self.trainable_rows is not None:
            read = read + self._trainable_correction(flat_slots, flat_weights)
        if self.capture_accesses:
            self.last_accesses = found.indices.view(*hidden.shape[:-1], self.config.heads, self.config.k)
        if self.gate_proj is not None:
            read = read * F.silu(self.gate_proj(normed)).reshape(tokens, -1)
        return self.out_proj(read).view_as(hidden)

    def _trainable_correction(self, flat_slots: torch.Tensor, flat_weights: torch.Tensor) -> torch.Tensor:
        """What reading ``trainable_rows`` instead of ``values`` at the trainable slots adds.

        Exact and cheap: the gradient reaches only the t trainable rows, never an N-row tensor.
        """
        position = self._slot_position[flat_slots]  # -1 where the slot is not trainable
        selected = position >= 0
        offsets = self.trainable_rows - self.values.detach()[self.trainable_slots]
        return F.embedding_bag(position.clamp_min(0), offsets, per_sample_weights=flat_weights * selected, mode="sum")

    def set_trainable_rows(self, slots: torch.Tensor | None) -> torch.Tensor | None:
        """Make ``slots``' value rows a separate trainable leaf (None: back to plain values).

        Returns that leaf, of shape (t, value_dim), initialised to the current rows; write it
        back with ``values[slots] = rows`` once training is done.
        """
        if slots is None:
            self.trainable_slots = self.trainable_rows = self._slot_position = None
            return None
        slots = slots.to(self.values.device)
        if slots.unique().numel() != slots.numel():
            raise ValueError("trainable slots must be distinct")
        position = torch.full((self.config.n_slots,), -1, dtype=torch.long, device=slots.device)
        position[slots] = torch.arange(slots.numel(), device=slots.device)
        self.trainable_slots, self._slot_position = slots, position
        self.trainable_rows = self.values.detach()[slots].clone().requires_grad_(True)
        return self.trainable_rows
