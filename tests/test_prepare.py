import json

import pytest

from sparse_memory.cli import main
from sparse_memory.data.corpus import general_batches
from sparse_memory.modeling import MemoryConfigMismatchError, retrofit
from sparse_memory.prepare import BACKGROUND_SEED, RECORD_FILE, load_memory_model, paths, prepare
from sparse_memory.settings import CoreSettings
from sparse_memory.slots import BACKGROUND_FILE, BackgroundStats, compute_background_stats


@pytest.fixture
def tiny_settings(tmp_path, tiny_llama, tokenizer) -> CoreSettings:
    base_dir = tmp_path / "tiny-base"
    tiny_llama.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    return CoreSettings(
        model_dir=tmp_path / "models",
        base_model=base_dir,
        device="cpu",
        memory_layer=1,
        memory_heads=2,
        memory_k=4,
        memory_n_keys=16,
        calibration_tokens=300,
        background_batches=3,
    )


def test_prepare_runs_every_stage_once(tiny_settings):
    lines: list[str] = []
    where = prepare(tiny_settings, log=lines.append)
    assert where == paths(tiny_settings)
    assert where.memory.name == "tiny-base-mem-l1-h2-k4-n16"
    record = json.loads((where.memory / RECORD_FILE).read_text())
    assert set(record["stages"]) == {"retrofit_warmup", "background"}
    assert BackgroundStats.load(where.memory).n_batches == 3
    model, _ = load_memory_model(where.memory, memory=tiny_settings.memory())
    assert model.memory_layers()[1].query_std.ne(1).any()  # the warm-up set the query statistics

    def stamps():
        return [(where.memory / name).stat().st_mtime_ns for name in ("model.safetensors", BACKGROUND_FILE)]

    before = stamps()
    lines.clear()
    prepare(tiny_settings, log=lines.append)
    assert all("present" in line for line in lines) and len(lines) == 3
    assert stamps() == before


def test_an_ungated_memory_is_prepared_in_its_own_directory(tiny_settings):
    gated = paths(tiny_settings).memory
    ungated = paths(tiny_settings.model_copy(update={"memory_gate": "none"})).memory
    assert ungated.name == gated.name + "-gatenone"


def test_background_counting_resumes_exactly(tiny_llama, tiny_memory, tokenizer):
    model = retrofit(tiny_llama, tiny_memory)
    whole = compute_background_stats(model, general_batches(tokenizer, 4, seed=BACKGROUND_SEED))
    first = compute_background_stats(model, general_batches(tokenizer, 2, seed=BACKGROUND_SEED))
    resumed = compute_background_stats(
        model, general_batches(tokenizer, 4, seed=BACKGROUND_SEED, start=2), resume_from=first
    )
    assert resumed.n_batches == whole.n_batches == 4
    assert resumed.doc_freq[1].equal(whole.doc_freq[1])


def test_loading_with_another_memory_config_is_refused(tiny_settings):
    where = prepare(tiny_settings, log=lambda _line: None)
    other = tiny_settings.model_copy(update={"memory_k": 8}).memory()
    with pytest.raises(MemoryConfigMismatchError, match="k: checkpoint 4 vs requested 8"):
        load_memory_model(where.memory, memory=other)


def test_cli_generates_from_a_saved_model(tiny_settings, capsys):
    where = prepare(tiny_settings, log=lambda _line: None)
    assert main(["generate", "--model", str(where.memory), "--max-new-tokens", "3", "Varek was born in"]) == 0
    assert capsys.readouterr().out.strip() != ""
