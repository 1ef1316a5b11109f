"""Slot access statistics: counts per batch, background document frequency, TF-IDF ranking.

A "document" is one batch (Lin et al. 2025): a slot's term frequency is its share of the
batch's accesses; its document frequency is the number of background batches that accessed
it at least once. The background statistics are stored beside the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from sparse_memory.text import EncodedBatch

BACKGROUND_FILE = "background_stats.safetensors"
Ranking = Literal["tfidf", "tf", "random"]  # TF-only and random are the paper's ablations


def load_tensors_and_metadata(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors and its string metadata (empty when it has none), in one read."""
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata() or {}


def layer_of(tensor_name: str) -> int:
    """The memory layer a stored tensor belongs to: "layer_3.doc_freq" -> 3."""
    return int(tensor_name.split(".")[0].removeprefix("layer_"))


def access_counts(accesses: torch.Tensor, n_slots: int, position_mask: torch.Tensor | None = None) -> torch.Tensor:
    """How often each slot was read: (batch, seq, reads) indices, -1 at padding -> (n_slots,) long.

    ``position_mask`` (batch, seq) bool keeps only some positions, e.g. content tokens.
    """
    keep = accesses >= 0
    if position_mask is not None:
        keep &= position_mask.unsqueeze(-1).to(keep.device)
    return torch.bincount(accesses[keep], minlength=n_slots)


@dataclass
class BackgroundStats:
    """Per memory layer, the number of background batches that read each slot at least once."""

    doc_freq: dict[int, torch.Tensor]  # layer -> (n_slots,) long
    n_batches: int

    def save(self, directory: str | Path, name: str = BACKGROUND_FILE) -> Path:
        path = Path(directory) / name
        tensors = {f"layer_{layer}.doc_freq": df.cpu().contiguous() for layer, df in self.doc_freq.items()}
        save_file(tensors, str(path), metadata={"n_batches": str(self.n_batches)})
        return path

    @classmethod
    def load(cls, directory: str | Path, name: str = BACKGROUND_FILE) -> BackgroundStats:
        path = Path(directory) / name
        if not path.is_file():
            raise FileNotFoundError(f"no background statistics at {path}; run `sparse-memory prepare`")
        tensors, metadata = load_tensors_and_metadata(path)
        doc_freq = {layer_of(key): value for key, value in tensors.items()}
        return cls(doc_freq=doc_freq, n_batches=int(metadata["n_batches"]))

    def usage(self, layer: int) -> float:
        """Fraction of the layer's slots read by at least one background batch."""
        return float((self.doc_freq[layer] > 0).double().mean())


@torch.no_grad()
def compute_background_stats(
    model,
    batches: Iterable[EncodedBatch],
    total: int | None = None,
    resume_from: BackgroundStats | None = None,
    checkpoint: Callable[[BackgroundStats], None] | None = None,
    checkpoint_every: int = 50,
) -> BackgroundStats:
    """Document frequency of every slot over ``batches`` (padding masked), one forward each.

    ``resume_from`` continues counts already made (``batches`` must then start after them);
    ``checkpoint`` receives the running counts every ``checkpoint_every`` batches.
    """
    device = next(model.parameters()).device
    n_slots = model.memory_config.n_slots
    if resume_from is None:
        resume_from = BackgroundStats(
            {layer: torch.zeros(n_slots, dtype=torch.long) for layer in model.memory_config.layers}, 0
        )
    doc_freq = {layer: df.to(device) for layer, df in resume_from.doc_freq.items()}
    n_batches = resume_from.n_batches

    def snapshot() -> BackgroundStats:
        return BackgroundStats(doc_freq={k: v.cpu() for k, v in doc_freq.items()}, n_batches=n_batches)

    progress = tqdm(batches, total=total, initial=n_batches, desc="background statistics", unit="batch")
    for batch in progress:
        batch = batch.to(device)
        for layer, slots in model.memory_accesses(batch.input_ids, batch.attention_mask).items():
            doc_freq[layer] += access_counts(slots, n_slots) > 0
        n_batches += 1
        if checkpoint is not None and n_batches % checkpoint_every == 0:
            checkpoint(snapshot())
    return snapshot()


def tfidf_scores(counts: torch.Tensor, doc_freq: torch.Tensor, n_batches: int) -> torch.Tensor:
    """score(i) = c(i) / sum_j c(j) * log((|B| + 1) / (df(i) + 1)); zero for unread slots."""
    total = counts.sum()
    if total == 0:
        return torch.zeros(counts.shape, dtype=torch.float64, device=counts.device)
    tf = counts.double() / total
    idf = torch.log(torch.tensor(n_batches + 1.0, dtype=torch.float64)) - torch.log(
        doc_freq.double().to(counts.device) + 1
    )
    return tf * idf


def top_slots(scores: torch.Tensor, t: int) -> torch.Tensor:
    """Indices of the ``t`` highest-scoring slots among those with a positive score. Equal scores
    (common: counts and document frequencies are small integers) go to the lower slot id, so a
    batch ranks the same slots whatever other slots are spared."""
    positive = (scores > 0).nonzero().squeeze(1)
    order = scores[positive].sort(descending=True, stable=True).indices
    return positive[order[:t]]


