"""Learning a batch: sparse memory finetuning (Lin et al. 2025) and its baselines.

Every method has the same shape, ``learn(batch) -> LearnResult``, so any experiment can swap
them. Sparse memory finetuning ranks the memory slots the batch reads (TF-IDF against the
background statistics, or the TF-only / random ablations), then trains only the value rows of
the top-t slots; everything else stays frozen bit for bit. Its result carries exactly what
changed (slots, scores, old and new rows), which is what a service stores, audits and undoes.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, fields
from typing import Literal

import torch
import torch.nn.functional as F

from sparse_memory.anchors import AnchorIndex, anchor_windows
from sparse_memory.modeling import PrefixStates, next_token_logits, prefix_states
from sparse_memory.precision import PRECISIONS, above_memory_in
from sparse_memory.slots import BackgroundStats, Ranking, select_slots
from sparse_memory.text import EncodedBatch, shared_leading_tokens


def batch_loss_and_answers(
    model, batch: EncodedBatch, answer_start_weight: float = 1.0, prefixes: list[PrefixStates | None] | None = None
) -> tuple[torch.Tensor, bool]:
    """Mean next-token cross-entropy over the tokens the batch learns (``learned_mask``: content
    tokens, never padding or chat template), the first token of each chat answer counting
    ``answer_start_weight`` times, and
    whether every answer token of the batch's chat QA forms is already the model's top choice.

    The batch runs as sub-batches of similar lengths (``EncodedBatch.length_groups``): the loss
    is the same, with far fewer padded positions computed; the vocabulary projection runs only where
    a content token is predicted (``next_token_logits``). ``prefixes`` (``template_prefixes``), one per
    group or None, stand in for the template prefix a group's rows share.
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT-wrapped or not
    total, count, answered = 0.0, 0, True
    has_answers = batch.answer_mask is not None and bool(batch.answer_mask.any())
    groups = batch.length_groups()
    for group, prefix in zip(groups, prefixes or [None] * len(groups), strict=True):
        targets = group.learned_mask[:, 1:]  # each position predicts the next token: learned ones count
        predicting = torch.cat([targets, torch.zeros_like(targets[:, :1])], dim=1)
        logits = next_token_logits(causal_lm, group.input_ids, group.attention_mask, predicting, prefix)
        labels = group.input_ids[:, 1:][targets]
        losses = F.cross_entropy(logits, labels, reduction="none")
        if has_answers and answer_start_weight != 1.0:
            starts = group.answer_start_mask[:, 1:][targets]
            losses = torch.where(starts, losses * answer_start_weight, losses)
        total = total + losses.sum()
        count += labels.numel()
        if has_answers:  # every group carries its rows of the answer mask
            at_answers = group.answer_mask[:, 1:][targets]
            answered = answered and bool((logits[at_answers].argmax(-1) == labels[at_answers]).all())
    return total / count, has_answers and answered


def batch_loss(
    model, batch: EncodedBatch, answer_start_weight: float = 1.0, prefixes: list[PrefixStates | None] | None = None
) -> torch.Tensor:
    return batch_loss_and_answers(model, batch, answer_start_weight, prefixes)[0]


def shared_prefix_length(batch: EncodedBatch) -> int:
    """How many leading tokens all rows of ``batch`` share outside any content: a chat template's
    system prompt and the opening of the user's turn (0 where the rows open differently)."""
    outside = ~batch.content_mask & batch.attention_mask.bool()
    return shared_leading_tokens(batch.input_ids, outside.all(0))


@torch.no_grad()
def template_prefixes(model, batch: EncodedBatch, trained: dict[int, torch.Tensor]) -> list[PrefixStates | None]:
    """Per length group of ``batch``: the states of the template prefix its rows share, computed
    once, where that prefix reads none of the ``trained`` slots (memory layer -> slots): then
    training cannot change them. None for a group without such a prefix."""
    states = []
    for group in batch.length_groups():
        length = shared_prefix_length(group)
        prefix = group.input_ids[0, :length]
        reads = model.memory_accesses(prefix[None]) if 1 < length < group.input_ids.shape[1] else None
        if reads is None or any(torch.isin(reads[layer], slots).any() for layer, slots in trained.items()):
            states.append(None)
        else:
            states.append(prefix_states(model, prefix))
    return states


