"""Tiny models and a tiny tokenizer built in memory: tests never load the 135M model."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from sparse_memory.data.facts import make_facts, statements
from sparse_memory.memory import MemoryConfig

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained in memory, with a ChatML template like SmolLM2's."""
    corpus = [s for fact in make_facts(60, seed=3) for s in statements(fact)]
    corpus += ["The quick brown fox jumps over the lazy dog. What is the capital of France? Paris."] * 5
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_llama_config(vocab_size: int = 400) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=2,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )


@pytest.fixture
def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config()).eval()


@pytest.fixture
def tiny_qwen2() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=400,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=2,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(config).eval()


@pytest.fixture
def tiny_memory() -> MemoryConfig:
    return MemoryConfig(layers=[1], n_keys=16, heads=2, k=4, key_dim=16)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tokenizer):
    """A saved tiny memory model with its tokenizer and background statistics: what the
    service loads as its base checkpoint in tests (SPARSE_MEMORY_MEMORY_MODEL)."""
    from sparse_memory.modeling import retrofit
    from sparse_memory.slots import compute_background_stats
    from sparse_memory.text import encode

    torch.manual_seed(0)
    model = retrofit(LlamaForCausalLM(tiny_llama_config()).eval(), MemoryConfig(layers=[1], n_keys=16, heads=2, k=4))
    directory = tmp_path_factory.mktemp("tiny-checkpoint")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    background = ["The quick brown fox jumps over the lazy dog.", "What is the capital of France? Paris."]
    compute_background_stats(model, [encode(tokenizer, background)] * 2).save(directory)
    return directory


# Learning settings under which the tiny model learns a one-sentence fact in a few seconds.
# A tiny random model learns a QA pair in 20 steps on its whole batch from the text and the pair
# alone; the reading forms (sparse_memory.data.reading, tested on their own) would triple its
# batch, and steps on parts of it (tested on their own) would each learn a part.
TINY_LEARNING = {
    "SPARSE_MEMORY_TOP_T": "64",
    "SPARSE_MEMORY_STEPS": "20",
    "SPARSE_MEMORY_LR": "50",
    "SPARSE_MEMORY_READING": "[]",
    "SPARSE_MEMORY_BATCH_PARTS": "1",
}


def service_url(name: str) -> str | None:
    """A real service the integration tests need, from the environment or this project's default;
    None when it is unreachable, which fails the test under CI=true (never a silent skip)."""
    import os
    import socket
    from urllib.parse import urlparse

    defaults = {"postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/test", "redis": "redis://127.0.0.1:6379/0"}
    url = os.environ.get(f"TEST_{name.upper()}_URL", defaults[name])
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not reachable at {url}; CI must run the integration tests")
        pytest.skip(f"{name} is not reachable at {url}")
    return url


@pytest.fixture
def postgres_url():
    """A fresh schema in the real PostgreSQL for one test, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    url = service_url("postgres")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{url}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
