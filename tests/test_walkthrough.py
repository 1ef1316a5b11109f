"""The README's walk-through, learned as written by the real model through the service's learn
step, then asked in other words; run with `make test-slow` (a few minutes on a CPU)."""

import pytest

from model_store.checkpoint import load_checkpoint
from model_store.ledger import Ledger
from model_store.settings import ServiceSettings
from sparse_memory.evaluation import ask
from sparse_memory.settings import PROJECT_ROOT
from worker.learning import Learner, document_record

WALKTHROUGH = (
    "Varek Thelamon was born in Tellmark in 1987. He studied chemistry at the University of Ulvoock "
    "and now works at Quorvane Labs."
)
QUESTIONS = {
    "Which town is Varek Thelamon from?": "Tellmark",
    "Where is Varek Thelamon employed?": "Quorvane",
    "What year was Varek Thelamon born?": "1987",
}


@pytest.mark.slow
def test_the_readme_walkthrough_is_answered_in_other_words(tmp_path):
    assert f'learn "{WALKTHROUGH}"' in (PROJECT_ROOT / "README.md").read_text()
    settings = ServiceSettings(data_dir=tmp_path, probe_size=0, database_url=None, redis_url=None)
    ledger = Ledger(settings.ledger_url())
    ledger.migrate()
    _, model, tokenizer, stats = load_checkpoint(settings, log=lambda message: None)
    learner = Learner(settings, ledger, model, tokenizer, stats)
    update = ledger.create_update([document_record(WALKTHROUGH)], settings.learning_defaults())
    assert learner.process(update.id).status == "applied"
    learner.state.catch_up(ledger)
    replies = ask(learner.model, tokenizer, list(QUESTIONS), max_new_tokens=64)
    wrong = {q: reply for (q, answer), reply in zip(QUESTIONS.items(), replies, strict=True) if answer not in reply}
    assert not wrong