def batch_parts(batch: EncodedBatch, parts: int) -> list[EncodedBatch]:
    """``batch`` dealt into ``parts`` sub-batches of nearly equal size (at most one per row): its
    rows in order of length, dealt in turn, so that each part holds short and long rows alike."""
    parts = min(parts, batch.input_ids.shape[0])
    if parts <= 1:
        return [batch]
    lengths = batch.attention_mask.sum(1).tolist()
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [batch.select_rows(order[part::parts]) for part in range(parts)]


def learned_tokens(batch: EncodedBatch) -> int:
    """How many tokens ``batch``'s loss predicts (its mean is over these)."""
    return int(batch.learned_mask[:, 1:].sum())


def _weighted(losses: list[float], counts: list[int]) -> float:
    return sum(loss * count for loss, count in zip(losses, counts, strict=True)) / max(sum(counts), 1)


def fit(
    model,
    parts: list[EncodedBatch],
    max_steps: int,
    target_loss: float | None,
    step,
    steps_after_answered: int | None = None,
    answer_start_weight: float = 1.0,
    prefixes: list[list[PrefixStates | None] | None] | None = None,
    whole: EncodedBatch | None = None,
    whole_prefixes: list[PrefixStates | None] | None = None,
) -> tuple[float, int]:
    """Take up to ``max_steps`` steps, step i on ``parts[i % len(parts)]`` (``step(loss)`` updates
    the trainable weights; one part: the whole batch every step), stopping early once the batch
    loss is at most ``target_loss``, or ``steps_after_answered`` steps after greedy decoding first
    gives every trained answer (None: never). With several parts, the batch's loss and answers are
    those each part had when it last stepped, and before its first step those of ``whole``, the
    batch the parts make up, before any step: one forward pass of it, not one per part.
    ``prefixes``: per part, ``template_prefixes``; ``whole_prefixes``: the whole batch's.
    Returns (loss before, steps)."""
    prefixes = prefixes or [None] * len(parts)
    counts = [learned_tokens(part) for part in parts]
    loss_before, latest_losses, latest_answered = None, [0.0], [False]
    if len(parts) > 1:  # each part moves before its own first step: the batch as it was, first
        if whole is None:
            raise ValueError("steps on several parts need the whole batch they make up (whole=)")
        with torch.no_grad():
            loss, answered = batch_loss_and_answers(model, whole, answer_start_weight, whole_prefixes)
        loss_before = float(loss)
        latest_losses, latest_answered = [loss_before] * len(parts), [answered] * len(parts)
    answered_at = None
    for steps_taken in range(max_steps):
        part = steps_taken % len(parts)
        loss, answered = batch_loss_and_answers(model, parts[part], answer_start_weight, prefixes[part])
        latest_losses[part], latest_answered[part] = float(loss.detach()), answered
        if loss_before is None:
            loss_before = latest_losses[part]
        if target_loss is not None and _weighted(latest_losses, counts) <= target_loss:
            return loss_before, steps_taken
        if steps_after_answered is not None and all(latest_answered) and answered_at is None:
            answered_at = steps_taken
        if answered_at is not None and steps_taken - answered_at >= steps_after_answered:
            return loss_before, steps_taken
        step(loss)
    if loss_before is None:  # max_steps == 0
        with torch.no_grad():
            loss_before = float(batch_loss(model, parts[0], answer_start_weight, prefixes[0]))
    return loss_before, max_steps


@dataclass
class RowUpdate:
    """The value rows one memory layer changed: enough to apply, audit or undo the update."""

    slots: torch.Tensor  # (t,) long
    scores: torch.Tensor  # (t,) float64, the ranking score of each slot
    old_rows: torch.Tensor  # (t, value_dim)
    new_rows: torch.Tensor  # (t, value_dim)
    # The next-best-ranked slots, left as they are but spared by later updates (SparseConfig.reserve).
    reserved: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def delta(self) -> torch.Tensor:
        return self.new_rows - self.old_rows


