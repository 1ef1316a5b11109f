import copy

import pytest
import torch

from sparse_memory.finetune import (
    REFERENCE_SPARSE,
    DenseConfig,
    FullFinetuner,
    LoraFinetuner,
    SparseConfig,
    SparseMemoryFinetuner,
    batch_loss,
    batch_parts,
    make_learner,
    shared_prefix_length,
    template_prefixes,
)
from sparse_memory.modeling import retrofit
from sparse_memory.slots import BackgroundStats, access_counts, compute_background_stats, rank_slots
from sparse_memory.text import encode

FACT = [
    "Varek Olmstadt was born in Tessmoor.",
    "The town of Tessmoor is where Varek Olmstadt was born.",
    [{"role": "user", "content": "Where was Varek Olmstadt born?"}, {"role": "assistant", "content": "In Tessmoor."}],
]
QA = [("Where was Varek Olmstadt born?", "In Tessmoor."), ("Which town is Varek Olmstadt from?", "Tessmoor.")]
BACKGROUND = ["The quick brown fox jumps over the lazy dog.", "What is the capital of France? Paris."]


@pytest.fixture
def memory_model(tiny_llama, tiny_memory):
    return retrofit(tiny_llama, tiny_memory)


@pytest.fixture
def stats(memory_model, tokenizer) -> BackgroundStats:
    chat = [[{"role": "user", "content": text}, {"role": "assistant", "content": "Yes."}] for text in BACKGROUND]
    return compute_background_stats(memory_model, [encode(tokenizer, BACKGROUND + chat)] * 2)


def test_rank_slots_tfidf_tf_and_random():
    counts = torch.tensor([5, 1, 0, 2, 2])
    stats = BackgroundStats({0: torch.tensor([9, 0, 0, 1, 9])}, n_batches=9)
    slots, scores = rank_slots(counts, 2, "tfidf", stats, 0)
    assert slots.tolist() == [3, 1]  # slots 0 and 4 are in every background batch: not specific
    slots, _ = rank_slots(counts, 2, "tf")
    assert slots.tolist() == [0, 3] or slots.tolist() == [0, 4]
    slots, scores = rank_slots(counts, 10, "random", generator=torch.Generator().manual_seed(0))
    assert sorted(slots.tolist()) == [0, 1, 3, 4]  # every read slot, never an unread one
    with pytest.raises(ValueError, match="needs the background"):
        rank_slots(counts, 2, "tfidf")


def test_written_slots_are_spared_by_the_factor():
    counts = torch.tensor([5, 1, 0, 2, 2])
    written = torch.tensor([True, False, False, True, False])
    slots, _ = rank_slots(counts, 2, "tf", written=written, written_factor=0.0)
    assert slots.tolist() == [4, 1]  # 0 and 3 were written: never chosen again
    slots, scores = rank_slots(counts, 2, "tf", written=written, written_factor=0.5)
    assert slots.tolist() == [0, 4] and scores.tolist() == pytest.approx([0.25, 0.2])
    paper = rank_slots(counts, 3, "tf", written=written, written_factor=1.0)[0]
    assert torch.equal(paper, rank_slots(counts, 3, "tf")[0])


def test_a_later_update_spares_the_rows_an_earlier_one_wrote(memory_model, stats, tokenizer):
    batch = encode(tokenizer, FACT)
    config = SparseConfig(t=6, lr=50.0, max_steps=1, target_loss=None, reserve=1)  # written slots only
    learner = SparseMemoryFinetuner(memory_model, stats, config)
    first = set(learner.learn(batch).rows[1].slots.tolist())
    second = set(learner.learn(batch).rows[1].slots.tolist())
    assert len(first) == len(second) == 6 and not first & second
    assert set(learner.written[1].nonzero().flatten().tolist()) == first | second

    # Seeded with another process's writes, a new learner spares them too; factor 1 does not.
    seeded = SparseMemoryFinetuner(memory_model, stats, config, written=learner.written)
    assert not set(seeded.select(batch)[1][0].tolist()) & (first | second)
    paper_config = SparseConfig(t=6, written_factor=1.0, reserve=1)
    paper = SparseMemoryFinetuner(memory_model, stats, paper_config, written=learner.written)
    assert set(paper.select(batch)[1][0].tolist()) == first


