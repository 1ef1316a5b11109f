import pytest
import torch

from sparse_memory.memory import MemoryConfig, ProductKeyMemory, brute_force_topk, product_key_topk


@pytest.mark.parametrize(
    ("n_keys", "heads", "key_dim", "k"),
    [(8, 1, 8, 1), (8, 2, 16, 8), (16, 4, 32, 5), (64, 2, 64, 32), (128, 4, 256, 32)],
)
def test_product_key_topk_equals_brute_force(n_keys, heads, key_dim, k):
    generator = torch.Generator().manual_seed(n_keys * 31 + k)
    query = torch.randn(50, heads, key_dim, generator=generator)
    keys_1 = torch.randn(heads, n_keys, key_dim // 2, generator=generator)
    keys_2 = torch.randn(heads, n_keys, key_dim // 2, generator=generator)
    fast = product_key_topk(query, keys_1, keys_2, k)
    # An independent reference: materialise all N product keys and score each one.
    full_keys = torch.cat(
        [keys_1.unsqueeze(2).expand(-1, -1, n_keys, -1), keys_2.unsqueeze(1).expand(-1, n_keys, -1, -1)], dim=-1
    ).reshape(heads, n_keys * n_keys, key_dim)
    scores = torch.einsum("thd,hnd->thn", query, full_keys)
    expected_scores, expected_idx = scores.topk(k, dim=-1)
    assert torch.equal(fast.indices.sort(-1).values, expected_idx.sort(-1).values)
    assert torch.allclose(fast.scores, expected_scores, atol=1e-4)
    slow = brute_force_topk(query, keys_1, keys_2, k, chunk=7)
    assert torch.equal(fast.indices.sort(-1).values, slow.indices.sort(-1).values)


def test_forward_matches_dense_reference():
    torch.manual_seed(0)
    config = MemoryConfig(layers=[0], n_keys=8, heads=2, k=3, key_dim=8, value_init="normal")
    memory = ProductKeyMemory(16, config)
    x = torch.randn(2, 5, 16)
    out = memory(x)
    normed = memory.normalise_input(x)
    found = memory.lookup(normed)
    weights = found.scores.softmax(-1)
    read = (memory.values[found.indices] * weights.unsqueeze(-1)).sum(dim=(1, 2))  # sum over heads and k
    gate = torch.nn.functional.silu(memory.gate_proj(normed)).reshape(10, -1)
    expected = memory.out_proj(read * gate).view_as(x)
    assert torch.allclose(out, expected, atol=1e-5)


def test_ungated_memory_is_the_projected_read():
    torch.manual_seed(0)
    config = MemoryConfig(layers=[0], n_keys=8, heads=2, k=3, key_dim=8, value_init="normal", gate="none")
    memory = ProductKeyMemory(16, config)
    assert memory.gate_proj is None and "gate_proj.weight" not in memory.state_dict()
    x = torch.randn(2, 5, 16)
    found = memory.lookup(memory.normalise_input(x))
    read = (memory.values[found.indices] * found.scores.softmax(-1).unsqueeze(-1)).sum(dim=(1, 2))
    assert torch.allclose(memory(x), memory.out_proj(read).view_as(x), atol=1e-5)


def test_a_config_saved_before_the_gate_setting_is_gated():
    saved = MemoryConfig(layers=[1], n_keys=16, k=4).to_dict()
    del saved["gate"]
    assert MemoryConfig.from_dict(saved).gate == "silu"
    assert MemoryConfig.from_dict({**saved, "gate": "none"}).gate == "none"


def test_input_is_normalised_to_unit_rms():
    memory = ProductKeyMemory(32, MemoryConfig(layers=[0], n_keys=8, heads=1, k=2, key_dim=8))
    normed = memory.normalise_input(torch.randn(3, 32) * 0.1)
    assert torch.allclose(normed.pow(2).mean(-1), torch.ones(3), atol=1e-3)


def test_gradient_reaches_only_read_value_rows():
    torch.manual_seed(0)
    memory = ProductKeyMemory(16, MemoryConfig(layers=[0], n_keys=16, heads=2, k=2, key_dim=8))
    x = torch.randn(1, 3, 16)
    memory(x).sum().backward()
    read = memory.lookup(memory.normalise_input(x)).indices.unique()
    touched = memory.values.grad.abs().sum(-1).nonzero().flatten()
    assert set(touched.tolist()) <= set(read.tolist())
    assert len(touched) > 0


def test_zero_values_make_output_zero():
    memory = ProductKeyMemory(16, MemoryConfig(layers=[0], n_keys=8, heads=2, k=2, key_dim=8))
    assert torch.count_nonzero(memory(torch.randn(2, 4, 16))) == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("key_dim", 7, "even"),
        ("k", 99, "k must be"),
        ("layout", "inside", "layout"),
        ("layers", [], "non-empty"),
        ("gate", "relu", "gate must be"),
    ],
)
def test_bad_config_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        MemoryConfig(**{"n_keys": 16, "k": 4, field: value})


def test_unknown_config_field_is_refused():
    with pytest.raises(ValueError, match="unknown memory config fields"):
        MemoryConfig.from_dict({"layers": [1], "slots": 5})


def test_trainable_rows_replace_values_exactly_and_take_all_the_gradient():
    torch.manual_seed(0)
    config = MemoryConfig(layers=[0], n_keys=8, heads=2, k=4, key_dim=8, value_init="normal")
    memory = ProductKeyMemory(16, config)
    x = torch.randn(2, 5, 16)
    read = memory.lookup(memory.normalise_input(x)).indices.unique()
    slots = read[:3]
    rows = memory.set_trainable_rows(slots)
    assert torch.allclose(memory(x), _without_rows(memory, x), atol=1e-6)  # same rows: same output
    with torch.no_grad():
        rows.add_(torch.randn_like(rows))
    memory.values.requires_grad_(False)
    out = memory(x)
    memory.values.data[slots] = rows.detach()
    assert torch.allclose(out, _without_rows(memory, x), atol=1e-5)  # rows are read in place of values
    out.pow(2).sum().backward()
    assert rows.grad is not None and rows.grad.abs().sum() > 0
    assert memory.values.grad is None
    memory.set_trainable_rows(None)
    assert memory.trainable_rows is None


def _without_rows(memory, x):
    saved = memory.trainable_rows
    memory.trainable_rows = None
    try:
        return memory(x)
    finally:
        memory.trainable_rows = saved