@dataclass
class LearnResult:
    method: str
    loss_before: float
    loss_after: float
    steps: int
    seconds: float
    rows: dict[int, RowUpdate] = field(default_factory=dict)  # memory layer -> rows (smf only)
    ranking_seconds: float = 0.0  # of ``seconds``: choosing the slots (smf only)


def combined(results: list[LearnResult]) -> LearnResult:
    """Learn results of batches learned one after another by one sparse learner (whose slots
    never repeat between them) as one result: rows side by side, mean losses, summed steps."""
    rows = {}
    for layer in results[0].rows:
        parts = [result.rows[layer] for result in results]
        rows[layer] = RowUpdate(
            *(
                torch.cat([getattr(part, name) for part in parts])
                for name in ("slots", "scores", "old_rows", "new_rows")
            ),
            reserved=torch.cat([part.reserved for part in parts]),
        )
    return LearnResult(
        method=results[0].method,
        loss_before=sum(result.loss_before for result in results) / len(results),
        loss_after=sum(result.loss_after for result in results) / len(results),
        steps=sum(result.steps for result in results),
        seconds=sum(result.seconds for result in results),
        rows=rows,
        ranking_seconds=sum(result.ranking_seconds for result in results),
    )


@dataclass
class SparseConfig:
    # Defaults measured with `bench forgetting` on the default model
    # (docs/experiments/learning-vs-forgetting.md): over 20 facts learned in a row,
    # t = 500 learned as much as t = 2000 (F1 0.24 vs 0.22) and forgot far
    # less (retention drop 8% vs 26%); stopping 5 steps after the trained answers come out right
    # halved the time against a fixed 30 steps. With steps on parts of the batch (batch_parts),
    # lr 2e4 learned more over 100 facts than 1e4 and forgot no more.
    t: int = 500
    ranking: Ranking = "tfidf"
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 2e4
    max_steps: int = 30
    target_loss: float | None = 0.3  # stop once the batch loss is this low
    # Stop this many steps after greedy decoding first gives every trained answer (None: never).
    steps_after_answered: int | None = 5
    # The loss of each chat answer's first token counts this many times: a reply that opens with
    # what the batch taught goes on with it, one that opens as the model would have does not.
    answer_start_weight: float = 1.0
    # Slots an earlier update wrote have their ranking score multiplied by this (0: a later
    # update never writes them again; 1: the paper's ranking). Made-up people's names share
    # subword tokens, so their names read many of the same slots; without this, later facts
    # overwrite the rows earlier facts' questions read
    # (docs/experiments/learning-vs-forgetting.md, "Keeping earlier facts").
    written_factor: float = 0.0
    # An update also reserves its next (reserve - 1) x t best-ranked slots without writing them:
    # later updates spare those as they spare written ones. A later fact that reads the same
    # slots then writes rows the earlier fact's questions are less likely to read (1: none).
    # Measured on 100 facts (docs/experiments/learning-vs-forgetting.md):
    # 4 kept every fact as well as right after its own steps.
    reserve: int = 4
    # Never write a slot a chat-template token of the batch reads (select_slots). Without this,
    # 93 of the 150 known real facts' questions read a written row at the token where their
    # answer starts, after 8 facts on the ungated memory. Off: on 100 facts (bench forgetting's
    # smf_spare_template, docs/experiments/learning-vs-forgetting.md)
    # it learned 0.755 against 0.741 and forgot the same 11.7%.
    spare_template_reads: bool = False
    # Background windows that read the chosen slots, kept as they were (sparse_memory.anchors):
    # each step's loss gains anchor_weight x the KL divergence of their next-token predictions
    # from those before the update. 0: none (the paper's method; needs an AnchorIndex otherwise).
    anchor_windows: int = 0
    anchor_width: int = 32  # tokens per window
    anchor_weight: float = 1.0
    # The decoder above the memory during the steps: "fp32", "bf16" or "auto" (sparse_memory.precision).
    precision: str = "auto"
    # The chat template's prefix (system prompt) that a batch's chat forms share is computed once
    # per batch, not every step, where it reads none of the trained rows (template_prefixes).
    template_prefix_once: bool = True
    # The batch's sequences dealt into this many parts (batch_parts), each step on the next part
    # in turn: a step computes 1 / batch_parts of the batch's sequences (1: the whole batch).
    batch_parts: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.batch_parts < 1:
            raise ValueError(f"batch_parts must be at least 1 (1: the whole batch every step), got {self.batch_parts}")
        if self.reserve < 1:
            raise ValueError(f"reserve must be at least 1 (1 reserves only the written slots), got {self.reserve}")
        if self.anchor_windows < 0 or self.anchor_width < 1 or self.anchor_weight < 0:
            raise ValueError(
                "anchor_windows must be >= 0, anchor_width >= 1 and anchor_weight >= 0, got "
                f"{self.anchor_windows}, {self.anchor_width}, {self.anchor_weight}"
            )