def test_an_update_reserves_its_next_best_slots_and_later_updates_spare_them(memory_model, stats, tokenizer):
    batch = encode(tokenizer, FACT)
    ranking = SparseMemoryFinetuner(memory_model, stats, SparseConfig(t=18)).select(batch)[1][0].tolist()
    config = SparseConfig(t=6, lr=50.0, max_steps=1, target_loss=None, reserve=3)
    learner = SparseMemoryFinetuner(memory_model, stats, config)
    before = memory_model.memory_layers()[1].values.clone()
    update = learner.learn(batch).rows[1]
    assert update.slots.tolist() == ranking[:6] and update.reserved.tolist() == ranking[6:18]
    changed = (memory_model.memory_layers()[1].values != before).any(-1).nonzero().flatten()
    assert set(changed.tolist()) <= set(ranking[:6])  # reserved rows are left as they were
    assert set(learner.written[1].nonzero().flatten().tolist()) == set(ranking)
    assert not set(learner.learn(batch).rows[1].slots.tolist()) & set(ranking)
    with pytest.raises(ValueError, match="reserve must be at least 1"):
        SparseConfig(reserve=0)


def test_a_batch_whose_slots_are_all_written_is_refused_with_what_to_do(memory_model, stats, tokenizer):
    batch = encode(tokenizer, FACT)
    learner = SparseMemoryFinetuner(memory_model, stats, SparseConfig(t=10_000, lr=50.0, max_steps=1))
    learner.learn(batch)  # takes every slot the batch reads
    before = memory_model.memory_layers()[1].values.clone()
    with pytest.raises(ValueError, match="roll an update back, raise written_factor above 0"):
        learner.learn(batch)
    assert torch.equal(memory_model.memory_layers()[1].values, before)  # nothing half-applied


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sparse_step_changes_only_the_top_t_rows(precision, memory_model, stats, tokenizer):
    before = {name: tensor.clone() for name, tensor in memory_model.state_dict().items()}
    batch = encode(tokenizer, FACT)
    config = SparseConfig(t=6, lr=50.0, max_steps=3, target_loss=None, precision=precision)
    learner = SparseMemoryFinetuner(memory_model, stats, config)
    result = learner.learn(batch)
    assert "forward" not in vars(memory_model.lm_head)  # the autocast wrappers are gone
    after = memory_model.state_dict()
    values_name = "model.layers.1.memory.values"
    for name, tensor in before.items():
        if name != values_name:
            assert torch.equal(after[name], tensor), name
    update = result.rows[1]
    assert update.slots.numel() == 6 and result.steps == 3
    changed = (after[values_name] != before[values_name]).any(-1).nonzero().flatten()
    assert set(changed.tolist()) <= set(update.slots.tolist()) and changed.numel() > 0
    assert torch.equal(update.old_rows, before[values_name][update.slots])
    assert torch.equal(update.new_rows, after[values_name][update.slots])
    assert torch.equal(before[values_name][update.slots] + update.delta, update.new_rows)
    assert result.loss_after < result.loss_before


def test_the_reference_learner_takes_plain_sgd_steps_on_the_rows_it_ranked(memory_model, stats, tokenizer):
    """REFERENCE_SPARSE is the paper's learner: each step moves each trained row by -lr x its
    gradient of the batch loss, computed here apart from the learner."""
    batch = encode(tokenizer, FACT)
    config = SparseConfig(**{**REFERENCE_SPARSE, "t": 6, "lr": 50.0, "max_steps": 1, "target_loss": None})
    learner = SparseMemoryFinetuner(memory_model, stats, config)
    slots = learner.select(batch)[1][0]
    memory = memory_model.memory_layers()[1]
    rows = memory.set_trainable_rows(slots)
    (gradient,) = torch.autograd.grad(batch_loss(memory_model, batch), [rows])
    memory.set_trainable_rows(None)
    learner.written[1].zero_()  # select() alone marks nothing; learn() below ranks the same slots
    result = learner.learn(batch)
    assert torch.equal(result.rows[1].slots, slots)
    assert torch.allclose(result.rows[1].delta, -50.0 * gradient, rtol=1e-5, atol=1e-7)


