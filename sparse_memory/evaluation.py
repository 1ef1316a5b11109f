"""Measurements of a memory model: answers to questions asked through the chat template,
held-out NLL, and whether its addressing is semantic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from sparse_memory.data.augment import fact_items
from sparse_memory.data.facts import Fact, eval_questions, statements
from sparse_memory.data.real_facts import QAItem, all_real_facts
from sparse_memory.generation import build_prompt, complete, complete_ids
from sparse_memory.modeling import next_token_logits, prefix_states
from sparse_memory.scoring import answer_scores
from sparse_memory.slots import BackgroundStats, chance_reads, select_slots, sequences_reading
from sparse_memory.text import encode, find_spans, shared_leading_tokens

ANSWER_TOKENS = 24  # a short answer fits; a rambling one is cut anyway


def ask(model, tokenizer, questions: list[str], batch_size: int = 16, max_new_tokens: int = ANSWER_TOKENS) -> list[str]:
    """Greedy answers to questions asked through the chat template."""
    answers = []
    for start in tqdm(range(0, len(questions), batch_size), desc="ask", unit="batch", leave=False):
        prompts = [build_prompt(tokenizer, q, chat=True) for q in questions[start : start + batch_size]]
        answers += complete(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    return answers


def mean_scores(questions: list[str], generations: list[str], golds: list[tuple[str, ...]]) -> dict[str, float]:
    """Mean SQuAD F1, exact match and "contains the answer" over question/generation pairs."""
    rows = [answer_scores(g, a, q) for q, g, a in zip(questions, generations, golds, strict=True)]
    return {key: sum(r[key] for r in rows) / max(len(rows), 1) for key in ("f1", "em", "contains")}


def sort_known(model, tokenizer, items: list[QAItem]) -> tuple[list[QAItem], list[QAItem]]:
    """(known, unknown): facts the model answers exactly right, and facts it does not even mention."""
    questions = [item.question for item in items]
    generations = ask(model, tokenizer, questions)
    scores = [answer_scores(g, i.answers, q) for i, q, g in zip(items, questions, generations, strict=True)]
    known = [item for item, score in zip(items, scores, strict=True) if score["f1"] == 1.0]
    unknown = [item for item, score in zip(items, scores, strict=True) if score["contains"] == 0.0]
    return known, unknown


def probe_candidates(size: int) -> list[QAItem]:
    """Real facts spread over the whole set, six per probe question wanted: enough for ``size``
    of them to be known by the base model."""
    candidates = all_real_facts()
    return candidates[:: max(len(candidates) // (size * 6), 1)][: size * 6]


def general_replies(size: int = 256) -> list[list[dict[str, str]]]:
    """Questions on real facts spread over the whole set, each answered with the fact's statement:
    how replies to general questions open ("The capital of ...", "In 1914 ...")."""
    items = all_real_facts()
    spread = items[:: max(len(items) // size, 1)][:size]
    return [stated_answer(item) for item in spread]


def stated_answer(item: QAItem) -> list[dict[str, str]]:
    """A real fact's question answered with its statement, as a conversation."""
    return [{"role": "user", "content": item.question}, {"role": "assistant", "content": item.statement}]


def answer_slots(
    model, tokenizer, held_out: Sequence[QAItem], min_facts: int = 2, batch_size: int = 64
) -> dict[int, torch.Tensor]:
    """Per memory layer, bool per slot: the slots read where the model predicts the answer of at
    least ``min_facts`` real facts (and more than chance gives, ``chance_reads``), each fact's
    statement given as the reply to its question; the facts of ``held_out`` (those a benchmark
    or a probe measures retention on) are left out.

    The answer's tokens are predicted at the token before each of them; a row written at a slot
    read there by many facts' answers changes those answers, while a made-up fact's own tokens
    seldom read such slots."""
    excluded = {item.question for item in held_out}
    conversations, answers = [], []
    for item in all_real_facts():
        found = next((a for a in item.answers if a in item.statement), None)
        if item.question in excluded or found is None:
            continue
        conversations.append(stated_answer(item))
        answers.append(found)
    device = next(model.parameters()).device
    n_slots = model.memory_config.n_slots
    counts, n_positions = {layer: torch.zeros(n_slots, dtype=torch.long) for layer in model.memory_layers()}, 0
    for start in range(0, len(conversations), batch_size):
        batch = encode(tokenizer, conversations[start : start + batch_size]).to(device)
        spans = []
        for row, answer in enumerate(answers[start : start + batch_size]):
            reply_start = batch.content_spans[row][-1][0]
            spans.append([span for span in find_spans(batch.texts[row], answer) if span[0] >= reply_start][:1])
        answer_tokens = batch.mask_for_spans(spans)
        predicting = torch.zeros_like(answer_tokens)
        predicting[:, :-1] = answer_tokens[:, 1:]
        n_positions += int(predicting.sum())
        for layer, count in sequences_reading(model, batch, predicting).items():
            counts[layer] += count
    least = max(min_facts, chance_reads(model, n_positions))
    return {layer: count >= least for layer, count in counts.items()}


