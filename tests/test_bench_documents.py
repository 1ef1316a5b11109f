"""``bench documents`` on a tiny saved model: documents go through the worker's learn step, a
stopped run goes on from the next document, and the report counts corrections apart."""

import copy
import json

import pytest
import torch

from app import bench_documents
from app.bench_documents import _answers, _learn_stream, run_name
from model_store.checkpoint import load_checkpoint
from model_store.ledger import Ledger
from model_store.settings import ServiceSettings
from sparse_memory.data.documents import user_documents
from sparse_memory.data.real_facts import QAItem, all_real_facts
from sparse_memory.evaluation import ReplyProbe, ask
from worker.learning import Learner


def learner_for(tiny_checkpoint, data_dir, probe_size=0, held_out=(), **overrides):
    defaults = {"top_t": 8, "reserve": 1, "steps": 2, "lr": 50.0, "device": "cpu", "probe_size": probe_size}
    settings = ServiceSettings(memory_model=tiny_checkpoint, data_dir=data_dir, **(defaults | overrides))
    ledger = Ledger(settings.ledger_url())
    ledger.migrate()
    _, model, tokenizer, stats = load_checkpoint(settings, log=lambda message: None)
    return Learner(settings, ledger, model, tokenizer, stats, held_out=held_out), ledger, settings