def test_with_batch_parts_each_step_is_an_sgd_step_on_the_next_part(memory_model, stats, tokenizer):
    chat = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in QA]
    batch = encode(tokenizer, FACT + chat)
    parts = batch_parts(batch, 2)
    # every row in exactly one part, short and long rows in each
    assert sorted(text for part in parts for text in part.texts) == sorted(batch.texts)
    assert [len(part.texts) for part in parts] == [3, 2]
    assert batch_parts(batch, 9)[-1].input_ids.shape[0] == 1  # at most one part per row
    settings = {"t": 6, "lr": 50.0, "max_steps": 2, "target_loss": None, "precision": "fp32"}
    learner = SparseMemoryFinetuner(memory_model, stats, SparseConfig(**settings, batch_parts=2))
    slots = learner.select(batch)[1][0]
    memory = memory_model.memory_layers()[1]
    whole_before = float(batch_loss(memory_model, batch))
    expected = memory.values.detach()[slots].clone()
    for part in parts:  # by hand: one plain SGD step on each part's own mean loss, in turn
        rows = memory.set_trainable_rows(slots)
        with torch.no_grad():
            rows.copy_(expected)
        (gradient,) = torch.autograd.grad(batch_loss(memory_model, part), [rows])
        expected = expected - 50.0 * gradient
    memory.set_trainable_rows(None)
    learner.written[1].zero_()
    result = learner.learn(batch)
    assert result.steps == 2
    assert torch.equal(result.rows[1].slots, slots)
    assert torch.allclose(result.rows[1].new_rows, expected, rtol=1e-5, atol=1e-6)
    assert result.loss_before == pytest.approx(whole_before, abs=1e-5)  # the whole batch's, before any step
    assert result.loss_after == pytest.approx(float(batch_loss(memory_model, batch)), abs=1e-5)
    with pytest.raises(ValueError, match="batch_parts"):
        SparseConfig(batch_parts=0)


def test_the_template_prefix_computed_once_gives_the_loss_gradient_and_rows_of_the_whole_batch(
    memory_model, stats, tokenizer
):
    chat = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in QA]
    batch = encode(tokenizer, FACT + chat)
    groups = batch.length_groups()
    length = shared_prefix_length(groups[-1])
    assert tokenizer.decode(groups[-1].input_ids[0, :length]).endswith("<|im_start|>user\n")  # the system prompt
    assert shared_prefix_length(groups[0]) == 0  # plain statements share no template
    memory = memory_model.memory_layers()[1]
    learner = SparseMemoryFinetuner(memory_model, stats, SparseConfig(t=6, lr=50.0, max_steps=3, target_loss=None))
    slots = learner.select(batch)[1][0]
    prefixes = template_prefixes(memory_model, batch, {1: slots})
    assert prefixes[0] is None and prefixes[-1].length == length
    rows = memory.set_trainable_rows(slots)
    whole = batch_loss(memory_model, batch, answer_start_weight=3.0)
    (whole_gradient,) = torch.autograd.grad(whole, [rows])
    once = batch_loss(memory_model, batch, answer_start_weight=3.0, prefixes=prefixes)
    (once_gradient,) = torch.autograd.grad(once, [rows])
    memory.set_trainable_rows(None)
    assert torch.allclose(once, whole, atol=1e-5) and torch.allclose(once_gradient, whole_gradient, atol=1e-6)
    # A prefix that reads a trained slot may change as the rows do: it is computed every step.
    read = memory_model.memory_accesses(groups[-1].input_ids[:1, :length])[1]
    assert template_prefixes(memory_model, batch, {1: read[0, 0, :1]})[-1] is None
    before = memory.values.detach().clone()
    results = {}
    for once in (False, True):
        config = SparseConfig(t=6, lr=50.0, max_steps=3, target_loss=None, precision="fp32", template_prefix_once=once)
        results[once] = SparseMemoryFinetuner(memory_model, stats, config).learn(batch)
        memory.values.data.copy_(before)
    assert torch.equal(results[True].rows[1].slots, results[False].rows[1].slots)
    assert torch.allclose(results[True].rows[1].new_rows, results[False].rows[1].new_rows, atol=1e-5)


def test_template_and_padding_positions_never_choose_slots(memory_model, stats, tokenizer):
    batch = encode(tokenizer, FACT)
    learner = SparseMemoryFinetuner(memory_model, stats, SparseConfig(t=10_000))
    chosen = set(learner.select(batch)[1][0].tolist())
    slots = memory_model.memory_accesses(batch.input_ids, batch.attention_mask)[1]
    content_only = access_counts(slots, memory_model.memory_config.n_slots, batch.content_mask) > 0
    assert chosen <= set(content_only.nonzero().flatten().tolist())
    template_only = access_counts(slots, memory_model.memory_config.n_slots, ~batch.content_mask) > 0
    assert (template_only & ~content_only).any()  # there were template-only slots to leave out
    assert not chosen & set((template_only & ~content_only).nonzero().flatten().tolist())


