"""``bench forgetting``: learn N made-up facts one after another, then measure what was learned
and what was forgotten, per method (the paper's sequential stream, Figures 3 and 5).

Learned: SQuAD F1 / exact match of the answers to held-out question templates, asked in the
chat format. Retention: F1 on real facts the base model answers correctly (probed once and
stored beside the model), and held-out Wikipedia NLL. Each (method, lr, facts) run is saved as
it finishes, so a long sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sparse_memory.anchors import AnchorIndex, anchor_index
from sparse_memory.bench import PROGRESS_EVERY_S
from sparse_memory.bench.plots import plot_learned_vs_retention, plot_learning_along_the_stream, plot_pareto
from sparse_memory.data.augment import AnswerForms, fact_items
from sparse_memory.data.facts import FACT_QUESTIONS, Fact, eval_questions, make_facts
from sparse_memory.data.real_facts import QAItem, all_real_facts
from sparse_memory.data.wikipedia import articles
from sparse_memory.evaluation import answer_slots, ask, heldout_nll, mean_scores, retention_replies, sort_known
from sparse_memory.finetune import DEFAULT_LR, SparseConfig, make_learner
from sparse_memory.precision import resolve_precision
from sparse_memory.prepare import BACKGROUND_SEED, load_memory_model, prepare
from sparse_memory.scoring import SHORT_ANSWER_VERSION
from sparse_memory.settings import CoreSettings
from sparse_memory.slots import BackgroundStats
from sparse_memory.text import EncodedBatch, encode

FACT_SEED = 2026  # the made-up people of this benchmark
RETENTION_FILE = "retention_set.json"


@dataclass(frozen=True)
class MethodSpec:
    """One column of the benchmark: a learner and its learning rate."""

    name: str
    kind: str  # smf | full | lora
    lr: float
    t: int = SparseConfig.t
    ranking: str = "tfidf"
    written_factor: float = SparseConfig.written_factor
    reserve: int = SparseConfig.reserve
    answers: AnswerForms = "sentence"  # how each training question is answered (fact_items)
    questions: int = FACT_QUESTIONS  # training questions per fact (fact_items)
    optimizer: str = SparseConfig.optimizer  # smf's: sgd | adamw
    spare_template_reads: bool = SparseConfig.spare_template_reads  # smf's (select_slots)
    anchor_windows: int = SparseConfig.anchor_windows  # smf's (sparse_memory.anchors)
    anchor_weight: float = SparseConfig.anchor_weight  # smf's
    # False: the person's name is read but never predicted by the loss (encode's ``unlearned``).
    name_loss: bool = True
    # smf's: never write a slot read where two or more real facts outside the retention set
    # predict their answers (evaluation.answer_slots).
    spare_answers: bool = False

    def batch(self, tokenizer, fact: Fact) -> EncodedBatch:
        """The training batch this method learns ``fact`` from."""
        unlearned = () if self.name_loss else (fact.subject,)
        return encode(tokenizer, fact_items(fact, self.answers, self.questions), unlearned=unlearned)

    def sparse_settings(self) -> dict:
        """The ``SparseConfig`` fields this method sets (none for the baselines)."""
        if self.kind != "smf":
            return {}
        shared = {f.name for f in fields(SparseConfig)} - {"lr"}  # lr is every method's: passed on its own
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in shared}

    def learner(
        self,
        model,
        stats: BackgroundStats,
        max_steps: int,
        anchors: AnchorIndex | None = None,
        never: dict[int, torch.Tensor] | None = None,
    ):
        settings = self.sparse_settings()
        return make_learner(self.kind, model, stats, self.lr, max_steps, anchors=anchors, never=never, **settings)


# The methods and ablations compared; learning rates from one-step probes on a fact (README).
DEFAULT_METHODS = {
    "smf": MethodSpec("smf", "smf", lr=DEFAULT_LR["smf"]),
    "full": MethodSpec("full", "full", lr=DEFAULT_LR["full"]),
    "lora": MethodSpec("lora", "lora", lr=DEFAULT_LR["lora"]),
    "smf_tfidf_t500": MethodSpec("smf_tfidf_t500", "smf", lr=DEFAULT_LR["smf"], t=500),
    "smf_tf_t500": MethodSpec("smf_tf_t500", "smf", lr=DEFAULT_LR["smf"], t=500, ranking="tf"),
    "smf_tfidf_t50": MethodSpec("smf_tfidf_t50", "smf", lr=DEFAULT_LR["smf"], t=50),
    "smf_tf_t50": MethodSpec("smf_tf_t50", "smf", lr=DEFAULT_LR["smf"], t=50, ranking="tf"),
    "smf_random": MethodSpec("smf_random", "smf", lr=DEFAULT_LR["smf"], ranking="random"),
    # The paper's ranking as it is: later facts may rewrite the slots earlier facts wrote.
    "smf_rewrite": MethodSpec("smf_rewrite", "smf", lr=DEFAULT_LR["smf"], written_factor=1.0),
    # Each fact spares only the slots it wrote, not its next best-ranked ones.
    "smf_reserve1": MethodSpec("smf_reserve1", "smf", lr=DEFAULT_LR["smf"], reserve=1),
    "smf_reserve2": MethodSpec("smf_reserve2", "smf", lr=DEFAULT_LR["smf"], reserve=2),
    # Written and reserved slots keep 0.3 of their score: a later fact may still take one it reads far more.
    "smf_soft_spare": MethodSpec("smf_soft_spare", "smf", lr=DEFAULT_LR["smf"], written_factor=0.3),
    # Four times the rows per fact (on the first, 16x smaller default memory it forgot 3x as much).
    "smf_t2000": MethodSpec("smf_t2000", "smf", lr=DEFAULT_LR["smf"], t=2000),
    # Each training question also answered with the bare answer and with a statement.
    "smf_varied_answers": MethodSpec("smf_varied_answers", "smf", lr=DEFAULT_LR["smf"], answers="varied"),
    # All ten training question templates instead of the first five (22 sequences instead of 17).
    "smf_ten_questions": MethodSpec("smf_ten_questions", "smf", lr=DEFAULT_LR["smf"], questions=10),
    # AdamW on the t rows (fresh moments per fact). On facts 1-3 learned alone it fitted less than
    # SGD in 30 steps (batch loss 2.12 at lr 0.1 and 3.35 at 0.03, SGD 1.72): its step is the same
    # size for every row, where SGD's is largest on the rows the fact reads most.
    "smf_adamw": MethodSpec("smf_adamw", "smf", lr=0.1, optimizer="adamw"),
    # No slot a chat-template token of the fact's batch reads is written (SparseConfig.spare_template_reads).
    "smf_spare_template": MethodSpec("smf_spare_template", "smf", lr=DEFAULT_LR["smf"], spare_template_reads=True),
    # Each update keeps 8 background windows that read its slots as they were (SparseConfig.anchor_windows).
    "smf_anchor": MethodSpec("smf_anchor", "smf", lr=DEFAULT_LR["smf"], anchor_windows=8),
    # No slot read where other real facts' answers are predicted is written (MethodSpec.spare_answers).
    "smf_spare_answers": MethodSpec("smf_spare_answers", "smf", lr=DEFAULT_LR["smf"], spare_answers=True),
    # The person's name is read (its slots count) but the loss never predicts it: rows are
    # trained to carry the fact, not the made-up name's spelling, which real names that share
    # its subword pieces read too ("Kisuto" for Kinshasa after 100 facts on the ungated memory).
    # On 20 facts it forgot half as much and learned half as much
    # (docs/experiments/learning-vs-forgetting.md, "The name read, not learned"): an ablation.
    "smf_no_name_loss": MethodSpec("smf_no_name_loss", "smf", lr=DEFAULT_LR["smf"], name_loss=False),
    # Both changes that learned more in screening (soft sparing then kept less at 100 facts:
    # docs/experiments/learning-vs-forgetting.md).
    "smf_soft_spare_ten_questions": MethodSpec(
        "smf_soft_spare_ten_questions", "smf", lr=DEFAULT_LR["smf"], written_factor=0.3, questions=10
    ),
}
SWEEP_LRS = {"smf": [3e3, 1e4, 3e4], "full": [3e-6, 1e-5, 3e-5], "lora": [3e-5, 1e-4, 3e-4]}


def method_specs(names: list[str]) -> list[MethodSpec]:
    """The named methods of ``DEFAULT_METHODS``, refused before any work if one is unknown."""
    unknown = sorted(set(names) - set(DEFAULT_METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(DEFAULT_METHODS)}")
    return [DEFAULT_METHODS[name] for name in names]


def at_learning_rate(spec: MethodSpec, lr: float) -> MethodSpec:
    """The method at another learning rate, named as the sweep names its runs."""
    return replace(spec, name=f"{spec.name}_lr{lr:g}", lr=lr)


def learned_scores(model, tokenizer, facts: list[Fact]) -> dict[str, float]:
    questions, golds = [], []
    for fact in facts:
        for question in eval_questions(fact):
            questions.append(question)
            golds.append((fact.answer,))
    return mean_scores(questions, ask(model, tokenizer, questions), golds)


def retention_set(model, tokenizer, directory: Path, size: int) -> list[QAItem]:
    """Real facts the (unchanged) model answers right: probed once, stored beside the model."""
    path = directory / RETENTION_FILE
    # "Answered right" depends on how the short answer is cut: a set probed with another cut is stale.
    if not path.is_file() or json.loads(path.read_text()).get("short_answer_version") != SHORT_ANSWER_VERSION:
        items = all_real_facts()
        known, unknown = sort_known(model, tokenizer, items)
        stored = {
            "known": [asdict(i) for i in known],
            "unknown": [asdict(i) for i in unknown],
            "probed": len(items),
            "short_answer_version": SHORT_ANSWER_VERSION,
        }
        path.write_text(json.dumps(stored, indent=1))
    stored = json.loads(path.read_text())["known"]
    items = [QAItem.from_dict(i) for i in stored]
    # Spread the sample over sources with a fixed stride rather than taking the first ones.
    stride = max(len(items) // size, 1)
    return items[::stride][:size]


@torch.no_grad()
def answer_start_exposure(model, tokenizer, items: list[QAItem], written: dict[int, torch.Tensor]) -> float:
    """Share of ``items``' questions, asked in the chat format, whose answer-start token (the
    last one of the prompt, after the template's assistant header) reads a slot in ``written``
    (per memory layer, bool per slot). Every answer's first token is predicted there, so a row
    read there changes how the answer begins."""
    if not items:
        return 0.0
    device = next(model.parameters()).device
    exposed = 0
    for start in range(0, len(items), 16):
        conversations = [[{"role": "user", "content": item.question}] for item in items[start : start + 16]]
        batch = encode(tokenizer, conversations, add_generation_prompt=True).to(device)
        last = batch.attention_mask.sum(1) - 1  # right-padded: each row's last real token
        hit = torch.zeros(len(conversations), dtype=torch.bool, device=device)
        for layer, reads in model.memory_accesses(batch.input_ids, batch.attention_mask).items():
            at_start = reads[torch.arange(len(conversations), device=device), last]
            hit |= written[layer].to(device)[at_start].any(dim=-1)
        exposed += int(hit.sum())
    return exposed / len(items)


def measure(model, tokenizer, facts, retention: list[QAItem], wiki: list[str]) -> dict:
    learned = learned_scores(model, tokenizer, facts)
    replies = retention_replies(model, tokenizer, retention)
    return {
        "learned_f1": learned["f1"],
        "learned_em": learned["em"],
        "learned_contains": learned["contains"],
        "retention_f1": sum(f1 for _, f1 in replies) / max(len(replies), 1),
        # What forgetting looks like: each known fact no longer answered exactly right, and its reply.
        "retention_lost": [
            {"question": item.question, "answers": list(item.answers), "reply": reply, "f1": round(f1, 3)}
            for item, (reply, f1) in zip(retention, replies, strict=True)
            if f1 < 1.0
        ],
        "nll": heldout_nll(model, tokenizer, wiki),
    }


def measured_before(model, tokenizer, facts, retention: list[QAItem], wiki: list[str], runs_dir: Path) -> dict:
    """``measure`` of the unchanged model: the same for every run on these facts, retention set,
    text and memory, so measured once per results directory (a 100-fact stream: minutes)."""
    config = model.memory_config
    name = f"before_facts{len(facts)}_retention{len(retention)}_wiki{len(wiki)}_slots{config.n_slots}_{config.gate}"
    path = runs_dir / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    before = measure(model, tokenizer, facts, retention, wiki)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(before, indent=2) + "\n")
    return before


def run_method(
    spec: MethodSpec,
    directory: Path,
    device,
    facts,
    retention,
    wiki,
    max_steps: int,
    before: dict,
    progress_path: Path,
    fact_log: Path,
    progress_every_s: float | None = PROGRESS_EVERY_S,
) -> dict:
    """Learn ``facts`` in order, then measure. After a fact, once ``progress_every_s`` have passed
    since the last save (None: never), the learner's state goes to ``progress_path``, so a run
    stopped part way (hours, for 100 facts on a CPU) goes on from there when the same command
    runs again. Each fact's own F1, steps and losses go to ``fact_log`` (one JSON line each) as
    soon as measured, so a run can be followed while it goes, and a stopped one still shows how
    far it got."""
    model, tokenizer = load_memory_model(directory, device)
    stats = BackgroundStats.load(directory)
    anchors = None
    if spec.anchor_windows:  # the background statistics' own text, read position by position
        anchors = anchor_index(model, tokenizer, directory, stats.n_batches, BACKGROUND_SEED)
    never = answer_slots(model, tokenizer, retention) if spec.kind == "smf" and spec.spare_answers else None
    learner = spec.learner(model, stats, max_steps, anchors, never)
    progress = {"done": 0, "losses": [], "steps": 0, "rows": 0, "seconds": 0.0, "own_f1": []}
    if progress_path.is_file():
        progress = torch.load(progress_path, weights_only=False)
        learner.restore(progress.pop("learner"))
        print(f"{spec.name}: going on after fact {progress['done']} of {len(facts)} ({progress_path})")
    # Lines past the saved state belong to facts that will be learned again.
    logged = fact_log.read_text().splitlines(keepends=True) if fact_log.is_file() else []
    fact_log.write_text("".join(logged[: progress["done"]]))
    last_save = time.monotonic()
    for index in tqdm(range(progress["done"], len(facts)), desc=f"learn {spec.name} lr={spec.lr:g}", unit="fact"):
        fact = facts[index]
        started = time.perf_counter()
        result = learner.learn(spec.batch(tokenizer, fact).to(device))
        progress["seconds"] += time.perf_counter() - started
        progress["losses"].append((result.loss_before, result.loss_after))
        progress["steps"] += result.steps
        progress["rows"] += sum(update.slots.numel() for update in result.rows.values())
        # Right after its own steps, before later facts can interfere: learning apart from keeping.
        progress["own_f1"].append(learned_scores(learner.model, tokenizer, [fact])["f1"])
        progress["done"] = index + 1
        line = {
            "fact": index,
            "relation": fact.relation,
            "own_f1": round(progress["own_f1"][-1], 3),
            "steps": result.steps,
            "loss_before": round(result.loss_before, 3),
            "loss_after": round(result.loss_after, 3),
            "seconds": round(progress["seconds"], 1),
        }
        with fact_log.open("a") as log:
            log.write(json.dumps(line) + "\n")
        due = progress_every_s is not None and time.monotonic() - last_save >= progress_every_s
        if due and progress["done"] < len(facts):
            partial = progress_path.with_suffix(".partial")
            torch.save({**progress, "learner": learner.state()}, partial)
            partial.replace(progress_path)  # a stop while saving never leaves a broken file
            last_save = time.monotonic()
    losses, seconds = progress["losses"], progress["seconds"]
    after = measure(learner.model, tokenizer, facts, retention, wiki)
    exposure = None
    if spec.kind == "smf":
        exposure = answer_start_exposure(learner.model, tokenizer, retention, learner.changed)
    return {
        "learned_f1": after["learned_f1"],
        "learned_em": after["learned_em"],
        "learned_contains": after["learned_contains"],
        "learned_f1_before": before["learned_f1"],
        "retention_f1_before": before["retention_f1"],
        "retention_f1_after": after["retention_f1"],
        "retention_drop": (before["retention_f1"] - after["retention_f1"]) / max(before["retention_f1"], 1e-9),
        "retention_lost": after["retention_lost"],
        # smf: the share of the retention questions whose answer-start token reads a row it wrote.
        "retention_answer_start_exposed": exposure,
        "nll_before": before["nll"],
        "nll_after": after["nll"],
        "nll_rise": (after["nll"] - before["nll"]) / before["nll"],
        "kind": spec.kind,
        "lr": spec.lr,
        "t": spec.t if spec.kind == "smf" else None,
        "ranking": spec.ranking if spec.kind == "smf" else None,
        "written_factor": spec.written_factor if spec.kind == "smf" else None,
        "reserve": spec.reserve if spec.kind == "smf" else None,
        "optimizer": spec.optimizer if spec.kind == "smf" else "adamw",
        "spare_template_reads": spec.spare_template_reads if spec.kind == "smf" else None,
        "anchor_windows": spec.anchor_windows if spec.kind == "smf" else None,
        "spared_answer_slots": sum(int(spared.sum()) for spared in never.values()) if never else 0,
        "precision": resolve_precision(learner.config.precision, device) if spec.kind == "smf" else "fp32",
        "answers": spec.answers,
        "questions": spec.questions,
        "learned_f1_own": sum(progress["own_f1"]) / len(progress["own_f1"]),
        "learned_f1_own_per_fact": [round(f1, 3) for f1 in progress["own_f1"]],
        "seconds": round(seconds, 1),
        "steps": progress["steps"],
        "rows_changed": progress["rows"],
        "mean_loss_before": sum(a for a, _ in losses) / len(losses),
        "mean_loss_after": sum(b for _, b in losses) / len(losses),
        "facts": len(facts),
        "memory_slots": model.memory_config.n_slots,
        "memory_gate": model.memory_config.gate,
    }


def bench_forgetting(
    quick: bool = False,
    facts: int | None = None,
    methods: list[str] | None = None,
    sweep: bool = False,
    lr: float | None = None,
    max_steps: int = 30,
    results_dir: Path = Path("benchmarks/results"),
    save_every_s: float | None = PROGRESS_EVERY_S,
) -> dict:
    specs = method_specs(methods or (["smf", "full", "lora"] if quick else list(DEFAULT_METHODS)))
    settings = CoreSettings()
    device = settings.torch_device()
    where = prepare(settings)
    n_facts = facts or (20 if quick else 100)
    fact_list = make_facts(n_facts, seed=FACT_SEED)
    model, tokenizer = load_memory_model(where.memory, device)
    retention = retention_set(model, tokenizer, where.memory, size=60 if quick else 150)
    wiki = [a.text for a in articles("heldout")[: 40 if quick else 100]]
    runs_dir = results_dir / "forgetting_runs"
    before = measured_before(model, tokenizer, fact_list, retention, wiki, runs_dir)
    n_slots = model.memory_config.n_slots
    del model
    print(f"before learning: {before}")
    if lr is not None:  # runs at one rate each, side by side, fill the sweep's cache
        specs = [at_learning_rate(spec, lr) for spec in specs]
    if sweep:
        specs += [
            at_learning_rate(DEFAULT_METHODS[kind], lr)
            for kind, lrs in SWEEP_LRS.items()
            for lr in lrs
            if lr != DEFAULT_METHODS[kind].lr
        ]
    runs = {}
    for spec in specs:
        path = run_file(runs_dir, spec, n_facts, max_steps)
        if path.is_file():
            runs[spec.name] = json.loads(path.read_text())
            if memory_slots(runs[spec.name]) != n_slots:
                raise ValueError(
                    f"{path} was measured on a memory of {memory_slots(runs[spec.name]):,} slots and this model "
                    f"has {n_slots:,}: give another --results-dir"
                )
            print(f"{spec.name}: cached in {path}")
            continue
        progress_path = path.with_suffix(".progress.pt")
        runs[spec.name] = run_method(
            spec,
            where.memory,
            device,
            fact_list,
            retention,
            wiki,
            max_steps,
            before,
            progress_path,
            fact_log=path.with_suffix(".facts.jsonl"),
            progress_every_s=save_every_s,
        )
        path.write_text(json.dumps(runs[spec.name], indent=2) + "\n")
        progress_path.unlink(missing_ok=True)
        print(f"{spec.name}: {json.dumps(runs[spec.name])}")

    results_dir.mkdir(parents=True, exist_ok=True)
    if lr is not None:
        return runs  # one piece of a sweep; the run without --lr puts the pieces together
    # The summary is of the results directory, not of this command alone: a run of some methods
    # keeps the others measured there before on the same stream.
    methods_only = saved_methods(runs_dir, n_facts, max_steps, n_slots)
    # Every learning rate measured so far for this fact count, by this command or by --lr runs.
    measured = measured_runs(runs_dir, n_facts, max_steps, n_slots)
    if "smf" in methods_only and any(run["kind"] != "smf" for run in measured.values()):
        (results_dir / "forgetting_sweep.json").write_text(json.dumps(measured, indent=2) + "\n")
        plot_pareto(measured, results_dir / "forgetting_pareto.png")
        methods_only = matched_baselines(methods_only, measured)
    plot_learned_vs_retention(methods_only, results_dir / "forgetting.png")
    plot_learning_along_the_stream(methods_only, results_dir / "forgetting_stream.png")
    return methods_only


def matched_baselines(methods: dict[str, dict], measured: dict[str, dict]) -> dict[str, dict]:
    """The paper's comparison: each baseline among ``methods`` replaced by its measured run whose
    learning rate learned about as much as smf."""
    target = methods["smf"]["learned_f1"]
    matched = dict(methods)
    for kind in ("full", "lora"):
        candidates = [run for run in measured.values() if run["kind"] == kind]
        if kind in methods and candidates:
            matched[kind] = min(candidates, key=lambda run: abs(run["learned_f1"] - target))
    return matched


def run_file(runs_dir: Path, spec: MethodSpec, n_facts: int, max_steps: int) -> Path:
    """Where the run of ``spec`` on ``n_facts`` facts and at most ``max_steps`` steps each is saved."""
    # Settings added over time are in the name when they differ from what runs before them did
    # (those rewrote slots, reserved none and answered with one sentence).
    variant = f"_w{spec.written_factor:g}" if spec.kind == "smf" else ""
    if spec.kind == "smf" and spec.reserve != 1:
        variant += f"_r{spec.reserve}"
    if spec.answers != "sentence":
        variant += f"_a{spec.answers}"
    if spec.questions != 5:
        variant += f"_q{spec.questions}"
    if spec.kind == "smf" and spec.optimizer != "sgd":
        variant += f"_o{spec.optimizer}"
    if spec.kind == "smf" and spec.spare_template_reads:
        variant += "_st"
    if spec.kind == "smf" and spec.anchor_windows:
        variant += f"_kl{spec.anchor_windows}"
        if spec.anchor_weight != 1.0:
            variant += f"w{spec.anchor_weight:g}"
    if not spec.name_loss:
        variant += "_nn"
    if spec.kind == "smf" and spec.spare_answers:
        variant += "_sa"
    if spec.kind == "smf" and SparseConfig.batch_parts != 1:  # runs before steps on parts took whole-batch steps
        variant += f"_p{SparseConfig.batch_parts}"
    return runs_dir / f"{spec.name}_lr{spec.lr:g}{variant}_facts{n_facts}_steps{max_steps}.json"


def saved_methods(runs_dir: Path, n_facts: int, max_steps: int, n_slots: int) -> dict[str, dict]:
    """The finished run of each method of ``DEFAULT_METHODS`` saved in ``runs_dir`` for this fact
    count, step limit and memory size, in ``DEFAULT_METHODS``' order."""
    saved = {}
    for name, spec in DEFAULT_METHODS.items():
        path = run_file(runs_dir, spec, n_facts, max_steps)
        if path.is_file():
            run = json.loads(path.read_text())
            if memory_slots(run) == n_slots:
                saved[name] = run
    return saved


def memory_slots(run: dict) -> int:
    """The memory size a run was measured on; runs saved before it was recorded used the first
    default memory, 65,536 slots."""
    return run.get("memory_slots", 65_536)


def measured_runs(runs_dir: Path, n_facts: int, max_steps: int, n_slots: int) -> dict[str, dict]:
    """Every finished run saved for this fact count, step limit and memory size, by run name."""
    suffix = f"_facts{n_facts}_steps{max_steps}"
    runs = {path.stem.removesuffix(suffix): json.loads(path.read_text()) for path in runs_dir.glob(f"*{suffix}.json")}
    return {name: run for name, run in sorted(runs.items()) if memory_slots(run) == n_slots}