# The reference learner `bench learn-speed` measures the defaults against: the paper's plain SGD
# on the value rows, fp32 throughout, stopping 5 steps after the trained answers come out right.
REFERENCE_SPARSE = {
    "lr": 1e4,
    "max_steps": 30,
    "target_loss": 0.3,
    "steps_after_answered": 5,
    "precision": "fp32",
    "template_prefix_once": False,
    "batch_parts": 1,
}


class SparseMemoryFinetuner:
    """Trains only the top-t value rows of each memory layer on one batch at a time.

    It remembers which slots its updates wrote or reserved (``written``, per layer; seed it with
    those of updates made elsewhere) so that the ranking can spare them (``written_factor``).
    ``never``: per layer, slots it never writes (``slots.reply_opening_slots``).
    """

    method = "smf"

    def __init__(
        self,
        model,
        stats: BackgroundStats,
        config: SparseConfig | None = None,
        written: dict[int, torch.Tensor] | None = None,
        anchors: AnchorIndex | None = None,
        never: dict[int, torch.Tensor] | None = None,
    ):
        self.model = model
        self.never = never
        self.stats = stats
        self.config = config or SparseConfig()
        if self.config.anchor_windows and anchors is None:
            raise ValueError("anchor_windows > 0 needs an AnchorIndex (sparse_memory.anchors); pass anchors=")
        self.anchors = anchors
        self.generator = torch.Generator().manual_seed(self.config.seed)
        n_slots = model.memory_config.n_slots
        written = written or {}
        self.written = {
            layer: written[layer].clone().bool() if layer in written else torch.zeros(n_slots, dtype=torch.bool)
            for layer in model.memory_layers()
        }
        # The slots this learner's own updates wrote: the only rows ``state`` has to keep (the
        # reserved ones hold their base values, and there are (reserve - 1) times as many).
        self.changed = {layer: torch.zeros(n_slots, dtype=torch.bool) for layer in model.memory_layers()}
        for parameter in model.parameters():
            parameter.requires_grad_(False)

    def rank(self, batch: EncodedBatch) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Layer -> (slots, scores), best first, counting content tokens only: the t slots this
        batch would write, then the ones it would reserve."""
        cfg = self.config
        ranked = cfg.t * cfg.reserve
        spared, factor = self.written, cfg.written_factor
        return select_slots(
            self.model,
            batch,
            ranked,
            cfg.ranking,
            self.stats,
            self.generator,
            spared,
            factor,
            cfg.spare_template_reads,
            self.never,
        )

    def select(self, batch: EncodedBatch) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Layer -> (slots, scores) this batch would write."""
        return self._to_write(self.rank(batch))

    def _to_write(self, ranked: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> dict:
        t = self.config.t
        return {layer: (slots[:t], scores[:t]) for layer, (slots, scores) in ranked.items()}

    def learn(self, batch: EncodedBatch) -> LearnResult:
        started = time.perf_counter()
        cfg = self.config
        device = next(self.model.parameters()).device
        batch = batch.to(device)
        memories = self.model.memory_layers()
        ranked = self.rank(batch)
        ranking_seconds = time.perf_counter() - started
        chosen = self._to_write(ranked)
        if not any(slots.numel() for slots, _ in chosen.values()):
            also = ", or read by the chat template" if cfg.spare_template_reads else ""
            raise ValueError(
                f"no memory slot is left for this batch: every slot its content reads is written or reserved "
                f"by earlier updates{also}; roll an update back, raise written_factor above 0, or use a larger memory"
            )
        old_rows = {layer: memories[layer].values.detach()[slots].clone() for layer, (slots, _) in chosen.items()}
        windows = None  # background windows to keep as they were, chosen before any row moves
        if cfg.anchor_windows:
            slots_of = {layer: slots for layer, (slots, _) in chosen.items()}
            windows = anchor_windows(self.model, self.anchors, slots_of, cfg.anchor_windows, cfg.anchor_width)
        rows = {layer: memories[layer].set_trainable_rows(slots) for layer, (slots, _) in chosen.items()}
        leaves = list(rows.values())
        optimizer = torch.optim.AdamW(leaves, lr=cfg.lr, weight_decay=0.0) if cfg.optimizer == "adamw" else None

        def step(loss: torch.Tensor) -> None:
            if windows is not None:
                loss = loss + cfg.anchor_weight * windows.divergence(self.model)
            # Gradients for the t trainable rows only: no weight gradient anywhere else, and
            # nothing below the memory layer requires one, so backward stops there.
            grads = torch.autograd.grad(loss, leaves)
            with torch.no_grad():
                if optimizer is not None:
                    for leaf, grad in zip(leaves, grads, strict=True):
                        leaf.grad = grad
                    optimizer.step()
                    return
                for leaf, grad in zip(leaves, grads, strict=True):
                    leaf.sub_(cfg.lr * grad)

        # One block for the steps and the loss after them: the layers above the memory are set up
        # for bf16 once per learn call.
        with above_memory_in(self.model, cfg.precision):
            try:
                trained = {layer: slots for layer, (slots, _) in chosen.items()}
                parts = batch_parts(batch, cfg.batch_parts)
                prefixes = whole_prefixes = None
                if cfg.template_prefix_once:
                    prefixes = [template_prefixes(self.model, part, trained) for part in parts]
                    whole_prefixes = template_prefixes(self.model, batch, trained) if len(parts) > 1 else prefixes[0]
                loss_before, steps = fit(
                    self.model,
                    parts,
                    cfg.max_steps,
                    cfg.target_loss,
                    step,
                    cfg.steps_after_answered,
                    cfg.answer_start_weight,
                    prefixes,
                    batch,
                    whole_prefixes,
                )
                with torch.no_grad():
                    for layer, leaf in rows.items():
                        memories[layer].values[chosen[layer][0]] = leaf.detach()
            finally:
                for memory in memories.values():
                    memory.set_trainable_rows(None)
            with torch.no_grad():
                loss_after = float(batch_loss(self.model, batch, cfg.answer_start_weight, whole_prefixes))
        updates = {}
        for layer, (slots, scores) in chosen.items():
            new_rows = memories[layer].values.detach()[slots].clone()
            updates[layer] = RowUpdate(slots, scores, old_rows[layer], new_rows, reserved=ranked[layer][0][cfg.t :])
            self.changed[layer][slots.cpu()] = True
        self._mark_written(ranked)
        seconds = time.perf_counter() - started
        return LearnResult(self.method, loss_before, loss_after, steps, seconds, updates, ranking_seconds)

    def _mark_written(self, ranked: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        for layer, (slots, _) in ranked.items():  # written and reserved
            self.written[layer][slots.cpu()] = True

    @torch.no_grad()
    def spare(self, batch: EncodedBatch) -> None:
        """Mark the slots learning ``batch`` would write or reserve, without learning it.

        A memory layer's reads do not depend on its own values (its queries come from the layers
        below), so ranking a stream's batches in turn finds the slots learning them would have
        spared, one forward pass each: exactly for the lowest memory layer (the default model has
        only one).
        """
        self._mark_written(self.rank(batch.to(next(self.model.parameters()).device)))

    @torch.no_grad()
    def undo(self, result: LearnResult) -> None:
        """Put back the rows ``result`` changed; the slots stay marked as written."""
        memories = self.model.memory_layers()
        for layer, update in result.rows.items():
            values = memories[layer].values
            values[update.slots.to(values.device)] = update.old_rows.to(values)

    def state(self) -> dict:
        """What this learner has changed so far, enough to go on in a fresh copy of the model:
        the spared (written or reserved) slots, the rows it wrote as they are now, and the random
        ranking's generator."""
        memories = self.model.memory_layers()
        rows = {}
        for layer, changed in self.changed.items():
            slots = changed.nonzero().squeeze(1)
            rows[layer] = memories[layer].values.detach()[slots.to(memories[layer].values.device)].cpu()
        return {
            "written": {layer: mask.clone() for layer, mask in self.written.items()},
            "changed": {layer: mask.clone() for layer, mask in self.changed.items()},
            "rows": rows,
            "generator": self.generator.get_state(),
        }

    def restore(self, state: dict) -> None:
        memories = self.model.memory_layers()
        with torch.no_grad():
            for layer, changed in state["changed"].items():
                values = memories[layer].values
                values[changed.nonzero().squeeze(1).to(values.device)] = state["rows"][layer].to(values)
                self.changed[layer] = changed.clone()
                self.written[layer] = state["written"][layer].clone()
        self.generator.set_state(state["generator"])


@dataclass
class DenseConfig:
    """Full finetuning / LoRA: AdamW as in the paper's baselines."""

    lr: float = 1e-5
    weight_decay: float = 0.1
    max_steps: int = 30
    target_loss: float | None = 0.3
    steps_after_answered: int | None = 5  # the same stopping rule as sparse finetuning


# Where torch's fused AdamW runs (elsewhere the baselines use its default implementation).
FUSED_ADAMW_DEVICES = ("cpu", "cuda")
FUSED_ADAMW_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class _DenseFinetuner:
    """Shared loop of the baselines: AdamW over ``self.trainable``, state kept across batches."""

    method = "dense"

    def __init__(self, model, trainable: list[torch.nn.Parameter], config: DenseConfig):
        self.model = model
        self.config = config
        self.trainable = trainable
        # The fused kernel: one pass over each weight, its gradient and moments. Over the memory's
        # value table (most of the weights) it took 0.55 s a step here, the default loop 6 s.
        fused = all(p.device.type in FUSED_ADAMW_DEVICES and p.dtype in FUSED_ADAMW_DTYPES for p in trainable)
        self.optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay, fused=fused)

    def learn(self, batch: EncodedBatch) -> LearnResult:
        started = time.perf_counter()
        batch = batch.to(next(self.model.parameters()).device)

        def step(loss: torch.Tensor) -> None:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._densify_grads()
            self.optimizer.step()

        config = self.config
        loss_before, steps = fit(
            self.model, [batch], config.max_steps, config.target_loss, step, config.steps_after_answered
        )
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            loss_after = float(batch_loss(self.model, batch))
        return LearnResult(self.method, loss_before, loss_after, steps, time.perf_counter() - started)

    def _densify_grads(self) -> None:
        """Make every gradient dense for AdamW (a hook: only full finetuning has sparse ones)."""

    def state(self) -> dict:
        """The trained weights and the optimizer's moments: enough to go on in a fresh model."""
        # Copies: on the CPU .cpu() and state_dict() hand out the live tensors, which learning
        # goes on changing in place.
        trainable = [p.detach().cpu().clone() for p in self.trainable]
        return {"trainable": trainable, "optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def restore(self, state: dict) -> None:
        with torch.no_grad():
            for parameter, saved in zip(self.trainable, state["trainable"], strict=True):
                parameter.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])