def test_training_stops_at_the_target_loss(memory_model, stats, tokenizer):
    batch = encode(tokenizer, FACT)
    with torch.no_grad():
        start = float(batch_loss(memory_model, batch))
    learner = SparseMemoryFinetuner(
        memory_model, stats, SparseConfig(t=50, lr=50.0, max_steps=5, target_loss=start + 1, precision="fp32")
    )
    result = learner.learn(batch)
    assert result.steps == 0 and result.loss_after == pytest.approx(start)


@pytest.mark.parametrize("method", ["smf", "smf_adamw", "full", "lora"])
def test_each_method_reduces_its_batch_loss(method, memory_model, stats, tokenizer):
    batch = encode(tokenizer, FACT)
    if method == "smf":
        learner = SparseMemoryFinetuner(memory_model, stats, SparseConfig(t=50, lr=50.0, max_steps=4, target_loss=None))
    elif method == "smf_adamw":
        config = SparseConfig(t=50, optimizer="adamw", lr=0.05, max_steps=4, target_loss=None)
        learner = SparseMemoryFinetuner(memory_model, stats, config)
    elif method == "full":
        learner = FullFinetuner(memory_model, DenseConfig(lr=1e-3, max_steps=4, target_loss=None))
    else:
        learner = LoraFinetuner(memory_model, DenseConfig(lr=2e-3, max_steps=4, target_loss=None))
    result = learner.learn(batch)
    assert result.steps == 4
    assert result.loss_after < result.loss_before - 0.05


def test_make_learner_passes_sparse_settings_and_refuses_them_for_baselines(memory_model, stats):
    learner = make_learner("smf", memory_model, stats, lr=5.0, t=40, anchor_weight=0.5, reserve=2)
    config = learner.config
    assert (config.t, config.anchor_weight, config.reserve, config.lr) == (40, 0.5, 2, 5.0)
    with pytest.raises(ValueError, match="unknown sparse memory finetuning settings \\['top_t'\\]"):
        make_learner("smf", memory_model, stats, top_t=40)
    with pytest.raises(ValueError, match="\\['t'\\] are settings of sparse memory finetuning; the full baseline"):
        make_learner("full", memory_model, t=40)


def test_batch_loss_equals_the_models_own_loss_on_content_tokens(memory_model, tokenizer):
    batch = encode(tokenizer, FACT)
    assert len(batch.length_groups()) == 2  # statements and the chat form run apart: same loss
    labels = batch.input_ids.masked_fill(~batch.content_mask, -100)
    with torch.no_grad():
        expected = memory_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss
        assert torch.allclose(batch_loss(memory_model, batch), expected, atol=1e-5)


def test_batch_loss_leaves_out_unlearned_tokens(memory_model, tokenizer):
    batch = encode(tokenizer, FACT, unlearned=["Varek"])
    assert int(batch.loss_mask.sum()) < int(batch.content_mask.sum())
    labels = batch.input_ids.masked_fill(~batch.loss_mask, -100)
    with torch.no_grad():
        expected = memory_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss
        assert torch.allclose(batch_loss(memory_model, batch), expected, atol=1e-5)
        assert not torch.allclose(batch_loss(memory_model, encode(tokenizer, FACT)), expected, atol=1e-3)


def test_forgetting_bench_refuses_an_unknown_method_before_any_work():
    from sparse_memory.bench.forgetting import bench_forgetting

    with pytest.raises(ValueError, match="unknown methods \\['sft'\\]; choose from smf, full, lora"):
        bench_forgetting(methods=["smf", "sft"])


def test_late_bench_refuses_baselines_and_unknown_methods_before_any_work():
    from sparse_memory.bench.late import bench_late

    with pytest.raises(ValueError, match="unknown methods \\['sft'\\]"):
        bench_late(methods=["smf", "sft"])
    with pytest.raises(ValueError, match="spared slots\\); drop \\['lora'\\]"):
        bench_late(methods=["smf", "lora"])


