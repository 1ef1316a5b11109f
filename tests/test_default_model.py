"""The one test that uses the real SmolLM2-135M model; run with `make test-slow`."""

import pytest
import torch

from sparse_memory.generation import build_prompt, complete
from sparse_memory.prepare import load_base, load_memory_model, prepare
from sparse_memory.settings import CoreSettings
from sparse_memory.slots import BackgroundStats


@pytest.mark.slow
def test_prepared_default_model_answers_like_the_base():
    settings = CoreSettings()
    where = prepare(settings)
    model, tokenizer = load_memory_model(where.memory, "cpu", memory=settings.memory())
    base, _ = load_base(where.base, torch.device("cpu"))
    prompt = build_prompt(tokenizer, "What is the capital of France?", chat=True)
    answer = complete(model, tokenizer, [prompt], max_new_tokens=16)[0]
    assert "Paris" in answer
    assert answer == complete(base, tokenizer, [prompt], max_new_tokens=16)[0]
    stats = BackgroundStats.load(where.memory)
    assert stats.n_batches == settings.n_background_batches()
    assert stats.usage(settings.memory_layer) > 0.9
