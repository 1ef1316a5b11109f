"""``bench forgetting`` on a tiny saved model: a run stopped part way goes on where it stopped."""

import pytest

from sparse_memory.bench import forgetting
from sparse_memory.bench.forgetting import MethodSpec, run_method
from sparse_memory.data.facts import make_facts


def test_a_stopped_run_goes_on_from_the_next_fact_and_ends_as_an_unstopped_one(tiny_checkpoint, tmp_path, monkeypatch):
    spec = MethodSpec("smf", "smf", lr=50.0, t=16)
    facts = make_facts(3, seed=0)
    wiki = ["The quick brown fox jumps over the lazy dog."]
    before = {"learned_f1": 0.0, "retention_f1": 1.0, "nll": 5.0}

    def run(progress_path):
        return run_method(spec, tiny_checkpoint, "cpu", facts, [], wiki, 2, before, progress_path)

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
    resumed = run(progress_path)

    assert resumed["steps"] == unstopped["steps"] == 6  # 3 facts x 2 steps: none taken twice
    assert resumed["rows_changed"] == unstopped["rows_changed"] > 0
    assert resumed["learned_f1_own_per_fact"] == unstopped["learned_f1_own_per_fact"]
    assert resumed["mean_loss_after"] == pytest.approx(unstopped["mean_loss_after"], abs=1e-5)
    assert resumed["nll_after"] == pytest.approx(unstopped["nll_after"], abs=1e-5)  # the same rows, restored