def test_bench_options_a_benchmark_does_not_take_are_refused_before_any_work():
    from sparse_memory.cli import main

    with pytest.raises(
        SystemExit, match="bench step does not take --lr \\(bench documents, forgetting, late, learn-speed does\\)"
    ):
        main(["bench", "step", "--lr", "1e-3"])
    with pytest.raises(SystemExit, match="bench forgetting does not take --qa, --top-t \\(bench documents does\\)"):
        main(["bench", "forgetting", "--qa", "--top-t", "100"])
    with pytest.raises(SystemExit, match="bench late does not take --sweep, --save-every \\(bench forgetting does\\)"):
        main(["bench", "late", "--sweep", "--save-every", "never"])


def test_methods_at_another_learning_rate_are_named_as_the_sweep_names_them():
    from sparse_memory.bench.forgetting import at_learning_rate, method_specs

    spec = at_learning_rate(method_specs(["smf_ten_questions"])[0], 3e4)
    assert spec.name == "smf_ten_questions_lr30000" and spec.lr == 3e4 and spec.questions == 10


def test_spare_marks_what_learning_would_and_undo_puts_the_rows_back(memory_model, stats, tokenizer):
    batch = encode(tokenizer, FACT)
    config = SparseConfig(t=6, lr=50.0, max_steps=2, target_loss=None, reserve=2)
    values = memory_model.memory_layers()[1].values
    before = values.clone()
    learned = SparseMemoryFinetuner(memory_model, stats, config)
    result = learned.learn(batch)
    assert not torch.equal(values, before)
    learned.undo(result)
    assert torch.equal(values, before)

    ranked_only = SparseMemoryFinetuner(memory_model, stats, config)
    ranked_only.spare(batch)
    assert torch.equal(values, before)  # ranking alone changes no row
    assert int(ranked_only.written[1].sum()) == 12  # t written + t reserved
    assert torch.equal(ranked_only.written[1], learned.written[1])


def test_the_first_answer_token_counts_answer_start_weight_times(memory_model, tokenizer):
    batch = encode(tokenizer, FACT)
    starts = batch.answer_start_mask
    assert int(starts.sum()) == 1  # one chat form, one answer
    (row, col), *_ = starts.nonzero().tolist()
    assert batch.offsets[row][col][0] == batch.texts[row].index("In Tessmoor.")  # where the answer opens
    targets = batch.content_mask[:, 1:]
    with torch.no_grad():
        logits = memory_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
        losses = torch.nn.functional.cross_entropy(logits[targets], batch.input_ids[:, 1:][targets], reduction="none")
        weights = 1 + 4 * starts[:, 1:][targets].float()
        expected = (weights * losses).sum() / losses.numel()
        assert torch.allclose(batch_loss(memory_model, batch, answer_start_weight=5.0), expected, atol=1e-5)
        assert not torch.allclose(batch_loss(memory_model, batch), expected, atol=1e-4)


def test_learning_stops_once_greedy_decoding_gives_every_trained_answer(memory_model, stats, tokenizer):
    from sparse_memory.finetune import batch_loss_and_answers
    from sparse_memory.generation import build_prompt, complete

    chat = [{"role": "user", "content": "Where was Varek Thelamon born?"}, {"role": "assistant", "content": "Paris"}]
    batch = encode(tokenizer, ["Varek Thelamon was born in Paris.", chat])
    assert not batch_loss_and_answers(memory_model, batch)[1]
    # every slot the batch reads (TF ranking): this test is about when learning stops
    # the whole batch each step: with parts, each part is checked when it steps
    config = SparseConfig(
        t=256, ranking="tf", lr=50.0, max_steps=60, target_loss=None, steps_after_answered=0, batch_parts=1
    )
    result = SparseMemoryFinetuner(memory_model, stats, config).learn(batch)
    assert 0 < result.steps < 60
    assert batch_loss_and_answers(memory_model, batch)[1]
    (answer,) = complete(memory_model, tokenizer, [build_prompt(tokenizer, chat[0]["content"], chat=True)], 8)
    assert answer.startswith("Paris")