def probe_items(model, tokenizer, size: int) -> list[QAItem]:
    """A small retention probe: ``size`` real facts the model answers exactly right."""
    return sort_known(model, tokenizer, probe_candidates(size))[0][:size]


def retention_replies(model, tokenizer, items: list[QAItem]) -> list[tuple[str, float]]:
    """(reply, F1) per fact the unchanged model knew: which knowledge is kept, and what replaced it."""
    questions = [item.question for item in items]
    replies = ask(model, tokenizer, questions)
    return [(r, answer_scores(r, i.answers, q)["f1"]) for i, q, r in zip(items, questions, replies, strict=True)]


def retention_f1(model, tokenizer, items: list[QAItem]) -> float:
    """Mean F1 on facts the unchanged model knew: how much of that knowledge is kept."""
    scores = [f1 for _, f1 in retention_replies(model, tokenizer, items)]
    return sum(scores) / max(len(scores), 1)


@dataclass
class ReplyProbe:
    """A retention probe asked in one forward pass, without generating.

    Each real fact the base model answers right is kept with the base model's own greedy reply,
    up to the token where the reply's answer is complete (its F1 reaches 1). Greedy decoding gives
    that same reply for as long as each of its tokens stays the model's top choice after the ones
    before it, so a model that still ranks every one of them first still answers as before: one
    forward pass over the prompts with their replies tells it, where generating took 24 steps.
    A reply that goes another way before its answer is complete counts as lost, even where it
    reaches the answer in other words.
    """

    items: list[QAItem]
    input_ids: torch.Tensor  # (facts, width): prompt and reply through its answer, right-padded
    attention_mask: torch.Tensor
    checked: torch.Tensor  # bool (facts, width): positions whose next token is a reply token
    replies: list[list[int]]  # per fact, the base model's reply ids through its answer

    @classmethod
    @torch.no_grad()
    def build(
        cls, model, tokenizer, items: Sequence[QAItem], replies: Sequence[Sequence[int]] | None = None
    ) -> ReplyProbe:
        """The probe of ``items``: ``replies`` holds the base model's greedy reply ids to each (as
        ``replies`` of an earlier probe stored them); without it ``model``, the base model, is
        asked. Items whose reply does not answer them right are left out, and so are those a
        forward pass of ``model`` does not rank as its decoding did (near-ties)."""
        prompts = [build_prompt(tokenizer, item.question, chat=True) for item in items]
        asked = replies is None
        if asked:
            replies = complete_ids(model, tokenizer, prompts, max_new_tokens=ANSWER_TOKENS) if prompts else []
        rows, kept = [], []
        for item, prompt, reply in zip(items, prompts, replies, strict=True):
            answered_at = next(
                (
                    length
                    for length in range(1, len(reply) + 1)
                    if answer_scores(tokenizer.decode(reply[:length]), item.answers, item.question)["f1"] == 1.0
                ),
                None,
            )
            if answered_at is not None:
                rows.append((tokenizer(prompt, add_special_tokens=False)["input_ids"], list(reply[:answered_at])))
                kept.append(item)
        device = next(model.parameters()).device
        width = max((len(prompt) + len(reply) for prompt, reply in rows), default=1)
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        checked = torch.zeros((len(rows), width), dtype=torch.bool)
        for row, (prompt, reply) in enumerate(rows):
            input_ids[row, : len(prompt) + len(reply)] = torch.tensor(prompt + reply)
            attention_mask[row, : len(prompt) + len(reply)] = 1
            checked[row, len(prompt) - 1 : len(prompt) + len(reply) - 1] = True
        probe = cls(kept, input_ids.to(device), attention_mask.to(device), checked.to(device), [r for _, r in rows])
        return probe.subset(probe.kept_rows(model)) if asked and kept else probe

    def subset(self, keep: torch.Tensor) -> ReplyProbe:
        """The probe of the facts ``keep`` (bool per fact) marks."""
        flags = keep.tolist()
        return ReplyProbe(
            [item for item, ok in zip(self.items, flags, strict=True) if ok],
            self.input_ids[keep],
            self.attention_mask[keep],
            self.checked[keep],
            [reply for reply, ok in zip(self.replies, flags, strict=True) if ok],
        )

    def __len__(self) -> int:
        return len(self.items)

    @torch.no_grad()
    def kept_rows(self, model) -> torch.Tensor:
        """Bool per fact: every reply token through the answer is still the model's first choice.

        The template prefix every prompt opens with (the system prompt) is computed once, with
        the model as it is now, and the vocabulary projection runs only where a reply token is
        predicted: most of a forward pass over the prompts is those two."""
        rows = self.input_ids.shape[0]
        first_checked = int(self.checked.int().argmax(1).min())
        # The prefix's last position may predict a checked token, none before it.
        length = min(shared_leading_tokens(self.input_ids), first_checked)
        prefix = prefix_states(model, self.input_ids[0, :length]) if rows > 1 and length > 1 else None
        logits = next_token_logits(model, self.input_ids, self.attention_mask, self.checked, prefix)
        targets = torch.zeros_like(self.checked)
        targets[:, 1:] = self.checked[:, :-1]
        wrong = logits.argmax(-1) != self.input_ids[targets]  # both in the checked positions' order
        wrong_per_row = torch.zeros(rows, dtype=torch.long, device=wrong.device)
        wrong_per_row.index_add_(0, self.checked.nonzero()[:, 0], wrong.long())
        return wrong_per_row == 0

    def score(self, model) -> float:
        """Share of the probe's facts the model still answers as the base model did."""
        if not self.items:
            return 1.0
        return float(self.kept_rows(model).float().mean())


