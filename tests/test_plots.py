from sparse_memory.bench.plots import (
    _default_settings_but_lr,
    plot_learned_vs_retention,
    plot_learning_along_the_stream,
    plot_pareto,
)


def _run(kind, lr, learned, kept):
    return {
        "kind": kind,
        "lr": lr,
        "learned_f1": learned,
        "retention_f1_before": 1.0,
        "retention_f1_after": kept,
        "facts": 20,
        "t": 500 if kind == "smf" else None,
        "ranking": "tfidf" if kind == "smf" else None,
        "written_factor": 0.0 if kind == "smf" else None,
        "reserve": 4 if kind == "smf" else None,
    }


def test_plots_are_written(tmp_path):
    runs = {
        "smf": _run("smf", 1e4, 0.6, 0.95),
        "full": _run("full", 1e-5, 0.6, 0.3),
        "lora": _run("lora", 1e-4, 0.5, 0.5),
    }
    sweep = dict(runs, smf_lr3000=_run("smf", 3e3, 0.3, 0.99))
    runs["smf"]["learned_f1_own_per_fact"] = [1.0, 0.5, 0.0] * 10
    written = (
        plot_learned_vs_retention(runs, tmp_path / "a.png"),
        plot_pareto(sweep, tmp_path / "b.png"),
        plot_learning_along_the_stream(runs, tmp_path / "c.png"),
    )
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_pareto_front_holds_only_runs_at_default_settings_but_their_learning_rate():
    smf = _run("smf", 3e4, 0.5, 0.9)
    assert _default_settings_but_lr(smf)
    assert _default_settings_but_lr(_run("full", 3e-5, 0.5, 0.2))
    assert not _default_settings_but_lr(smf | {"reserve": 1})
    assert not _default_settings_but_lr(smf | {"t": 50})
    assert not _default_settings_but_lr(smf | {"answers": "varied"})
    assert not _default_settings_but_lr(smf | {"questions": 10})
    assert _default_settings_but_lr(smf | {"questions": 5})
    before_sparing = {key: value for key, value in smf.items() if key != "written_factor"}
    assert not _default_settings_but_lr(before_sparing)  # runs from before sparing rewrote slots
