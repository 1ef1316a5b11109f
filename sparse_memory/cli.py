"""The ``sparse-memory`` command (also ``python -m sparse_memory``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sparse_memory.bench import BENCHMARKS, PROGRESS_EVERY_S


def _prepare(args: argparse.Namespace) -> int:
    from sparse_memory.prepare import prepare

    where = prepare()
    print(json.dumps({"base": str(where.base), "memory_model": str(where.memory)}))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from sparse_memory.generation import build_prompt, complete
    from sparse_memory.prepare import load_memory_model, paths, prepare
    from sparse_memory.settings import CoreSettings

    settings = CoreSettings()
    directory = args.model or paths(settings).memory
    if args.model is None:
        prepare(settings, log=lambda line: print(line, file=sys.stderr))
    model, tokenizer = load_memory_model(directory, settings.torch_device())
    prompt = build_prompt(tokenizer, args.prompt, args.chat)
    print(complete(model, tokenizer, [prompt], max_new_tokens=args.max_new_tokens)[0])
    return 0


# The options each benchmark takes beyond --quick and --results-dir. Each option's default in
# the parser means "not given": the benchmark's own default applies. One given to a benchmark
# that does not take it is refused rather than silently ignored.
BENCH_OPTIONS = {
    "forgetting": ("facts", "methods", "sweep", "lr", "max_steps", "save_every_s"),
    "interference": ("facts",),
    "late": ("after", "facts", "methods", "lr", "max_steps"),
    "learn-speed": ("facts", "lr", "max_steps"),
    "probe": ("documents",),
    "documents": (
        "documents",
        "qa",
        "reading",
        "lr",
        "max_steps",
        "top_t",
        "reserve",
        "answer_start_weight",
        "batch_parts",
        "seed",
        "corrections",
        "spare_answers",
    ),
}
NOT_GIVEN = {
    "facts": None,
    "methods": None,
    "after": None,
    "sweep": False,
    "lr": None,
    "max_steps": None,
    "save_every_s": PROGRESS_EVERY_S,
    "documents": None,
    "qa": False,
    "reading": None,
    "top_t": None,
    "reserve": None,
    "answer_start_weight": None,
    "batch_parts": None,
    "seed": None,
    "corrections": False,
    "spare_answers": False,
}


def _bench(args: argparse.Namespace) -> int:
    from sparse_memory.bench import run_benchmark

    given = {name: getattr(args, name) for name, default in NOT_GIVEN.items() if getattr(args, name) != default}
    refused = [name for name in given if name not in BENCH_OPTIONS.get(args.name, ())]
    if refused:
        flags = ", ".join("--" + name.removesuffix("_s").replace("_", "-") for name in refused)
        takers = sorted({bench for name in refused for bench, options in BENCH_OPTIONS.items() if name in options})
        raise SystemExit(f"bench {args.name} does not take {flags} (bench {', '.join(takers)} does)")
    options = {"quick": args.quick, **given}
    if args.name in ("forgetting", "documents"):
        options["results_dir"] = args.results_dir
    result = run_benchmark(args.name, **options)
    # A forgetting run at one --lr is one piece of a sweep: its run file is saved, the
    # benchmark's summary is not. A documents run saves its own file, named by its settings.
    if not args.quick and not (args.name == "forgetting" and args.lr is not None) and args.name != "documents":
        args.results_dir.mkdir(parents=True, exist_ok=True)
        (args.results_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


def add_commands(commands) -> None:
    """The core library's commands: prepare, generate, bench (the service adds its own)."""
    prepare = commands.add_parser("prepare", help="convert, retrofit, warm up and count background statistics")
    prepare.set_defaults(run=_prepare)

    generate = commands.add_parser("generate", help="complete a prompt with the prepared memory model")
    generate.add_argument("prompt")
    generate.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    generate.add_argument("--max-new-tokens", type=int, default=64)
    generate.add_argument("--model", default=None, help="a saved memory model directory (default: the prepared one)")
    generate.set_defaults(run=_generate)

    bench = commands.add_parser("bench", help="run a benchmark; the last line printed is one JSON object")
    bench.add_argument("name", choices=sorted(BENCHMARKS))
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run (not saved)")
    bench.add_argument(
        "--results-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON result is saved"
    )
    forgetting = bench.add_argument_group("bench forgetting, interference, late and learn-speed")
    forgetting.add_argument(
        "--facts",
        type=int,
        default=None,
        help="made-up facts to learn (default 100, quick 20; late and learn-speed: 10, quick 3)",
    )
    forgetting.add_argument(
        "--methods", type=lambda text: text.split(","), default=None, help="comma-separated, e.g. smf,full,lora"
    )
    forgetting.add_argument(
        "--after", type=int, default=None, help="bench late: learn the facts after this many (default 60; quick 10)"
    )
    forgetting.add_argument("--sweep", action="store_true", help="also run each method's learning-rate sweep")
    forgetting.add_argument(
        "--lr",
        type=float,
        default=None,
        help="run the chosen methods at this learning rate only: one piece of a sweep, so pieces can run side by "
        "side (learn-speed: the default learner's rate; the reference keeps its own)",
    )
    forgetting.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="steps per fact at most (default 30; stops 5 steps after the answers are right)",
    )
    forgetting.add_argument(
        "--save-every",
        dest="save_every_s",
        type=_seconds_or_never,
        default=PROGRESS_EVERY_S,
        metavar="SECONDS",
        help=f"save a run's state after a fact at most this often, so a stopped run goes on from there "
        f"(default {PROGRESS_EVERY_S:g}; 0: after every fact; never: no saves, for short runs on a GPU)",
    )
    documents = bench.add_argument_group("bench documents and probe")
    documents.add_argument(
        "--documents", type=int, default=None, help="documents to learn in sequence (default 50; probe: 12)"
    )
    documents.add_argument("--qa", action="store_true", help="post each document with its QA pairs")
    documents.add_argument(
        "--reading",
        type=lambda text: [form for form in text.split(",") if form],
        default=None,
        help="comma-separated reading forms (resolved,about,details,questions,recite; empty for none); "
        "default: the service's",
    )
    documents.add_argument("--top-t", type=int, default=None, help="value rows each document may change")
    documents.add_argument(
        "--reserve", type=int, default=None, help="each document also reserves (reserve - 1) x top_t slots"
    )
    documents.add_argument(
        "--answer-start-weight",
        type=float,
        default=None,
        help="the loss of the first token of each trained answer counts this many times",
    )
    documents.add_argument(
        "--batch-parts",
        type=int,
        default=None,
        help="deal each batch's sequences into this many parts, each step on the next part in turn",
    )
    documents.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of another stream of documents (default: the benchmark's own stream)",
    )
    documents.add_argument(
        "--corrections",
        action="store_true",
        help="learn only the documents a correction touches (each correction and what it corrects)",
    )
    documents.add_argument(
        "--spare-answers",
        action="store_true",
        help="never write slots read where real facts' answers are predicted (the service's spare_answers)",
    )
    bench.set_defaults(run=_bench)


def _seconds_or_never(text: str) -> float | None:
    if text == "never":
        return None
    seconds = float(text)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"give seconds >= 0 or 'never', not {text}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparse-memory", description=__doc__)
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