@torch.no_grad()
def heldout_nll(model, tokenizer, texts: Sequence[str], batch_size: int = 8, max_length: int = 256) -> float:
    """Mean next-token negative log-likelihood per token over ``texts``."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    texts = sorted(texts, key=len)  # similar lengths together: less padding to compute
    for start in range(0, len(texts), batch_size):
        batch = encode(tokenizer, texts[start : start + batch_size], max_length=max_length).to(device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
        valid = batch.attention_mask[:, 1:].bool()
        # Only real next tokens: padding positions never reach the (vocabulary-wide) softmax.
        targets = batch.input_ids[:, 1:][valid]
        total += float(torch.nn.functional.cross_entropy(logits[:, :-1][valid].float(), targets, reduction="sum"))
        count += int(valid.sum())
    return total / max(count, 1)


@dataclass
class AddressingReport:
    """How well a memory's addressing suits sparse fact learning (both at TF-IDF top-t)."""

    question_overlap: float  # share of a question's name-token reads on its fact's statement slots
    cross_fact_overlap: float  # share of a fact's slots that another fact selected too (interference)


@torch.no_grad()
def addressing_report(
    model, tokenizer, stats: BackgroundStats, facts: Sequence[Fact], t: int = 500
) -> AddressingReport:
    """Question overlap: the share of a held-out question's reads at the person's name tokens
    that land on the top-t slots TF-IDF selects from that fact's statements (content tokens
    only). High overlap means a question reads the slots that learning from statements writes:
    the precondition for sparse memory finetuning to transfer from statements to questions.

    Cross-fact overlap: for two different facts, the share of one's selected slots that the
    other selected too, averaged over all pairs: how much learning one fact writes over another.
    """
    device = next(model.parameters()).device
    n_slots = model.memory_config.n_slots
    hits, reads = 0, 0
    selections: list[dict[int, torch.Tensor]] = []
    for fact in tqdm(facts, desc="slot overlap", unit="fact", leave=False):
        statement_batch = encode(tokenizer, statements(fact)).to(device)
        selected = {
            layer: slots for layer, (slots, _) in select_slots(model, statement_batch, t, "tfidf", stats).items()
        }
        selections.append(selected)
        conversations = [[{"role": "user", "content": q}] for q in eval_questions(fact)]
        batch = encode(tokenizer, conversations, add_generation_prompt=True).to(device)
        name_mask = _name_mask(batch, fact.subject)
        for layer, slots in model.memory_accesses(batch.input_ids, batch.attention_mask).items():
            in_selected = torch.zeros(n_slots, dtype=torch.bool, device=device)
            in_selected[selected[layer]] = True
            name_reads = slots[name_mask]
            name_reads = name_reads[name_reads >= 0]
            hits += int(in_selected[name_reads].sum())
            reads += name_reads.numel()
    shared, pairs = 0.0, 0
    for layer in model.memory_config.layers:
        masks = torch.zeros(len(selections), n_slots)
        for row, selected in enumerate(selections):
            masks[row, selected[layer].cpu()] = 1
        common = masks @ masks.T  # slots shared by each pair of facts
        sizes = masks.sum(1, keepdim=True).clamp_min(1)
        off_diagonal = ~torch.eye(len(selections), dtype=torch.bool)
        shared += float((common / sizes)[off_diagonal].sum())
        pairs += int(off_diagonal.sum())
    return AddressingReport(question_overlap=hits / max(reads, 1), cross_fact_overlap=shared / max(pairs, 1))


