"""Anchors: general text that reads the slots an update is about to write, kept as it was.

TF-IDF picks the slots most specific to a new fact, but at the memory's early layer a slot is
read by a token nearly whatever its context: the slots a made-up name's rare subword pieces
read are read by the same pieces in real names ("Z" of Zagreb, "Be" of Beirut). Written there,
the rows change how the model spells those real names: on the ungated memory 97.7% of the
answer tokens of real facts read at least one of the 50,000 slots 100 facts write, and 99.4% of
those slots are read by the background text too (median: 13 of 400 background batches).

So the background text itself can tell what else a write would change. ``AnchorIndex`` lists,
per slot, the background sequences that read it. For each update, the sequences that read most
of its chosen slots are cut to short windows around those reads, and their next-token
distributions before the update become a target: the update's loss gains the KL divergence of
the windows' predictions from those (``SparseConfig.anchor_windows``, ``anchor_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from sparse_memory.data.corpus import general_batches
from sparse_memory.modeling import next_token_logits
from sparse_memory.slots import layer_of, load_tensors_and_metadata

ANCHOR_FILE = "anchor_index.safetensors"


@dataclass
class AnchorIndex:
    """Background sequences (token ids, right-padded) and, per memory layer, which of them read
    each slot: sequence ids ``sequences[layer][offsets[layer][s]:offsets[layer][s + 1]]``."""

    input_ids: torch.Tensor  # (n_sequences, width) long
    lengths: torch.Tensor  # (n_sequences,) long
    offsets: dict[int, torch.Tensor]  # layer -> (n_slots + 1,) long
    sequences: dict[int, torch.Tensor]  # layer -> (entries,) int32
    n_batches: int  # the general-text batches read, and their seed: an index built from other
    seed: int  # batches than the background statistics' would anchor on text they never counted

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / ANCHOR_FILE
        tensors = {"input_ids": self.input_ids.contiguous(), "lengths": self.lengths.contiguous()}
        for layer in self.offsets:
            tensors[f"layer_{layer}.offsets"] = self.offsets[layer].contiguous()
            tensors[f"layer_{layer}.sequences"] = self.sequences[layer].contiguous()
        save_file(tensors, str(path), metadata={"n_batches": str(self.n_batches), "seed": str(self.seed)})
        return path

    @classmethod
    def load(cls, directory: str | Path) -> AnchorIndex:
        path = Path(directory) / ANCHOR_FILE
        tensors, metadata = load_tensors_and_metadata(path)
        layers = sorted({layer_of(key) for key in tensors if key.startswith("layer_")})
        return cls(
            input_ids=tensors["input_ids"],
            lengths=tensors["lengths"],
            offsets={layer: tensors[f"layer_{layer}.offsets"] for layer in layers},
            sequences={layer: tensors[f"layer_{layer}.sequences"] for layer in layers},
            n_batches=int(metadata.get("n_batches", -1)),
            seed=int(metadata.get("seed", -1)),
        )

    def readers(self, layer: int, slots: torch.Tensor) -> torch.Tensor:
        """How many of ``slots`` each background sequence reads: (n_sequences,) long."""
        offsets, sequences = self.offsets[layer], self.sequences[layer]
        slots = slots.cpu()
        starts, ends = offsets[slots], offsets[slots + 1]
        counts = ends - starts
        if int(counts.sum()) == 0:
            return torch.zeros(self.input_ids.shape[0], dtype=torch.long)
        # Every entry of every slot's segment, without a Python loop over the slots.
        within = torch.arange(int(counts.sum())) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        entries = torch.repeat_interleave(starts, counts) + within
        return torch.bincount(sequences[entries].long(), minlength=self.input_ids.shape[0])


@torch.no_grad()
def build_anchor_index(model, tokenizer, n_batches: int, seed: int) -> AnchorIndex:
    """Read ``n_batches`` of general text (the background statistics' own batches when ``seed``
    is theirs) and list, per slot, the sequences that read it: one forward pass per batch, up
    to the last memory layer."""
    device = next(model.parameters()).device
    n_slots = model.memory_config.n_slots
    ids, lengths = [], []
    pairs: dict[int, list[torch.Tensor]] = {layer: [] for layer in model.memory_config.layers}
    n_sequences = 0
    batches = general_batches(tokenizer, n_batches, seed=seed)
    for batch in tqdm(batches, total=n_batches, desc="anchor index", unit="batch"):
        batch = batch.to(device)
        for layer, reads in model.memory_accesses(batch.input_ids, batch.attention_mask).items():
            for row in range(reads.shape[0]):
                slots = reads[row].flatten()
                slots = slots[slots >= 0].unique().cpu()
                pairs[layer].append(torch.stack([slots, torch.full_like(slots, n_sequences + row)]))
        ids.extend(batch.input_ids.cpu())
        lengths.extend(batch.attention_mask.sum(1).cpu().tolist())
        n_sequences += batch.input_ids.shape[0]
    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id or 0, dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
    offsets, sequences = {}, {}
    for layer, chunks in pairs.items():
        slot, sequence = torch.cat(chunks, dim=1)
        order = slot.argsort(stable=True)
        counts = torch.bincount(slot, minlength=n_slots)
        offsets[layer] = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        sequences[layer] = sequence[order].int()
    return AnchorIndex(input_ids, torch.tensor(lengths), offsets, sequences, n_batches, seed)


def anchor_index(model, tokenizer, directory: str | Path, n_batches: int, seed: int) -> AnchorIndex:
    """The index stored beside the model, built and stored on first use (minutes on a CPU), and
    built again when the stored one read other batches than asked for."""
    if (Path(directory) / ANCHOR_FILE).is_file():
        stored = AnchorIndex.load(directory)
        if (stored.n_batches, stored.seed) == (n_batches, seed):
            return stored
    index = build_anchor_index(model, tokenizer, n_batches, seed)
    index.save(directory)
    return index


@dataclass
class AnchorWindows:
    """Short background windows to keep as they were, and their predictions before the update."""

    input_ids: torch.Tensor  # (windows, width) long
    attention_mask: torch.Tensor  # (windows, width) long
    keep: torch.Tensor  # (windows, width) bool: positions that read a slot being written
    reference: torch.Tensor  # (kept positions, vocab) log-probabilities before the update

    def divergence(self, model) -> torch.Tensor:
        """Mean KL(before || now) of the next-token distributions at the kept positions."""
        now = F.log_softmax(next_token_logits(model, self.input_ids, self.attention_mask, self.keep), dim=-1)
        return F.kl_div(now, self.reference, log_target=True, reduction="batchmean")


@torch.no_grad()
def anchor_windows(
    model, index: AnchorIndex, chosen: dict[int, torch.Tensor], n_windows: int, width: int
) -> AnchorWindows | None:
    """The ``n_windows`` background sequences that read most of the ``chosen`` slots (layer ->
    slots), each cut to the ``width`` tokens holding most of those reads; None if none reads one."""
    device = next(model.parameters()).device
    readers = sum(index.readers(layer, slots) for layer, slots in chosen.items())
    n_windows = min(n_windows, int((readers > 0).sum()))
    if n_windows == 0:
        return None
    rows = readers.topk(n_windows).indices
    input_ids = index.input_ids[rows].to(device)
    lengths = index.lengths[rows].to(device)
    attention_mask = (torch.arange(input_ids.shape[1], device=device) < lengths.unsqueeze(1)).long()
    hits = _reads_of(model, input_ids, attention_mask, chosen)
    # The window of ``width`` tokens with the most reads of the chosen slots, per sequence.
    width = min(width, input_ids.shape[1])
    summed = F.pad(hits.cumsum(1), (1, 0))
    in_window = summed[:, width:] - summed[:, :-width]  # window ending at each position
    ends = in_window.argmax(1) + width
    starts = ends - width
    cut = torch.arange(width, device=device) + starts.unsqueeze(1)
    input_ids = input_ids.gather(1, cut)
    attention_mask = attention_mask.gather(1, cut)
    # Cut from their sequence, the windows' early tokens read other slots: read them again.
    keep = (_reads_of(model, input_ids, attention_mask, chosen) > 0) & attention_mask.bool()
    if not keep.any():
        return None
    reference = F.log_softmax(next_token_logits(model, input_ids, attention_mask, keep), dim=-1)
    return AnchorWindows(input_ids, attention_mask, keep, reference)


def _reads_of(model, input_ids, attention_mask, chosen: dict[int, torch.Tensor]) -> torch.Tensor:
    """(sequences, positions) long: how many of the chosen slots each position reads."""
    n_slots = model.memory_config.n_slots
    hits = torch.zeros(input_ids.shape, dtype=torch.long, device=input_ids.device)
    for layer, reads in model.memory_accesses(input_ids, attention_mask).items():
        is_chosen = torch.zeros(n_slots + 1, dtype=torch.bool, device=reads.device)
        is_chosen[chosen[layer].to(reads.device)] = True
        hits += is_chosen[reads.clamp_min(-1)].sum(-1)  # padding (-1) maps to the last, never chosen
    return hits