def test_a_stopped_stream_goes_on_from_the_next_document(tiny_checkpoint, tmp_path, monkeypatch):
    stream = user_documents(4, seed=3)
    learner, ledger, settings = learner_for(tiny_checkpoint, tmp_path)
    # The service's retention probe on: two questions, each answered with what a copy of the
    # model whose memory speaks replies (the tiny model's own replies are empty).
    speaking = copy.deepcopy(learner.model)
    with torch.no_grad():
        speaking.memory_layers()[1].values.normal_()
    questions = [item.question for item in all_real_facts()[:2]]
    replies = ask(speaking, learner.tokenizer, questions)
    items = [QAItem(q, (reply,), "test", "") for q, reply in zip(questions, replies, strict=True)]
    learner.probe = ReplyProbe.build(speaking, learner.tokenizer, items)
    assert len(learner.probe) == 2
    options = settings.learning_defaults()
    log = tmp_path / "progress.json"
    real_process, calls = Learner.process, []

    def stop_at_the_third(self, update_id):
        calls.append(update_id)
        if update_id == 3:
            raise KeyboardInterrupt
        return real_process(self, update_id)

    monkeypatch.setattr(Learner, "process", stop_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        _learn_stream(learner, ledger, stream, False, options, log)
    monkeypatch.setattr(Learner, "process", real_process)
    documents = _learn_stream(learner, ledger, stream, False, options, log)
    assert documents == json.loads(log.read_text())["documents"]
    assert [document["index"] for document in documents] == [0, 1, 2, 3]
    # each document's questions, asked right after it was learned, the first two's kept from the stopped run
    assert [len(d["right_after"]) for d in documents] == [sum(len(f.questions) for f in d.facts) for d in stream]
    assert [d["steps"] for d in documents] == [ledger.get(i).steps for i in range(1, 5)]
    # the service's retention probe of each update, as the ledger recorded it
    assert [d["probe_drop"] for d in documents] == [round(ledger.get(i).probe["drop"], 4) for i in range(1, 5)]
    assert all(ledger.get(i).probe["questions"] == 2 for i in range(1, 5))
    assert [ledger.get(i).status for i in range(1, 5)] == ["applied"] * 4
    assert ledger.get(1).options["reading"] == list(settings.reading)
    with pytest.raises(RuntimeError, match="another run"):  # a ledger of other documents is refused
        _learn_stream(learner, ledger, user_documents(5, seed=4), False, options, tmp_path / "other.json")


def test_the_report_scores_current_facts_and_corrections_apart(tiny_checkpoint, tmp_path, monkeypatch):
    stream = user_documents(30, seed=0)
    corrections = [d for d in stream if d.supersedes]
    assert corrections  # the stream exercises them
    first = corrections[0]
    earlier, relation = first.supersedes[0]
    old = next(f.answer for f in stream[earlier].facts if f.relation == relation)
    new = next(f.answer for f in first.facts if f.relation == relation)

    def replies(model, tokenizer, questions, max_new_tokens):  # a model that knows only the older value
        return [old] * len(questions)

    monkeypatch.setattr(bench_documents, "ask", replies)
    report = _answers(None, None, stream)
    assert report["corrections"] >= len(corrections)
    assert report["corrections_answered_older"] > 0
    assert report["corrections_answered_newer"] == 0 or new in old
    assert 0 <= report["answered"] <= 1 and report["questions"] > len(stream)
    assert len(report["sample"]) <= bench_documents.SAMPLE_ANSWERS


def test_run_names_say_what_differs():
    assert run_name(50, False, ["resolved", "about"], {}, True) == "docs50_noqa_resolved+about"
    assert run_name(10, True, [], {"lr": 3e4}, False) == "docs10_qa_plain_lr30000_no_supersede"


def learned_with_option(tiny_checkpoint, data_dir, text: str, name: str, value):
    """An update of ``text`` (and one QA pair) learned by a fresh learner with one option set."""
    from worker.learning import document_record

    record = document_record(text, [{"question": "Where was Varek Thelamon born?", "answer": "Ostrava"}])
    learner, ledger, settings = learner_for(tiny_checkpoint, data_dir)
    update = ledger.create_update([record], settings.learning_defaults() | {name: value})
    learner.process(update.id)
    learned = ledger.get(update.id)
    assert learned.status == "applied" and learned.options[name] == value
    return learned


def test_the_answer_start_weight_option_reaches_the_learn_step(tiny_checkpoint, tmp_path):
    text = "Varek Thelamon was born in Ostrava."
    losses = {
        weight: learned_with_option(
            tiny_checkpoint, tmp_path / f"weight{weight:g}", text, "answer_start_weight", weight
        ).loss_before
        for weight in (1.0, 10.0)
    }
    # the same fresh model and batch: only the weight of each answer's first token differs
    assert losses[10.0] > losses[1.0]


def test_the_batch_parts_option_reaches_the_learn_step(tiny_checkpoint, tmp_path):
    text = "Varek Thelamon was born in Ostrava. He studied in Tessmoor."
    learned = {
        parts: learned_with_option(tiny_checkpoint, tmp_path / f"parts{parts}", text, "batch_parts", parts)
        for parts in (1, 2)
    }
    # the same batch's loss before any step, but other steps: each on half of the batch
    assert learned[2].loss_before == pytest.approx(learned[1].loss_before, abs=1e-5)
    assert learned[2].delta_norm != pytest.approx(learned[1].delta_norm, rel=1e-4)


def test_spare_answers_keeps_updates_off_slots_where_other_real_facts_answers_are_predicted(
    tiny_checkpoint, tmp_path, monkeypatch
):
    from sparse_memory.evaluation import answer_slots
    from worker import learning
    from worker.learning import document_record

    held_out = all_real_facts()[:-60]
    plain, _, _ = learner_for(tiny_checkpoint, tmp_path / "plain")
    learner, ledger, settings = learner_for(
        tiny_checkpoint, tmp_path / "spare", held_out=held_out, spare_answers=True, top_t=64
    )
    answers = answer_slots(learner.model, learner.tokenizer, held_out)[1]
    assert not torch.equal(answers, answer_slots(learner.model, learner.tokenizer, [])[1])  # held out: left out
    assert torch.equal(learner.never[1], plain.never[1] | answers)
    assert (answers & ~plain.never[1]).any()  # more than the reply openings

    record = document_record("The capital of Varekland is Ostrava, a port on the Tessmoor river.", [])
    update = ledger.create_update([record], settings.learning_defaults())
    learner.process(update.id)
    assert ledger.get(update.id).status == "applied"
    written = learner.state.written()[1]
    assert written.any() and not (written & learner.never[1]).any()

    # Computed once per instance and held-out set: a learner started again reads them back.
    def not_again(*args):
        raise AssertionError("answer_slots computed again")

    monkeypatch.setattr(learning, "answer_slots", not_again)
    again, _, _ = learner_for(tiny_checkpoint, tmp_path / "spare", held_out=held_out, spare_answers=True)
    assert torch.equal(again.never[1], learner.never[1])
    with pytest.raises(AssertionError, match="computed again"):  # another held-out set: not that one
        learner_for(tiny_checkpoint, tmp_path / "spare", held_out=held_out[1:], spare_answers=True)


def test_an_update_whose_announcement_fails_is_still_applied(tiny_checkpoint, tmp_path):
    from model_store.events import RedisEvents
    from worker.learning import document_record

    learner, ledger, settings = learner_for(tiny_checkpoint, tmp_path)
    learner.publish = RedisEvents("redis://127.0.0.1:1/0", "test").publish  # no Redis listens there
    record = document_record("Varek Thelamon was born in Ostrava.")
    update = ledger.create_update([record], settings.learning_defaults())
    assert learner.process(update.id).status == "applied"
    assert learner.state.version == ledger.get(update.id).model_version
