"""Plots of the learning-vs-forgetting benchmark (the paper's Figures 3 and 5 on our model)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402

from sparse_memory.data.facts import FACT_QUESTIONS  # noqa: E402
from sparse_memory.finetune import SparseConfig  # noqa: E402

COLOURS = {"smf": "tab:green", "full": "tab:red", "lora": "tab:blue"}
ABLATION_COLOURS = ["tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
ABLATION_MARKERS = ["s", "^", "D", "v", "P", "X"]


def _kind(run: dict) -> str:
    return run.get("kind", "smf")


def _save(fig, ax, title: str, path: Path) -> Path:
    """The axes both plots share: learning on x, retention on y, both F1 in [0, 1]."""
    ax.set_xlabel("learned facts: F1 on held-out questions")
    ax.set_ylabel("retention: F1 on facts the model knew")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    return _write(fig, path)


def _write(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_learned_vs_retention(runs: dict[str, dict], path: Path) -> Path:
    """One point per method: learned-fact F1 (x) against retention F1 after learning (y)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    # Named in the legend, not beside the points: ablations often land almost on top of each other.
    ablation_colours = iter(ABLATION_COLOURS * (1 + len(runs) // len(ABLATION_COLOURS)))
    ablation_markers = iter(ABLATION_MARKERS * (1 + len(runs) // len(ABLATION_MARKERS)))
    for name, run in runs.items():
        colour = COLOURS.get(name) or next(ablation_colours)
        marker = "o" if name in COLOURS else next(ablation_markers)
        point = (run["learned_f1"], run["retention_f1_after"])
        ax.scatter(*point, color=colour, marker=marker, s=60, zorder=3, label=name)
    before = next(iter(runs.values()))["retention_f1_before"]
    ax.axhline(before, color="black", linestyle=":", linewidth=1, label="retention before learning")
    return _save(fig, ax, f"{next(iter(runs.values()))['facts']} made-up facts learned in sequence", path)


def _default_settings_but_lr(run: dict) -> bool:
    """Whether a run used the default settings, its learning rate aside (runs saved before a
    setting existed lack its key: they ran as its neutral value)."""
    if run.get("answers", "sentence") != "sentence" or run.get("questions", 5) != FACT_QUESTIONS:
        return False
    if _kind(run) != "smf":
        return True
    default = SparseConfig()
    return (
        run.get("ranking") == default.ranking
        and run.get("t") == default.t
        and run.get("written_factor", 1.0) == default.written_factor  # runs before it rewrote slots
        and run.get("reserve", 1) == default.reserve
    )


def plot_pareto(runs: dict[str, dict], path: Path) -> Path:
    """Every run of smf, full and lora across learning rates: learning against forgetting."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for kind, colour in COLOURS.items():
        points = sorted(
            (r["learned_f1"], r["retention_f1_after"], r["lr"])
            for r in runs.values()
            if _kind(r) == kind and _default_settings_but_lr(r)
        )
        if not points:
            continue
        xs, ys, lrs = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", color=colour, label=kind)
        for x, y, lr in points:
            ax.annotate(f"{lr:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color=colour)
    return _save(fig, ax, "learning vs forgetting across learning rates", path)


def plot_learning_along_the_stream(runs: dict[str, dict], path: Path, window: int = 10) -> Path:
    """Each fact's F1 right after its own steps, against its place in the stream (a moving mean
    over ``window`` facts): whether later facts still find slots to learn in."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    kinds_drawn = set()
    for name, run in runs.items():
        per_fact = run.get("learned_f1_own_per_fact")
        if not per_fact:
            continue
        width = min(window, len(per_fact))
        means = [sum(per_fact[i : i + width]) / width for i in range(len(per_fact) - width + 1)]
        xs = [i + width for i in range(len(means))]  # the mean ends at this fact
        style = "--" if _kind(run) in kinds_drawn else "-"  # a second run of a method (an ablation)
        kinds_drawn.add(_kind(run))
        ax.plot(xs, means, color=COLOURS.get(_kind(run), "tab:gray"), linestyle=style, label=name)
    ax.set_xlabel("fact in the stream")
    ax.set_ylabel(f"F1 right after its own steps (mean of {window})")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper right")
    ax.set_title("learning along the stream")
    return _write(fig, path)