@dataclass
class InterferenceReport:
    """Facts learned in sequence, seen through the slots their held-out questions read at the
    person's name: on the fact's own selected slots, or on slots other facts selected."""

    own_share: float  # share of name-token reads that land on the fact's own selected slots
    foreign_per_read: float  # other facts' selections hit per name-token read (can exceed 1)
    distinct_slots: int  # slots written by at least one fact
    selected_slots: int  # slots selected, summed over facts


@torch.no_grad()
def interference_report(
    model,
    tokenizer,
    stats: BackgroundStats,
    facts: Sequence[Fact],
    t: int,
    written_factor: float,
    reserve: int = 1,
) -> InterferenceReport:
    """Rank each fact's training batch in turn, as sequential learning would (slots earlier facts
    wrote or reserved are spared by ``written_factor``), without training: a forward pass per
    batch. Each fact writes its best t slots and reserves its next (reserve - 1) x t, as
    ``SparseConfig.reserve`` does.

    A question reads the rows its own fact wrote and, unavoidably, rows other facts wrote; the
    more of the latter, the more later facts overwrite what earlier ones taught.
    """
    device = next(model.parameters()).device
    n_slots = model.memory_config.n_slots
    times_written = {layer: torch.zeros(n_slots, dtype=torch.long) for layer in model.memory_config.layers}
    spared = {layer: torch.zeros(n_slots, dtype=torch.bool) for layer in model.memory_config.layers}
    selections = []
    for fact in tqdm(facts, desc=f"rank in sequence (factor {written_factor:g})", unit="fact", leave=False):
        batch = encode(tokenizer, fact_items(fact)).to(device)
        ranked = select_slots(model, batch, t * reserve, "tfidf", stats, written=spared, written_factor=written_factor)
        for layer, (slots, _) in ranked.items():
            times_written[layer][slots[:t].cpu()] += 1
            spared[layer][slots.cpu()] = True
        selections.append({layer: slots[:t].cpu() for layer, (slots, _) in ranked.items()})
    own, foreign, reads = 0, 0, 0
    for fact, selected in zip(facts, selections, strict=True):
        conversations = [[{"role": "user", "content": q}] for q in eval_questions(fact)]
        batch = encode(tokenizer, conversations, add_generation_prompt=True).to(device)
        name_mask = _name_mask(batch, fact.subject)
        for layer, slots in model.memory_accesses(batch.input_ids, batch.attention_mask).items():
            name_reads = slots[name_mask].cpu()
            name_reads = name_reads[name_reads >= 0]
            is_own = torch.zeros(n_slots, dtype=torch.bool)
            is_own[selected[layer]] = True
            others = times_written[layer] - is_own.long()
            own += int(is_own[name_reads].sum())
            foreign += int(others[name_reads].sum())
            reads += name_reads.numel()
    return InterferenceReport(
        own_share=own / max(reads, 1),
        foreign_per_read=foreign / max(reads, 1),
        distinct_slots=sum(int((counts > 0).sum()) for counts in times_written.values()),
        selected_slots=sum(int(s.numel()) for selected in selections for s in selected.values()),
    )


def _name_mask(batch, subject: str) -> torch.Tensor:
    """Tokens of ``subject`` inside message contents (never in the chat template)."""
    spans = [
        [s for s in find_spans(text, subject) if any(a <= s[0] < b for a, b in content)]
        for text, content in zip(batch.texts, batch.content_spans, strict=True)
    ]
    return batch.mask_for_spans(spans)
