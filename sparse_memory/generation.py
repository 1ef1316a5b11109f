"""Text in, completion out: prompts (plain or through the chat template) and batched decoding
with the KV cache, greedy or sampled, one step at a time so a caller can stream the tokens."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def build_prompt(tokenizer, prompt: str, chat: bool) -> str:
    if not chat:
        return prompt
    return render_messages(tokenizer, [{"role": "user", "content": prompt}])


def render_messages(tokenizer, messages: list[dict[str, str]]) -> str:
    """A conversation through the chat template, ending where the assistant's answer starts."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def tokenize_prompts(tokenizer, prompts: list[str], device: torch.device) -> dict[str, torch.Tensor]:
    """Left-padded ids and mask: every row of a decoder-only batch continues from the right edge.
    The side is given per call: a tokenizer the learner shares must not change under it."""
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    return {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}


@torch.no_grad()
def decode_steps(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    temperatures: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, one decoding step at a time (KV cache on).

    ``temperatures`` (one per row; 0 = greedy) samples from softmax(logits / T). The caller
    decides when a row is finished (end of turn, its own token limit) and may stop early.
    """
    positions = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    cache = None
    tokens = input_ids
    for _ in range(max_new_tokens):
        out = model(
            input_ids=tokens, attention_mask=attention_mask, position_ids=positions, cache=cache, use_cache=True
        )
        cache = out.cache
        logits = out.logits[:, -1].float()
        next_tokens = logits.argmax(-1)
        if temperatures is not None and bool((temperatures > 0).any()):
            sampling = temperatures > 0
            scaled = logits[sampling] / temperatures[sampling, None]
            sampled = torch.multinomial(scaled.softmax(-1), 1, generator=generator).squeeze(-1)
            next_tokens[sampling] = sampled
        yield next_tokens
        tokens = next_tokens[:, None]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(tokens), 1)], dim=-1)
        positions = positions[:, -1:] + 1


def stop_ids(tokenizer) -> set[int]:
    """Tokens that end a completion: end of sequence and, for chat models, end of turn."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        ids.add(end_of_turn)
    return ids


def complete(model, tokenizer, prompts: list[str], max_new_tokens: int = 64) -> list[str]:
    """Greedy completions of already-rendered prompts; the prompt is not repeated."""
    generated = complete_ids(model, tokenizer, prompts, max_new_tokens)
    return [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]


def complete_ids(model, tokenizer, prompts: list[str], max_new_tokens: int = 64) -> list[list[int]]:
    """The token ids of greedy completions of already-rendered prompts, without the stop token."""
    device = next(model.parameters()).device
    batch = tokenize_prompts(tokenizer, prompts, device)
    stops = stop_ids(tokenizer)
    generated: list[list[int]] = [[] for _ in prompts]
    finished = [False] * len(prompts)
    for step_tokens in decode_steps(model, batch["input_ids"], batch["attention_mask"], max_new_tokens):
        for row, token in enumerate(step_tokens.tolist()):
            if finished[row]:
                continue
            if token in stops:
                finished[row] = True
            else:
                generated[row].append(token)
        if all(finished):
            break
    return generated
