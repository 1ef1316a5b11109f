"""From texts and chat conversations to padded token batches with a content mask.

Slot statistics must count only content tokens: never padding, and never the chat
template's system prompt, role or separator tokens, which every fact would otherwise share.
The content mask marks tokens that lie inside a message's content (or a plain text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

Conversation = list[dict[str, str]]
TextOrChat = str | Conversation


@dataclass
class EncodedBatch:
    input_ids: torch.Tensor  # (batch, seq) long
    attention_mask: torch.Tensor  # (batch, seq) long, 0 at padding
    content_mask: torch.Tensor  # (batch, seq) bool, True inside message contents / plain text
    offsets: list[list[tuple[int, int]]]  # character span of each token in ``texts``
    texts: list[str]  # each item as rendered (chat template applied)
    content_spans: list[list[tuple[int, int]]]  # character spans of the contents in ``texts``
    answer_mask: torch.Tensor | None = None  # (batch, seq) bool, True inside assistant answers
    # (batch, seq) bool: the tokens the loss predicts; None: every content token. Content tokens
    # outside it are read (their slots count) but never learned (encode's ``unlearned``).
    loss_mask: torch.Tensor | None = None

    @property
    def learned_mask(self) -> torch.Tensor:
        """The tokens a training loss predicts."""
        return self.content_mask if self.loss_mask is None else self.loss_mask

    @property
    def answer_start_mask(self) -> torch.Tensor | None:
        """Bool (batch, seq): the first token of each assistant answer (None: no answer mask)."""
        if self.answer_mask is None:
            return None
        before = torch.cat([torch.zeros_like(self.answer_mask[:, :1]), self.answer_mask[:, :-1]], dim=1)
        return self.answer_mask & ~before

    def to(self, device: torch.device | str) -> EncodedBatch:
        self.input_ids = self.input_ids.to(device)
        self.attention_mask = self.attention_mask.to(device)
        self.content_mask = self.content_mask.to(device)
        if self.answer_mask is not None:
            self.answer_mask = self.answer_mask.to(device)
        if self.loss_mask is not None:
            self.loss_mask = self.loss_mask.to(device)
        return self

    def select_rows(self, rows: Sequence[int]) -> EncodedBatch:
        """These rows on their own, cut to their longest sequence (right padding: nothing real is cut)."""
        index = torch.tensor(list(rows), device=self.input_ids.device)
        width = int(self.attention_mask[index].sum(1).max())
        return EncodedBatch(
            input_ids=self.input_ids[index, :width],
            attention_mask=self.attention_mask[index, :width],
            content_mask=self.content_mask[index, :width],
            offsets=[self.offsets[row][:width] for row in rows],
            texts=[self.texts[row] for row in rows],
            content_spans=[self.content_spans[row] for row in rows],
            answer_mask=None if self.answer_mask is None else self.answer_mask[index, :width],
            loss_mask=None if self.loss_mask is None else self.loss_mask[index, :width],
        )

    def length_groups(self) -> list[EncodedBatch]:
        """The batch as one or two sub-batches of similar lengths, whichever pads fewer positions.

        A fact's batch holds short statements beside chat forms about four times longer (the
        system prompt); padded together, half the positions computed would be padding.
        """
        lengths = self.attention_mask.sum(1).tolist()
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        best_cost, best_split = len(lengths) * max(lengths), len(lengths)
        for split in range(1, len(order)):
            cost = split * lengths[order[split - 1]] + (len(order) - split) * lengths[order[-1]]
            if cost < best_cost:
                best_cost, best_split = cost, split
        if best_split == len(order):
            return [self]
        return [self.select_rows(order[:best_split]), self.select_rows(order[best_split:])]

    def mask_for_spans(self, spans: Sequence[Sequence[tuple[int, int]]]) -> torch.Tensor:
        """Bool (batch, seq): tokens overlapping any of ``spans[row]`` (character spans)."""
        mask = torch.zeros(self.input_ids.shape, dtype=torch.bool)
        for row, (token_offsets, row_spans) in enumerate(zip(self.offsets, spans, strict=True)):
            for col, (start, end) in enumerate(token_offsets):
                if end > start and any(start < s_end and end > s_start for s_start, s_end in row_spans):
                    mask[row, col] = True
        return mask.to(self.input_ids.device)


def shared_leading_tokens(input_ids: torch.Tensor, allowed: torch.Tensor | None = None) -> int:
    """How many leading positions every row of ``input_ids`` holds the same token at (and, where
    ``allowed`` (bool per position) is given, only positions it allows)."""
    shared = (input_ids == input_ids[:1]).all(0)
    if allowed is not None:
        shared &= allowed
    return int(shared.int().cumprod(0).sum())


def render_chat(
    tokenizer, messages: Conversation, add_generation_prompt: bool = False
) -> tuple[str, list[tuple[int, int]]]:
    """The chat template applied as text, and the character span of each message's content."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    spans, cursor = [], 0
    for message in messages:
        start = text.find(message["content"], cursor)
        if start < 0:
            raise ValueError(f"chat template dropped a message's content: {message['content'][:60]!r}")
        spans.append((start, start + len(message["content"])))
        cursor = start + len(message["content"])
    return text, spans