def rank_slots(
    counts: torch.Tensor,
    t: int,
    ranking: Ranking,
    stats: BackgroundStats | None = None,
    layer: int | None = None,
    generator: torch.Generator | None = None,
    written: torch.Tensor | None = None,
    written_factor: float = 1.0,
    excluded: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-t of the slots a batch read, by TF-IDF, TF alone, or at random (the ablations).

    ``written`` (bool, one per slot) marks slots earlier updates wrote; their scores are
    multiplied by ``written_factor`` (0: never chosen again; 1: the paper's ranking).
    ``excluded`` (bool, one per slot) marks slots never chosen, whatever their score.
    """
    read = counts > 0
    if ranking == "tfidf":
        if stats is None or layer is None:
            raise ValueError("TF-IDF ranking needs the background statistics and the memory layer")
        scores = tfidf_scores(counts, stats.doc_freq[layer], stats.n_batches)
    elif ranking == "tf":
        scores = counts.double() / counts.sum().clamp_min(1)
    elif ranking == "random":
        scores = torch.rand(counts.shape, generator=generator, dtype=torch.float64).to(counts.device) * read
    else:
        raise ValueError(f"ranking must be 'tfidf', 'tf' or 'random', got {ranking!r}")
    scores = torch.where(read, scores, torch.zeros_like(scores))
    if written is not None:
        scores = torch.where(written.to(scores.device), scores * written_factor, scores)
    if excluded is not None:
        scores = torch.where(excluded.to(scores.device), torch.zeros_like(scores), scores)
    chosen = top_slots(scores, t)
    return chosen, scores[chosen]


def opening_mask(batch: EncodedBatch) -> torch.Tensor:
    """Bool (batch, seq): the first token of each message's content or plain text."""
    content = batch.content_mask & batch.attention_mask.bool()
    before = torch.cat([torch.zeros_like(content[:, :1]), content[:, :-1]], dim=1)
    return content & ~before


@torch.no_grad()
def sequences_reading(model, batch: EncodedBatch, positions: torch.Tensor) -> dict[int, torch.Tensor]:
    """Per memory layer, long per slot: how many of ``batch``'s sequences read the slot at one or
    more of their ``positions`` (bool, batch x seq); a sequence counts a slot once."""
    n_slots = model.memory_config.n_slots
    counts = {}
    for layer, reads in model.memory_accesses(batch.input_ids, batch.attention_mask).items():
        per_sequence = torch.zeros(n_slots, dtype=torch.long, device=reads.device)
        for row in range(reads.shape[0]):
            slots = reads[row][positions[row].to(reads.device)].flatten()
            per_sequence[slots[slots >= 0].unique()] += 1
        counts[layer] = per_sequence.cpu()
    return counts


def chance_reads(model, n_positions: int) -> int:
    """Four times the reads a slot would get if the reads at ``n_positions`` positions spread
    evenly over the memory: below that, a small memory's slots are shared by chance."""
    config = model.memory_config
    return math.ceil(4 * n_positions * config.heads * config.k / config.n_slots)


@torch.no_grad()
def reply_opening_slots(model, replies: EncodedBatch, min_share: float = 0.01) -> dict[int, torch.Tensor]:
    """Per memory layer, bool per slot: the slots read at the first token of at least ``min_share``
    of the assistant replies in ``replies`` (chat forms of general questions and answers), and of
    more than chance gives (``chance_reads``).

    After the chat template, a reply's first token reads much the same slots in every conversation
    whose reply opens with the same word ("The", "In"): slots general text never reads there, so
    TF-IDF ranks them high for any batch whose answers open that way, and a row written there
    changes every reply that opens with that word. A rare opening (a made-up name) reads slots
    few replies share, which stay free to learn."""
    if replies.answer_mask is None:
        raise ValueError("reply_opening_slots needs chat forms with assistant replies")
    openings = opening_mask(replies) & replies.answer_mask
    n_replies = int(openings.any(1).sum())
    least = max(2, math.ceil(min_share * n_replies), chance_reads(model, int(openings.sum())))
    return {layer: count >= least for layer, count in sequences_reading(model, replies, openings).items()}


def select_slots(
    model,
    batch: EncodedBatch,
    t: int,
    ranking: Ranking = "tfidf",
    stats: BackgroundStats | None = None,
    generator: torch.Generator | None = None,
    written: dict[int, torch.Tensor] | None = None,
    written_factor: float = 1.0,
    spare_template_reads: bool = False,
    never: dict[int, torch.Tensor] | None = None,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Memory layer -> (slots, scores) chosen for one batch; reads count at content tokens only.

    ``written``: per layer, the slots earlier updates wrote (see ``rank_slots``).
    ``spare_template_reads``: never choose a slot that a chat-template token of the batch reads.
    Those tokens read much the same slots in every conversation; above all the one after
    "assistant" where every answer starts: a row written there changes the start of every answer.
    ``never``: per layer, bool per slot: slots never chosen (``reply_opening_slots``)."""
    n_slots = model.memory_config.n_slots
    written = written or {}
    never = never or {}
    template = batch.attention_mask.bool() & ~batch.content_mask
    ranked = {}
    for layer, slots in model.memory_accesses(batch.input_ids, batch.attention_mask).items():
        excluded = access_counts(slots, n_slots, template) > 0 if spare_template_reads else None
        if layer in never:
            spared = never[layer].to(slots.device)
            excluded = spared if excluded is None else excluded | spared
        counts = access_counts(slots, n_slots, batch.content_mask)
        ranked[layer] = rank_slots(
            counts, t, ranking, stats, layer, generator, written.get(layer), written_factor, excluded
        )
    return ranked
