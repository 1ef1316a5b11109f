"""Batches of general text in the formats the service sees: Wikipedia prose and chat QA."""

from __future__ import annotations

import random
from collections.abc import Iterator

from sparse_memory.data.wikipedia import articles, chat_examples
from sparse_memory.text import EncodedBatch, encode


def general_batches(
    tokenizer,
    n_batches: int,
    split: str = "train",
    batch_size: int = 8,
    chat_per_batch: int = 3,
    max_length: int = 128,
    seed: int = 0,
    start: int = 0,
) -> Iterator[EncodedBatch]:
    """``n_batches`` batches, each ``batch_size - chat_per_batch`` Wikipedia leads plus
    ``chat_per_batch`` chat-format QA conversations, drawn without replacement (cycling when
    the split runs out) in an order fixed by ``seed``; ``start`` skips the first batches (to resume)."""
    if not 0 <= chat_per_batch <= batch_size:
        raise ValueError(f"chat_per_batch must be in 0..batch_size ({batch_size}), got {chat_per_batch}")
    rng = random.Random(seed)
    prose = [a.text for a in articles(split)]
    chats = chat_examples(split)
    rng.shuffle(prose)
    rng.shuffle(chats)
    n_prose = batch_size - chat_per_batch
    for i in range(start, n_batches):
        items = [prose[(i * n_prose + j) % len(prose)] for j in range(n_prose)]
        items += [chats[(i * chat_per_batch + j) % len(chats)] for j in range(chat_per_batch)]
        yield encode(tokenizer, items, max_length=max_length)
