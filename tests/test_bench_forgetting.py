"""``bench forgetting`` on a tiny saved model: a run stopped part way goes on where it stopped."""

import json

import pytest

from sparse_memory.bench import forgetting
from sparse_memory.bench.forgetting import MethodSpec, matched_baselines, measured_runs, method_specs, run_method
from sparse_memory.cli import build_parser
from sparse_memory.data.facts import FACT_QUESTIONS, make_facts, statements


def test_a_stopped_run_goes_on_from_the_next_fact_and_ends_as_an_unstopped_one(tiny_checkpoint, tmp_path, monkeypatch):
    spec = MethodSpec("smf", "smf", lr=50.0, t=16)
    facts = make_facts(3, seed=0)
    wiki = ["The quick brown fox jumps over the lazy dog."]
    before = {"learned_f1": 0.0, "retention_f1": 1.0, "nll": 5.0}

    def run(progress_path):
        # Saved after every fact (by default at most once a minute), so the stop below finds one.
        fact_log = progress_path.with_suffix(".facts.jsonl")
        return run_method(
            spec, tiny_checkpoint, "cpu", facts, [], wiki, 2, before, progress_path, fact_log, progress_every_s=0
        )

    def logged(progress_path):
        lines = progress_path.with_suffix(".facts.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]

    unstopped = run(tmp_path / "unstopped.progress.pt")

    real_scores, calls = forgetting.learned_scores, []

    def stop_after_the_first_fact(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_scores(*args)

    monkeypatch.setattr(forgetting, "learned_scores", stop_after_the_first_fact)
    progress_path = tmp_path / "stopped.progress.pt"
    with pytest.raises(KeyboardInterrupt):
        run(progress_path)
    monkeypatch.setattr(forgetting, "learned_scores", real_scores)
    # As if fact 1 had been logged after the last save: it is learned again, so its line must go.
    with progress_path.with_suffix(".facts.jsonl").open("a") as log:
        log.write(json.dumps({"fact": 1, "own_f1": -1.0}) + "\n")
    resumed = run(progress_path)

    assert resumed["steps"] == unstopped["steps"] == 6  # 3 facts x 2 steps: none taken twice
    assert resumed["rows_changed"] == unstopped["rows_changed"] > 0
    assert resumed["learned_f1_own_per_fact"] == unstopped["learned_f1_own_per_fact"]
    assert resumed["mean_loss_after"] == pytest.approx(unstopped["mean_loss_after"], abs=1e-5)
    assert resumed["nll_after"] == pytest.approx(unstopped["nll_after"], abs=1e-5)  # the same rows, restored
    # One line per fact, in order, none twice: the line past the saved state was dropped.
    assert [line["fact"] for line in logged(progress_path)] == [0, 1, 2]
    assert logged(progress_path) == logged(tmp_path / "unstopped.progress.pt")
    assert [line["own_f1"] for line in logged(progress_path)] == resumed["learned_f1_own_per_fact"]


def test_save_every_never_saves_nothing_and_the_command_line_takes_seconds_or_never(tiny_checkpoint, tmp_path):
    spec = MethodSpec("smf", "smf", lr=50.0, t=16)
    facts, wiki = make_facts(2, seed=0), ["The quick brown fox jumps over the lazy dog."]
    before = {"learned_f1": 0.0, "retention_f1": 1.0, "nll": 5.0}
    progress_path = tmp_path / "run.progress.pt"
    fact_log = tmp_path / "run.facts.jsonl"
    run_method(spec, tiny_checkpoint, "cpu", facts, [], wiki, 1, before, progress_path, fact_log, progress_every_s=None)
    assert not progress_path.exists()
    assert len(fact_log.read_text().splitlines()) == 2  # the log is kept either way

    def save_every(*option):
        return build_parser().parse_args(["bench", "forgetting", *option]).save_every_s

    assert save_every() == 60.0
    assert save_every("--save-every", "never") is None
    assert save_every("--save-every", "0") == 0.0
    with pytest.raises(SystemExit):
        save_every("--save-every", "-5")


def _run(kind, lr, learned_f1):
    return {"kind": kind, "lr": lr, "learned_f1": learned_f1}


def test_measure_lists_each_known_fact_no_longer_answered_right_with_its_reply(tiny_checkpoint, monkeypatch):
    from sparse_memory import evaluation
    from sparse_memory.data.real_facts import QAItem
    from sparse_memory.prepare import load_memory_model

    model, tokenizer = load_memory_model(tiny_checkpoint, "cpu")
    kept = QAItem("What is the capital of Australia?", ("Canberra",), "countryinfo", "")
    lost = QAItem("What is the chemical symbol of gold?", ("Au",), "mendeleev", "")
    replies = {kept.question: "The capital of Australia is Canberra.", lost.question: "It is silver."}
    monkeypatch.setattr(evaluation, "ask", lambda model, tokenizer, questions: [replies[q] for q in questions])

    scores = forgetting.measure(model, tokenizer, [], [kept, lost], ["A short held-out text."])

    assert scores["retention_f1"] == pytest.approx(0.5)
    assert scores["retention_lost"] == [
        {"question": lost.question, "answers": ["Au"], "reply": "It is silver.", "f1": 0.0}
    ]


def test_answer_start_exposure_counts_the_questions_whose_answer_start_reads_a_written_row(tiny_checkpoint):
    import torch

    from sparse_memory.data.real_facts import QAItem
    from sparse_memory.prepare import load_memory_model
    from sparse_memory.text import encode

    model, tokenizer = load_memory_model(tiny_checkpoint, "cpu")
    questions = ["What is the capital of France?", "Which chemical element has the symbol Au in the table?"]
    items = [QAItem(question, ("x",), "countryinfo", "") for question in questions]
    (layer,) = model.memory_layers()
    n_slots = model.memory_config.n_slots

    def answer_start_reads(question):  # asked alone: no padding, the answer starts after the last token
        batch = encode(tokenizer, [[{"role": "user", "content": question}]], add_generation_prompt=True)
        return set(model.memory_accesses(batch.input_ids, batch.attention_mask)[layer][0, -1].tolist())

    first, second = (answer_start_reads(q) for q in questions)
    written = torch.zeros(n_slots, dtype=torch.bool)
    assert forgetting.answer_start_exposure(model, tokenizer, items, {layer: written}) == 0.0
    written[sorted(first - second)] = True  # asked together, the shorter question is padded
    assert forgetting.answer_start_exposure(model, tokenizer, items, {layer: written}) == 0.5
    written[sorted(second)] = True
    assert forgetting.answer_start_exposure(model, tokenizer, items, {layer: written}) == 1.0


def test_baselines_are_compared_at_the_measured_learning_rate_closest_to_smf_in_learning(tmp_path):
    runs_dir = tmp_path / "forgetting_runs"
    runs_dir.mkdir()
    saved = {
        "full_lr1e-05_lr1e-05_facts100_steps30": _run("full", 1e-5, 0.20),
        "full_lr3e-05_lr3e-05_facts100_steps30": _run("full", 3e-5, 0.45),
        "lora_lr0.0001_facts100_steps30": _run("lora", 1e-4, 0.10),
        "full_lr3e-05_lr3e-05_facts20_steps30": _run("full", 3e-5, 0.52),  # another fact count
        "full_lr3e-06_lr3e-06_facts100_steps30": _run("full", 3e-6, 0.50) | {"memory_slots": 1024},  # another memory
    }
    for stem, run in saved.items():
        (runs_dir / f"{stem}.json").write_text(json.dumps(run))
    measured = measured_runs(runs_dir, 100, 30, n_slots=65_536)
    assert sorted(measured) == ["full_lr1e-05_lr1e-05", "full_lr3e-05_lr3e-05", "lora_lr0.0001"]

    methods = {"smf": _run("smf", 1e4, 0.50), "full": _run("full", 1e-5, 0.20), "lora": _run("lora", 1e-4, 0.10)}
    matched = matched_baselines(methods, measured)
    assert matched["full"]["lr"] == 3e-5  # 0.45 is nearer 0.50 than the default rate's 0.20
    assert matched["lora"]["lr"] == 1e-4  # the only rate measured
    assert matched["smf"] is methods["smf"]
    assert "full" not in matched_baselines({"smf": methods["smf"]}, measured)  # only the methods asked for


def test_bench_late_learns_each_late_fact_from_the_spared_slots_and_leaves_the_model_as_it_was(tiny_checkpoint):
    import torch

    from sparse_memory.bench.late import learn_late
    from sparse_memory.prepare import load_memory_model
    from sparse_memory.slots import BackgroundStats

    model, tokenizer = load_memory_model(tiny_checkpoint, "cpu")
    stats = BackgroundStats.load(tiny_checkpoint)
    values = model.memory_layers()[1].values
    before = values.clone()
    stream = make_facts(3, seed=0)
    spared = learn_late(MethodSpec("smf", "smf", lr=50.0, t=4, reserve=2), model, tokenizer, stats, stream, 2, 2)
    assert torch.equal(values, before)  # every late fact undone
    assert len(spared["learned_f1_own_per_fact"]) == 1 and spared["steps"] == 2
    assert 0 < spared["spared_slots"] <= 2 * 4 * 2  # two facts, each writing 4 and reserving 4
    nothing_spared = learn_late(
        MethodSpec("smf", "smf", lr=50.0, t=4, written_factor=1.0), model, tokenizer, stats, stream, 0, 2
    )
    assert nothing_spared["spared_slots"] == 0


def test_each_method_learns_a_fact_from_the_batch_its_spec_describes(tokenizer):
    fact = make_facts(1, seed=4)[0]
    questions_asked = {}
    for spec in method_specs(["smf", "smf_ten_questions"]):
        batch = spec.batch(tokenizer, fact)
        questions_asked[spec.name] = sum(len(spans) == 2 for spans in batch.content_spans)  # a question and its answer
        assert len(batch.texts) == len(statements(fact)) + questions_asked[spec.name]
    assert questions_asked == {"smf": FACT_QUESTIONS, "smf_ten_questions": 10}


def test_a_spec_passes_its_optimizer_and_template_sparing_to_the_sparse_learner(tiny_checkpoint):
    from sparse_memory.prepare import load_memory_model
    from sparse_memory.slots import BackgroundStats

    model, _ = load_memory_model(tiny_checkpoint, "cpu")
    stats = BackgroundStats.load(tiny_checkpoint)
    (default, adamw, spare_template) = method_specs(["smf", "smf_adamw", "smf_spare_template"])
    assert default.learner(model, stats, 2).config.optimizer == "sgd"
    assert adamw.learner(model, stats, 2).config.optimizer == "adamw"
    assert not default.learner(model, stats, 2).config.spare_template_reads
    assert spare_template.learner(model, stats, 2).config.spare_template_reads


def test_an_anchored_run_builds_the_anchor_index_beside_the_model_once(tiny_checkpoint, tmp_path):
    import shutil

    from sparse_memory.anchors import ANCHOR_FILE

    directory = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, directory)
    spec = MethodSpec("smf_anchor", "smf", lr=50.0, t=16, anchor_windows=2)
    assert method_specs(["smf_anchor"])[0].anchor_windows > 0
    before = {"learned_f1": 0.0, "retention_f1": 1.0, "nll": 5.0}
    wiki = ["The quick brown fox jumps over the lazy dog."]
    for run in ("first", "second"):
        progress = tmp_path / f"{run}.progress.pt"
        result = run_method(
            spec, directory, "cpu", make_facts(1, seed=0), [], wiki, 2, before, progress, progress.with_suffix(".jsonl")
        )
        assert result["anchor_windows"] == 2 and result["steps"] == 2
        if run == "first":
            built = (directory / ANCHOR_FILE).stat().st_mtime_ns
    assert (directory / ANCHOR_FILE).stat().st_mtime_ns == built  # stored, not built again


def test_the_summary_keeps_every_method_measured_before_on_the_same_stream_and_memory(tmp_path):
    def save(name, n_facts, memory_slots):
        path = forgetting.run_file(tmp_path, forgetting.DEFAULT_METHODS[name], n_facts, 30)
        path.write_text(json.dumps({"kind": "smf", "learned_f1": 0.5, "memory_slots": memory_slots}))
        return path

    save("smf", 100, 1024)
    save("smf_anchor", 100, 1024)  # measured by an earlier command with --methods smf_anchor
    save("full", 20, 1024)  # another stream
    save("lora", 100, 65_536)  # another memory
    anchor_path = forgetting.run_file(tmp_path, forgetting.DEFAULT_METHODS["smf_anchor"], 100, 30)
    assert "_kl8" in anchor_path.name  # its settings are in its name, so no other method's run is taken for it
    assert list(forgetting.saved_methods(tmp_path, 100, 30, 1024)) == ["smf", "smf_anchor"]
    assert list(forgetting.saved_methods(tmp_path, 20, 30, 1024)) == ["full"]


def test_bench_learn_speed_learns_each_fact_alone_and_leaves_the_model_as_it_was(tiny_checkpoint):
    from functools import partial

    import torch

    from sparse_memory.bench.speed import _learn_alone, _summary
    from sparse_memory.data.augment import fact_items
    from sparse_memory.data.real_facts import all_real_facts
    from sparse_memory.evaluation import retention_f1
    from sparse_memory.finetune import SparseConfig
    from sparse_memory.precision import resolve_precision
    from sparse_memory.prepare import load_memory_model
    from sparse_memory.slots import BackgroundStats
    from sparse_memory.text import encode

    model, tokenizer = load_memory_model(tiny_checkpoint, "cpu")
    stats = BackgroundStats.load(tiny_checkpoint)
    values = model.memory_layers()[1].values
    before = values.clone()
    config = SparseConfig(t=4, lr=50.0, max_steps=3, target_loss=None, steps_after_answered=None)
    rows = []
    for fact in make_facts(2, seed=0):
        batch = encode(tokenizer, fact_items(fact))
        probe = partial(retention_f1, model, tokenizer, all_real_facts()[:2])  # the reference learner's probe
        rows.append(_learn_alone(model, tokenizer, stats, config, batch, fact, probe))
        assert torch.equal(values, before)  # each fact learned from the fresh memory
    assert [row["steps"] for row in rows] == [3, 3]
    for row in rows:
        assert row["seconds"] >= row["learn_seconds"] > row["ranking_seconds"] > 0 and row["probe_seconds"] > 0
    summary = _summary(rows, config, "cpu")
    assert summary["steps_per_fact"] == 3 and summary["precision"] == resolve_precision(config.precision, "cpu")
    assert summary["seconds_per_fact_p50"] == pytest.approx(sum(row["seconds"] for row in rows) / 2, abs=0.01)


def test_bench_learn_speed_runs_both_learners_with_their_probes(tiny_checkpoint, monkeypatch):
    from sparse_memory.bench import speed
    from sparse_memory.prepare import load_memory_model
    from sparse_memory.slots import BackgroundStats

    model, tokenizer = load_memory_model(tiny_checkpoint, "cpu")
    monkeypatch.setattr(speed, "load_prepared", lambda: (model, tokenizer, BackgroundStats.load(tiny_checkpoint)))
    result = speed.bench_learn_speed(facts=1, max_steps=2)
    assert result["facts"] == 1 and set(result["learners"]) == {"reference", "default"}
    assert result["learners"]["default"]["steps_per_fact"] <= 2
    assert result["speedup"] == pytest.approx(
        result["seconds_per_fact_p50_ref"] / result["seconds_per_fact_p50"], abs=0.01
    )


def test_the_unchanged_model_is_measured_once_per_results_directory(tiny_checkpoint, tmp_path, monkeypatch):
    from sparse_memory.prepare import load_memory_model

    model, tokenizer = load_memory_model(tiny_checkpoint, "cpu")
    facts, wiki = make_facts(2, seed=0), ["The quick brown fox jumps over the lazy dog."]
    first = forgetting.measured_before(model, tokenizer, facts, [], wiki, tmp_path)
    assert set(first) >= {"learned_f1", "retention_f1", "nll"} and first["nll"] > 0

    def not_again(*args):
        raise AssertionError("measured again")

    monkeypatch.setattr(forgetting, "measure", not_again)
    assert forgetting.measured_before(model, tokenizer, facts, [], wiki, tmp_path) == first
    with pytest.raises(AssertionError, match="measured again"):  # another stream: measured anew
        forgetting.measured_before(model, tokenizer, make_facts(3, seed=0), [], wiki, tmp_path)