def find_spans(text: str, phrase: str) -> list[tuple[int, int]]:
    """Every character span where ``phrase`` occurs in ``text``."""
    spans, start = [], text.find(phrase)
    while start >= 0:
        spans.append((start, start + len(phrase)))
        start = text.find(phrase, start + 1)
    return spans


class SequenceTooLong(ValueError):
    """A sequence does not fit in the tokenizer window ``encode`` was given."""


def encode(
    tokenizer,
    items: Sequence[TextOrChat],
    max_length: int = 256,
    add_generation_prompt: bool = False,
    unlearned: Sequence[str] = (),
    truncate: bool = True,
) -> EncodedBatch:
    """Tokenise plain texts and/or conversations into one right-padded batch.

    A sequence longer than ``max_length`` tokens is cut there, or with ``truncate=False`` raises
    ``SequenceTooLong`` (a training batch must not silently lose the end of what it learns).

    A conversation's system prompt is template, not content: only user and assistant
    message contents count as content. Tokens of the ``unlearned`` phrases (a fact's subject)
    stay content, so the slots they read still count, but a training loss never predicts them
    (``EncodedBatch.loss_mask``).
    """
    if any(not phrase for phrase in unlearned):
        raise ValueError("unlearned phrases must not be empty")
    texts, content_spans, answer_spans = [], [], []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
            content_spans.append([(0, len(item))])
            answer_spans.append([])
        else:
            text, spans = render_chat(tokenizer, item, add_generation_prompt)
            texts.append(text)
            content_spans.append([span for span, m in zip(spans, item, strict=True) if m["role"] != "system"])
            answer_spans.append([span for span, m in zip(spans, item, strict=True) if m["role"] == "assistant"])
    encoded = tokenizer(
        texts,
        padding=True,
        padding_side="right",  # content first: whatever side the tokenizer was left at
        truncation=truncate,
        max_length=max_length if truncate else None,  # without truncation, checked below
        return_tensors="pt",
        return_offsets_mapping=True,
        add_special_tokens=False,
    )
    if encoded["input_ids"].shape[1] > max_length:  # only without truncation
        lengths = encoded["attention_mask"].sum(1)
        longest = int(lengths.argmax())
        raise SequenceTooLong(
            f"a sequence of {int(lengths[longest])} tokens does not fit in {max_length}: {texts[longest][:80]!r}..."
        )
    offsets = [[(int(a), int(b)) for a, b in row] for row in encoded["offset_mapping"]]
    batch = EncodedBatch(
        input_ids=encoded["input_ids"],
        attention_mask=encoded["attention_mask"],
        content_mask=torch.zeros(encoded["input_ids"].shape, dtype=torch.bool),
        offsets=offsets,
        texts=texts,
        content_spans=content_spans,
    )
    batch.content_mask = batch.mask_for_spans(content_spans) & batch.attention_mask.bool()
    batch.answer_mask = batch.mask_for_spans(answer_spans) & batch.content_mask
    if unlearned:
        unlearned_spans = [[span for phrase in unlearned for span in find_spans(text, phrase)] for text in texts]
        batch.loss_mask = batch.content_mask & ~batch.mask_for_spans(unlearned_spans)
    return batch
