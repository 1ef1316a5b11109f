import torch

from sparse_memory.data.facts import make_facts
from sparse_memory.evaluation import addressing_report
from sparse_memory.modeling import retrofit
from sparse_memory.slots import compute_background_stats
from sparse_memory.text import encode
from sparse_memory.warmup import calibrate_addressing, capture_memory_inputs

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? Paris is the capital.",
    "Varek Olmstadt was born in Tessmoor and works at Quillon Dynamics.",
] * 4


def _batches(tokenizer):
    return [encode(tokenizer, TEXTS[i : i + 3]) for i in range(0, len(TEXTS), 3)]


def test_calibration_standardises_queries_and_keeps_the_model_exact(tiny_llama, tiny_memory, tokenizer):
    model = retrofit(tiny_llama, tiny_memory)
    memory = model.memory_layers()[1]
    inputs = capture_memory_inputs(model, _batches(tokenizer), max_tokens=10_000)
    n_tokens = sum(int(b.attention_mask.sum()) for b in _batches(tokenizer))
    assert inputs[1].shape == (n_tokens, 64)
    ids = encode(tokenizer, TEXTS[:2]).input_ids
    with torch.no_grad():
        before = model(ids).logits
        calibrate_addressing(memory, inputs[1])
        queries = memory.queries(inputs[1]).flatten(1)
        assert torch.allclose(queries.mean(0), torch.zeros(queries.shape[1]), atol=1e-4)
        assert torch.allclose(queries.std(0), torch.ones(queries.shape[1]), atol=1e-3)
        assert torch.equal(model(ids).logits, before)  # values are zero: the warm-up changes no output
    assert torch.count_nonzero(memory.values) == 0


def test_overlap_is_a_share_of_name_reads(tiny_llama, tiny_memory, tokenizer):
    model = retrofit(tiny_llama, tiny_memory)
    stats = compute_background_stats(model, _batches(tokenizer))
    facts = make_facts(3, seed=5)
    everything = addressing_report(model, tokenizer, stats, facts, t=tiny_memory.n_slots)
    few = addressing_report(model, tokenizer, stats, facts, t=5)
    assert 0 <= few.question_overlap <= everything.question_overlap <= 1
    assert everything.question_overlap > 0
    # With every read slot selected, facts share whatever slots they both read.
    assert 0 < everything.cross_fact_overlap <= 1
    assert few.cross_fact_overlap <= 1


def test_heldout_nll_matches_the_models_own_loss_and_ignores_padding(tiny_llama, tokenizer):
    from sparse_memory.evaluation import heldout_nll

    text = "Varek Olmstadt was born in Tessmoor."
    ids = encode(tokenizer, [text]).input_ids
    with torch.no_grad():
        expected = float(tiny_llama(ids, labels=ids).loss)
    assert abs(heldout_nll(tiny_llama, tokenizer, [text]) - expected) < 1e-5
    # Batched with a longer text, the short one is padded: its padding must not change the mean.
    longer = "The quick brown fox jumps over the lazy dog. " * 3
    n_short, n_long = ids.shape[1] - 1, encode(tokenizer, [longer]).input_ids.shape[1] - 1
    batched = heldout_nll(tiny_llama, tokenizer, [text, longer])
    alone = heldout_nll(tiny_llama, tokenizer, [text]) * n_short + heldout_nll(tiny_llama, tokenizer, [longer]) * n_long
    assert abs(batched - alone / (n_short + n_long)) < 1e-5


def test_sparing_written_slots_leaves_each_slot_to_one_fact(tiny_llama, tiny_memory, tokenizer):
    from sparse_memory.evaluation import interference_report

    model = retrofit(tiny_llama, tiny_memory)
    stats = compute_background_stats(model, _batches(tokenizer))
    facts = make_facts(4, seed=5)
    paper = interference_report(model, tokenizer, stats, facts, t=20, written_factor=1.0)
    spared = interference_report(model, tokenizer, stats, facts, t=20, written_factor=0.0)
    # The tiny memory has 256 slots, so facts selected with the paper's ranking share some.
    assert paper.distinct_slots < paper.selected_slots
    assert spared.distinct_slots == spared.selected_slots  # no slot is selected twice
    assert spared.foreign_per_read < paper.foreign_per_read
    assert 0 < spared.own_share <= 1 and 0 < paper.own_share <= 1
    # Reserving: each fact also spares its next t best-ranked slots, so later facts write others.
    reserved = interference_report(model, tokenizer, stats, facts, t=20, written_factor=0.0, reserve=2)
    assert reserved.distinct_slots == reserved.selected_slots
    assert (reserved.own_share, reserved.foreign_per_read) != (spared.own_share, spared.foreign_per_read)
