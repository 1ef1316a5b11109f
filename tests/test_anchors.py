import pytest
import torch

from sparse_memory.anchors import AnchorIndex, anchor_index, anchor_windows, build_anchor_index
from sparse_memory.finetune import SparseConfig, SparseMemoryFinetuner
from sparse_memory.modeling import retrofit
from sparse_memory.slots import compute_background_stats
from sparse_memory.text import encode

FACT = [
    "Varek Olmstadt was born in Tessmoor.",
    "The town of Tessmoor is where Varek Olmstadt was born.",
    [{"role": "user", "content": "Where was Varek Olmstadt born?"}, {"role": "assistant", "content": "In Tessmoor."}],
]


@pytest.fixture
def anchored(tiny_llama, tiny_memory, tokenizer):
    """A tiny memory model, background statistics from two sentences (so that the slots a fact
    chooses are read by general text too, as they are on the real model) and its anchor index."""
    model = retrofit(tiny_llama, tiny_memory)
    background = ["The quick brown fox jumps over the lazy dog.", "What is the capital of France? Paris."]
    stats = compute_background_stats(model, [encode(tokenizer, background)] * 2)
    return model, stats, build_anchor_index(model, tokenizer, 3, seed=5)


def test_the_index_lists_exactly_the_sequences_that_read_each_slot(anchored, tmp_path):
    model, _, index = anchored
    mask = (torch.arange(index.input_ids.shape[1]) < index.lengths.unsqueeze(1)).long()
    reads = model.memory_accesses(index.input_ids, mask)[1]
    for slot in (0, 37, 200, 255):
        expected = (reads == slot).flatten(1).any(1).long()
        assert torch.equal(index.readers(1, torch.tensor([slot])), expected)
    both = index.readers(1, torch.tensor([0, 37]))
    assert torch.equal(both, index.readers(1, torch.tensor([0])) + index.readers(1, torch.tensor([37])))
    index.save(tmp_path)
    again = AnchorIndex.load(tmp_path)
    assert torch.equal(again.readers(1, torch.tensor([37, 200])), index.readers(1, torch.tensor([37, 200])))
    assert (again.n_batches, again.seed) == (3, 5)


def test_a_stored_index_of_other_background_batches_is_built_again(anchored, tokenizer, tmp_path):
    model, _, index = anchored
    index.save(tmp_path)
    assert torch.equal(anchor_index(model, tokenizer, tmp_path, 3, seed=5).input_ids, index.input_ids)
    other = anchor_index(model, tokenizer, tmp_path, 4, seed=5)
    assert other.n_batches == 4 and other.input_ids.shape[0] > index.input_ids.shape[0]
    assert AnchorIndex.load(tmp_path).n_batches == 4  # the rebuilt index replaced the stale one


def test_windows_keep_positions_that_read_the_chosen_slots_and_measure_their_change(anchored):
    model, _, index = anchored
    chosen = torch.tensor([3, 90, 170, 250])
    windows = anchor_windows(model, index, {1: chosen}, n_windows=2, width=16)
    assert windows.input_ids.shape == (2, 16)
    reads = model.memory_accesses(windows.input_ids, windows.attention_mask)[1]
    assert torch.isin(reads, chosen).any(-1)[windows.keep].all()
    assert float(windows.divergence(model).detach()) == pytest.approx(0.0, abs=1e-5)
    values = model.memory_layers()[1].values
    with torch.no_grad():
        saved = values[chosen].clone()
        values[chosen] += 5 * torch.randn_like(saved)
    assert float(windows.divergence(model).detach()) > 1e-3  # the change reaches the kept predictions
    with torch.no_grad():
        values[chosen] = saved


def test_anchored_learning_changes_the_anchors_predictions_less(anchored, tokenizer):
    model, stats, index = anchored
    batch = encode(tokenizer, FACT)
    base = model.memory_layers()[1].values.detach().clone()
    config = dict(t=32, lr=50.0, max_steps=10, target_loss=None, steps_after_answered=None, reserve=1)
    divergence = {}
    for weight in (0.0, 10.0):
        with torch.no_grad():
            model.memory_layers()[1].values.copy_(base)
        learner = SparseMemoryFinetuner(
            model, stats, SparseConfig(**config, anchor_windows=4, anchor_weight=weight), anchors=index
        )
        slots = learner.select(batch)[1][0]
        windows = anchor_windows(model, index, {1: slots}, n_windows=4, width=32)
        result = learner.learn(batch)
        assert result.loss_after < result.loss_before
        divergence[weight] = float(windows.divergence(model).detach())
    with torch.no_grad():
        model.memory_layers()[1].values.copy_(base)
    # (far larger weights overshoot: plain SGD steps lr x weight on the divergence)
    assert divergence[10.0] < 0.75 * divergence[0.0]


def test_anchor_windows_without_an_index_are_refused(anchored):
    model, stats, _ = anchored
    with pytest.raises(ValueError, match="needs an AnchorIndex"):
        SparseMemoryFinetuner(model, stats, SparseConfig(anchor_windows=8))
