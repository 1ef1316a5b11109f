import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from sparse_memory.memory import MemoryConfig
from sparse_memory.modeling import (
    MemoryConfigMismatchError,
    MemoryLlamaForCausalLM,
    MemoryQwen2ForCausalLM,
    check_memory_checkpoint,
    retrofit,
)


def _ids(batch=2, seq=12, vocab=400, seed=0):
    return torch.randint(3, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("base_name", ["tiny_llama", "tiny_qwen2"])
def test_insertion_beside_the_mlp_is_exact(base_name, tiny_memory, request):
    base = request.getfixturevalue(base_name)
    model = retrofit(base, tiny_memory)
    assert isinstance(model, MemoryLlamaForCausalLM | MemoryQwen2ForCausalLM)
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(base(ids).logits, model(ids).logits)


def test_memory_output_reaches_the_logits(tiny_llama, tiny_memory):
    model = retrofit(tiny_llama, tiny_memory)
    ids = _ids()
    with torch.no_grad():
        before = model(ids).logits
        model.memory_layers()[1].values.normal_()
        assert not torch.allclose(before, model(ids).logits)


def test_retrofit_keeps_base_weights_and_refuses_unknown_layers(tiny_llama, tiny_memory):
    model = retrofit(tiny_llama, tiny_memory)
    for name, tensor in tiny_llama.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    with pytest.raises(ValueError, match="outside the model's 4 decoder layers"):
        retrofit(tiny_llama, MemoryConfig(layers=[9], n_keys=16, heads=2, k=4, key_dim=16))


def test_padding_positions_report_no_accesses(tiny_llama, tiny_memory):
    model = retrofit(tiny_llama, tiny_memory)
    ids = _ids(batch=1, seq=7)
    alone = model.memory_accesses(ids)[1]
    padded_ids = torch.cat([ids, torch.full((1, 3), 2)], dim=1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 3)], dim=1).long()
    padded = model.memory_accesses(padded_ids, mask)[1]
    assert padded.shape == (1, 10, 2 * 4)
    assert (padded[:, 7:] == -1).all()
    assert torch.equal(padded[:, :7], alone)
    assert (alone >= 0).all()


def test_accesses_can_run_the_whole_model(tiny_llama, tiny_memory):
    model = retrofit(tiny_llama, tiny_memory)
    ids = _ids()
    assert torch.equal(model.memory_accesses(ids, stop_after_memory=False)[1], model.memory_accesses(ids)[1])


def _perturbed(model):
    """A memory model whose memory parameters and buffers are all non-default."""
    with torch.no_grad():
        for memory in model.memory_layers().values():
            memory.values.normal_()
            memory.query_mean.normal_()
            memory.query_std.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("gate", ["silu", "none"])
def test_save_load_round_trip_is_bit_identical(tiny_llama, tiny_memory, tmp_path, gate):
    memory = replace(tiny_memory, gate=gate)
    model = _perturbed(retrofit(tiny_llama, memory))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = load_file(tmp_path / "model.safetensors")
    assert ("model.layers.1.memory.gate_proj.weight" in saved) == (gate == "silu")  # an ungated memory has no W1
    assert json.loads((tmp_path / "config.json").read_text())["memory"] == memory.to_dict()
    assert check_memory_checkpoint(tmp_path) == memory
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is MemoryLlamaForCausalLM
    original, reloaded = model.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    for name in original:
        assert torch.equal(original[name], reloaded[name]), name
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded.eval()(ids).logits)


def test_replace_layout_round_trip(tiny_llama, tmp_path):
    memory = MemoryConfig(layers=[2], layout="replace", n_keys=16, heads=2, k=4, key_dim=16, value_init="normal")
    model = retrofit(tiny_llama, memory)
    saved_keys = set()
    model.save_pretrained(tmp_path)
    saved_keys = set(load_file(tmp_path / "model.safetensors"))
    assert "model.layers.2.mlp.values" in saved_keys
    assert "model.layers.2.mlp.up_proj.weight" not in saved_keys
    loaded = MemoryLlamaForCausalLM.from_pretrained(tmp_path, memory=memory).eval()
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_generate_with_kv_cache_matches_no_cache(tiny_llama, tiny_memory):
    model = _perturbed(retrofit(tiny_llama, tiny_memory))
    ids = _ids(batch=1, seq=5)
    cached = model.generate(ids, max_new_tokens=8, do_sample=False, use_cache=True, pad_token_id=2)
    uncached = model.generate(ids, max_new_tokens=8, do_sample=False, use_cache=False, pad_token_id=2)
    assert cached.shape == (1, 13)
    assert torch.equal(cached, uncached)


def test_mismatched_requested_config_is_refused(tiny_llama, tiny_memory, tmp_path):
    retrofit(tiny_llama, tiny_memory).save_pretrained(tmp_path)
    other = MemoryConfig(layers=[2], n_keys=16, heads=2, k=4, key_dim=16)
    with pytest.raises(MemoryConfigMismatchError, match=r"layers: checkpoint \[1\] vs requested \[2\]"):
        MemoryLlamaForCausalLM.from_pretrained(tmp_path, memory=other)


def test_config_that_disagrees_with_weights_is_refused(tiny_llama, tiny_memory, tmp_path):
    retrofit(tiny_llama, tiny_memory).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["memory"]["n_keys"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(MemoryConfigMismatchError, match="has shape .* but the memory config implies"):
        check_memory_checkpoint(tmp_path)
    with pytest.raises(MemoryConfigMismatchError, match="different memory configs"):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_plain_checkpoint_is_not_a_memory_model(tiny_llama, tmp_path):
    tiny_llama.save_pretrained(tmp_path)
    with pytest.raises(MemoryConfigMismatchError, match="no memory layers"):
        MemoryLlamaForCausalLM.from_pretrained(tmp_path)


def test_a_deep_copy_reads_its_own_memory(tiny_llama, tiny_memory):
    import copy

    model = retrofit(tiny_llama, tiny_memory)
    ids = torch.tensor([[5, 6, 7, 8]])
    before = model(input_ids=ids).logits
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for memory in twin.memory_layers().values():
            memory.values.normal_()
    assert torch.equal(model(input_ids=ids).logits, before)  # the original is untouched
    assert not torch.allclose(twin(input_ids=ids).logits, before)  # the copy uses its changed rows