class FullFinetuner(_DenseFinetuner):
    """Every weight trains (AdamW, weight decay 0.1)."""

    method = "full"

    def __init__(self, model, config: DenseConfig | None = None):
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        super().__init__(model, list(model.parameters()), config or DenseConfig())
        # A batch reads a few of the memory's N value rows. Their gradient comes sparse and is
        # written into one dense buffer per table, kept across steps: a fresh N-row gradient each
        # step made backward 5.5 s instead of 2.7 s here (AdamW itself needs a dense one).
        self._value_grads = []
        for memory in model.memory_layers().values():
            memory.sparse_value_grad = True
            self._value_grads.append((memory.values, torch.zeros_like(memory.values)))

    @torch.no_grad()
    def _densify_grads(self) -> None:
        for values, dense in self._value_grads:
            if values.grad is None or not values.grad.is_sparse:
                continue
            rows = values.grad.coalesce()
            dense.zero_()
            dense.index_add_(0, rows.indices()[0], rows.values())
            values.grad = dense


@dataclass
class LoraSettings:
    rank: int = 32
    alpha: float = 64.0
    # Every attention and MLP projection of the decoder; the memory's own projections excluded.
    target_modules: str = r".*\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


class LoraFinetuner(_DenseFinetuner):
    """Low-rank adapters through PEFT on all attention and MLP linear layers."""

    method = "lora"

    def __init__(self, model, config: DenseConfig | None = None, lora: LoraSettings | None = None):
        from peft import LoraConfig, get_peft_model

        lora = lora or LoraSettings()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        peft_config = LoraConfig(
            r=lora.rank, lora_alpha=lora.alpha, target_modules=lora.target_modules, lora_dropout=0.0, bias="none"
        )
        wrapped = get_peft_model(model, peft_config)
        trainable = [p for p in wrapped.parameters() if p.requires_grad]
        super().__init__(wrapped, trainable, config or DenseConfig(lr=1e-4))