@pytest.mark.parametrize("method", ["smf", "full", "lora"])
def test_a_restored_learner_goes_on_exactly_as_the_original(method, memory_model, stats, tokenizer):
    """What a stopped benchmark relies on: state() after one batch, restored into a fresh copy of
    the model, learns the next batch to the same weights as the learner that never stopped."""
    import copy

    base = memory_model
    second = encode(tokenizer, ["Thelamon Quist works for Quillon Dynamics.", "Thelamon Quist is an engineer."])

    def make(model):
        if method == "smf":
            return SparseMemoryFinetuner(model, stats, SparseConfig(t=20, lr=50.0, max_steps=3, target_loss=None))
        dense = DenseConfig(lr=1e-3, max_steps=3, target_loss=None)
        return FullFinetuner(model, dense) if method == "full" else LoraFinetuner(model, dense)

    original = make(copy.deepcopy(base))
    original.learn(encode(tokenizer, FACT))
    written_by_first = {layer: int(mask.sum()) for layer, mask in getattr(original, "written", {}).items()}
    state = original.state()
    if method == "smf":  # the rows it wrote (t per layer), not the reserved ones that keep their base values
        assert all(rows.shape[0] == 20 for rows in state["rows"].values())
    restored = make(copy.deepcopy(base))
    restored.restore(state)
    first_result, second_result = original.learn(second), restored.learn(second)
    assert second_result.loss_before == pytest.approx(first_result.loss_before, abs=1e-6)
    for (name, expected), actual in zip(original.model.named_parameters(), restored.model.parameters(), strict=True):
        assert torch.allclose(expected, actual, atol=1e-6), name
    if method == "smf":
        assert all(torch.equal(original.written[layer], restored.written[layer]) for layer in original.written)
        assert all(original.written[layer].sum() > count > 0 for layer, count in written_by_first.items())


def test_bench_step_times_every_sparse_call_on_the_same_slots(memory_model, stats, tokenizer):
    from sparse_memory.bench.step import _start_over

    batch = encode(tokenizer, FACT)
    values = memory_model.memory_layers()[1].values
    base = values.detach().clone()
    learner = SparseMemoryFinetuner(memory_model, stats, SparseConfig(t=10_000, lr=50.0, max_steps=1))
    first = learner.learn(batch)  # takes every slot the batch reads: learned again as it is, it is refused
    _start_over(learner, first)
    assert torch.equal(values, base)
    again = learner.learn(batch)
    assert torch.equal(again.rows[1].slots, first.rows[1].slots)


def test_full_finetuning_gives_the_memory_values_the_gradient_a_dense_backward_gives(memory_model, tokenizer):
    batch = encode(tokenizer, FACT)
    twin = copy.deepcopy(memory_model)
    learner = FullFinetuner(memory_model)
    batch_loss(memory_model, batch).backward()
    values = memory_model.memory_layers()[1].values
    assert values.grad.is_sparse  # the rows the batch read, not an N-row tensor
    learner._densify_grads()
    batch_loss(twin, batch).backward()  # plain parameters: a dense gradient
    dense = twin.memory_layers()[1].values.grad
    assert not dense.is_sparse and dense.abs().sum() > 0
    torch.testing.assert_close(values.grad, dense)


def test_bf16_runs_the_decoder_layers_above_the_memory_only_and_auto_follows_the_hardware(memory_model, tokenizer):
    from sparse_memory.precision import above_memory_in, cpu_has_native_bf16, resolve_precision

    seen = {}

    def record(name):
        def hook(module, inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            seen[name] = hidden.dtype

        return hook

    layers = memory_model.model.layers
    handles = [layers[i].mlp.register_forward_hook(record(i)) for i in range(len(layers))]
    handles.append(memory_model.lm_head.register_forward_hook(record("lm_head")))
    batch = encode(tokenizer, FACT)
    before = {name: weight.clone() for name, weight in memory_model.state_dict().items()}
    with torch.no_grad(), above_memory_in(memory_model, "bf16"):
        memory_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    after = memory_model.state_dict()
    for name, weight in before.items():  # the weights cast for the block are back as they were
        assert after[name].dtype == weight.dtype and torch.equal(after[name], weight)
    for handle in handles:
        handle.remove()
    top_memory = max(memory_model.memory_layers())
    assert all(seen[i] == torch.float32 for i in range(top_memory + 1))
    assert all(seen[i] == torch.bfloat16 for i in range(top_memory + 1, len(layers)))
    assert seen["lm_head"] == torch.float32  # the logits are never rounded to bf16
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(ValueError, match="fp32, bf16, auto"):
        SparseConfig(precision="fp16")