METHOD_KINDS = ("smf", "full", "lora")
DEFAULT_LR = {"smf": SparseConfig.lr, "full": 1e-5, "lora": 1e-4}


def make_learner(
    kind: str,
    model,
    stats: BackgroundStats | None = None,
    lr: float | None = None,
    max_steps: int = 30,
    target_loss: float | None = 0.3,
    anchors: AnchorIndex | None = None,
    never: dict[int, torch.Tensor] | None = None,
    **sparse_settings,
):
    """A learner of any method behind the same ``learn(batch)`` interface. ``sparse_settings``
    are ``SparseConfig`` fields (t, ranking, reserve, anchor_windows, ...), ``anchors`` its
    index and ``never`` the slots it never writes: sparse memory finetuning's own; the baselines
    take none of them (they always use AdamW)."""
    if kind not in METHOD_KINDS:
        raise ValueError(f"unknown method {kind!r}; choose from {METHOD_KINDS}")
    lr = DEFAULT_LR[kind] if lr is None else lr
    if kind == "smf":
        if stats is None:
            raise ValueError("sparse memory finetuning needs the background statistics")
        unknown = sorted(set(sparse_settings) - {f.name for f in fields(SparseConfig)})
        if unknown:
            raise ValueError(f"unknown sparse memory finetuning settings {unknown}: choose from SparseConfig's fields")
        config = SparseConfig(lr=lr, max_steps=max_steps, target_loss=target_loss, **sparse_settings)
        return SparseMemoryFinetuner(model, stats, config, anchors=anchors, never=never)
    if sparse_settings or anchors is not None or never is not None:
        raise ValueError(
            f"{sorted(sparse_settings) or ['anchors or never']} are settings of sparse memory finetuning; "
            f"the {kind} baseline takes lr, max_steps and target_loss"
        )
    dense = DenseConfig(lr=lr, max_steps=max_steps, target_loss=target_loss)
    return FullFinetuner(model, dense) if kind == "full" else LoraFinetuner(model, dense)
