"""The embedded default end to end over HTTP: SQLite ledger, the worker inside the API process,
the tiny model as base checkpoint."""

import hashlib
import json
import time

import pytest
from conftest import TINY_LEARNING
from fastapi.testclient import TestClient

from app.main import create_app
from model_store.settings import ServiceSettings
from model_store.state import DeltaStore
from sparse_memory.generation import build_prompt, complete_ids

FACT = {
    "text": "Varek Thelamon was born in Ostrava.",
    "qa": [{"question": "Where was Varek Thelamon born?", "answer": "Ostrava"}],
}
QUESTION = {"messages": [{"role": "user", "content": "Where was Varek Thelamon born?"}], "max_new_tokens": 8}


def settings_for(checkpoint, data_dir, **overrides) -> ServiceSettings:
    values = {"memory_model": checkpoint, "data_dir": data_dir, "device": "cpu"}
    values |= {name.removeprefix("SPARSE_MEMORY_").lower(): json.loads(value) for name, value in TINY_LEARNING.items()}
    return ServiceSettings(**(values | overrides))


def wait_applied(client, update_id, timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        update = client.get(f"/updates/{update_id}").json()
        if update["status"] not in ("queued", "running"):
            served = client.get("/model").json()["model_version"]
            if update["status"] != "applied" or served >= update["model_version"]:
                return update
        time.sleep(0.1)
    raise AssertionError(f"update {update_id} not finished in {timeout} s")


def test_learn_ask_audit_roll_back_and_restart(tiny_checkpoint, tmp_path):
    settings = settings_for(tiny_checkpoint, tmp_path)
    with TestClient(create_app(settings)) as client:
        base = client.get("/model").json()
        assert base["model_version"] == 0 and client.get("/readyz").status_code == 200
        service = client.app.state.service  # the learner's model shares the base rows, not a copy
        assert service.local_worker.learner.state.base is service.state.base
        # A fast tokenizer is no object two threads may use at once: the learner has its own.
        assert service.local_worker.learner.tokenizer is not service.engine.tokenizer
        before = client.post("/generate", json=QUESTION).json()
        assert "Ostrava" not in before["text"]

        accepted = client.post("/learn", json={"documents": [FACT]})
        assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
        update = wait_applied(client, accepted.json()["update_id"])
        assert update["status"] == "applied", update["error"]
        # at most top_t rows, all read by the batch (the tiny batch reads fewer than 64)
        assert 0 < len(update["slots"]) <= 64 and len(set(update["slots"])) == len(update["scores"]) == len(
            update["slots"]
        )
        assert update["delta_norm"] > 0 and update["documents"][0]["text"] == FACT["text"]
        assert update["created_at"] <= update["started_at"] <= update["applied_at"]  # queue wait, then learning

        answer = client.post("/generate", json=QUESTION).json()
        assert "Ostrava" in answer["text"] and answer["model_version"] == update["model_version"]
        # A learn task delivered again (acks_late after a crash) finds the update finished.
        learner = client.app.state.service.local_worker.learner
        hash_before = learner.state.state_hash()
        assert learner.process(update["id"]).status == "applied"
        assert learner.state.state_hash() == hash_before and client.get("/updates").json()["total"] == 1
        assert client.get("/model").json()["model_version"] == update["model_version"]
        listing = client.get("/updates", params={"status": "applied"}).json()
        assert listing["total"] == 1 and listing["items"][0]["id"] == update["id"]

        rolled = client.post(f"/updates/{update['id']}/rollback")
        assert rolled.status_code == 200 and rolled.json()["status"] == "rolled_back"
        after = client.post("/generate", json=QUESTION).json()
        assert "Ostrava" not in after["text"] and after["model_version"] == update["model_version"] + 1
        model = client.get("/model").json()
        assert model["state_hash"] == base["state_hash"] and model["active_updates"] == []  # the base, bit for bit
        assert client.post(f"/updates/{update['id']}/rollback").status_code == 409
        assert client.post("/updates/999/rollback").status_code == 404

        kept = wait_applied(client, client.post("/learn", json={"documents": [FACT]}).json()["update_id"])
        served = client.get("/model").json()
        assert served["active_updates"] == [kept["id"]] and served["state_hash"] != base["state_hash"]

    with TestClient(create_app(settings)) as restarted:  # the same ledger and update store
        again = restarted.get("/model").json()
        assert again["state_hash"] == served["state_hash"] and again["model_version"] == served["model_version"]
        assert "Ostrava" in restarted.post("/generate", json=QUESTION).json()["text"]


def test_concurrent_answers_each_come_whole_from_the_version_they_name(tiny_checkpoint, tmp_path):
    """Clients ask all the while an update is applied and then rolled back: every reply is what
    the model of the version it names answers alone, none half one version and half the next."""
    import threading

    def hammer(client, until) -> list[tuple[int, str]]:
        seen, lock = [], threading.Lock()

        def ask() -> None:
            while not until():
                reply = client.post("/generate", json=QUESTION).json()
                with lock:
                    seen.append((reply["model_version"], reply["text"]))

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        return seen, threads

    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path))) as client:
        alone = {0: client.post("/generate", json=QUESTION).json()["text"]}
        applied = {}
        seen, threads = hammer(client, lambda: "update" in applied)
        applied["update"] = wait_applied(client, client.post("/learn", json={"documents": [FACT]}).json()["update_id"])
        for thread in threads:
            thread.join()
        learned = applied["update"]["model_version"]
        alone[learned] = client.post("/generate", json=QUESTION).json()["text"]
        rolled = {}
        more, threads = hammer(client, lambda: "update" in rolled)
        time.sleep(1.0)  # answers at the learned version first, then the rollback while they go on
        rolled["update"] = client.post(f"/updates/{applied['update']['id']}/rollback").json()
        for thread in threads:
            thread.join()
        alone[learned + 1] = client.post("/generate", json=QUESTION).json()["text"]

    seen += more
    assert alone[learned] != alone[0] and alone[learned + 1] == alone[0]  # learning changed the answer; undone
    assert {version for version, _ in seen} == {0, learned, learned + 1}  # every version was answered
    mixed = [(version, text) for version, text in seen if text != alone[version]]
    assert not mixed, mixed


def test_bad_input_is_refused_with_a_reason_and_nothing_is_queued(tiny_checkpoint, tmp_path):
    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path))) as client:
        cases = [
            ({"documents": []}, "documents"),
            ({"documents": [{"text": "   "}]}, "whitespace"),
            ({"documents": [FACT], "options": {"top_t": 10**9}}, "slots per layer"),
            ({"documents": [FACT], "options": {"lr": -1}}, "lr"),
            ({"documents": [FACT], "options": {"top_t": 64, "reserve": 64}}, "lower reserve"),
            ({"documents": [FACT], "options": {"answer_start_weight": 0.5}}, "answer_start_weight"),
        ]
        for body, reason in cases:
            response = client.post("/learn", json=body)
            assert response.status_code == 422 and reason in response.text, response.text
        too_many = {"documents": [{"text": "Varek.", "qa": [{"question": "Who?", "answer": "Varek"}] * 257}]}
        assert client.post("/learn", json=too_many).status_code == 422
        assert client.get("/updates").json()["total"] == 0
        assert client.post("/generate", json={"prompt": "a", "messages": []}).status_code == 422


def test_oversized_documents_and_bodies_are_refused_whole(tiny_checkpoint, tmp_path):
    settings = settings_for(tiny_checkpoint, tmp_path, max_document_chars=100, max_request_bytes=1000)
    with TestClient(create_app(settings)) as client:
        long = client.post("/learn", json={"documents": [FACT, {"text": "Varek lives in Ostrava. " * 5}]})
        assert long.status_code == 413 and "documents[1].text has 120 characters; at most 100" in long.text
        big = {"documents": [{"text": "Varek lives in Ostrava."}] * 40}  # each short, over 1000 bytes in all
        declared = client.post("/learn", json=big)
        assert declared.status_code == 413 and "at most 1000" in declared.json()["detail"]
        body = json.dumps(big).encode()
        chunked = client.post(  # no Content-Length: counted as it arrives
            "/learn",
            content=(body[i : i + 100] for i in range(0, len(body), 100)),
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status_code == 413 and "at most 1000" in chunked.json()["detail"]
        assert client.get("/updates").json()["total"] == 0
        assert client.post("/learn", json={"documents": [FACT]}).status_code == 202  # within the limits
        assert client.get("/updates", params={"status": "done"}).status_code == 422


def test_idempotency_key_and_streaming(tiny_checkpoint, tmp_path):
    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path))) as client:
        headers = {"Idempotency-Key": "fact-1"}
        first = client.post("/learn", json={"documents": [FACT]}, headers=headers).json()
        second = client.post("/learn", json={"documents": [FACT]}, headers=headers).json()
        assert first["update_id"] == second["update_id"]
        wait_applied(client, first["update_id"])
        again = client.post("/learn", json={"documents": [FACT]}, headers=headers)  # a retry after learning
        assert again.status_code == 202 and again.json()["update_id"] == first["update_id"]
        other = {"documents": [{"text": "Varek Thelamon was born in Brindle."}]}
        conflict = client.post("/learn", json=other, headers=headers)
        assert conflict.status_code == 409 and "Idempotency-Key" in conflict.json()["detail"]
        asked = client.post("/learn", json={"documents": [FACT], "options": {"steps": 3}}, headers=headers)
        assert asked.status_code == 409  # the same documents with other options are another request
        assert client.get("/updates").json()["total"] == 1

        plain = client.post("/generate", json=QUESTION).json()
        with client.stream("POST", "/generate", json=QUESTION | {"stream": True}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [line for line in response.iter_lines() if line.startswith("data: ")]
        payloads = [json.loads(line.removeprefix("data: ")) for line in events]
        assert payloads[-1]["done"] and payloads[-1]["text"] == plain["text"]
        assert "".join(p["text"] for p in payloads[:-1]).strip() == plain["text"]
        metrics = client.get("/metrics").text
        assert "sparse_memory_model_version 1.0" in metrics
        from prometheus_client.parser import text_string_to_metric_families

        samples = {
            s.name + str(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
        }
        assert samples["sparse_memory_generation_seconds_count[]"] == 2  # the plain and the streamed request
        assert (
            samples["sparse_memory_swap_seconds_count[]"] == 1 and samples["sparse_memory_learn_seconds_count[]"] == 1
        )
        assert 0 < samples["sparse_memory_learn_seconds_sum[]"] < 120
        written = samples["sparse_memory_slots_written[('layer', '1')]"]
        assert 0 < written and written + samples["sparse_memory_slots_free[('layer', '1')]"] == 256
        assert samples["sparse_memory_pending_updates[]"] == 0


OTHER_FACT = {"text": "Tosia Naskrath works at Quorvane Labs."}


def test_updates_spare_the_slots_of_active_updates_until_rolled_back(tiny_checkpoint, tmp_path):
    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path, top_t=16, reserve=1))) as client:

        def learn(document) -> set[int]:
            update = wait_applied(client, client.post("/learn", json={"documents": [document]}).json()["update_id"])
            assert update["status"] == "applied", update["error"]
            return set(update["slots"])

        first = learn(FACT)
        second = learn(FACT)  # the same text again: its best slots are taken, so it gets others
        assert len(first) == len(second) == 16 and not first & second
        client.post("/updates/1/rollback").raise_for_status()
        assert learn(FACT) == first  # the rollback freed them


def test_reserved_slots_are_stored_spared_and_freed_by_a_rollback(tiny_checkpoint, tmp_path):
    settings = settings_for(tiny_checkpoint, tmp_path, top_t=8, reserve=3)
    with TestClient(create_app(settings)) as client:

        def learn(document, **options) -> set[int]:
            body = {"documents": [document], "options": options}
            update = wait_applied(client, client.post("/learn", json=body).json()["update_id"])
            assert update["status"] == "applied", update["error"]
            assert update["options"]["reserve"] == options.get("reserve", 3)  # the server's default
            return set(update["slots"])

        first = learn(FACT)
        reserved = DeltaStore(tmp_path / "updates").load_with_reserved(1)[1]
        first_reserved = {int(slot) for slots in reserved.values() for slot in slots}
        assert len(first) == 8 and len(first_reserved) == 16 and not first & first_reserved
        second = learn(FACT)  # neither the written nor the reserved slots of the first
        assert len(second) == 8 and not second & (first | first_reserved)
        client.post("/updates/1/rollback").raise_for_status()
        assert learn(FACT, reserve=1) == first  # the rollback freed both
        assert not DeltaStore(tmp_path / "updates").load_with_reserved(3)[1]  # an update's own option


def test_a_correction_supersedes_the_update_it_corrects_and_learns_what_it_left_standing(
    tiny_checkpoint, tmp_path, monkeypatch
):
    from sparse_memory.finetune import SparseMemoryFinetuner

    real_learn, learned_texts = SparseMemoryFinetuner.learn, []

    def recording(self, batch):
        learned_texts.append("\n".join(batch.texts))
        return real_learn(self, batch)

    monkeypatch.setattr(SparseMemoryFinetuner, "learn", recording)
    settings = settings_for(tiny_checkpoint, tmp_path, top_t=16, reserve=1)
    with TestClient(create_app(settings)) as client:

        def learn(text: str) -> dict:
            update_id = client.post("/learn", json={"documents": [{"text": text}]}).json()["update_id"]
            update = wait_applied(client, update_id)
            assert update["status"] == "applied", update["error"]
            return update

        first = learn("Varek Thelamon lives in Ostrava. He plays the oboe.")
        addition = learn("Varek Thelamon also works at Quorvane Labs.")  # adds: supersedes nothing
        assert addition["supersedes"] == [] and client.get("/updates/1").json()["status"] == "applied"
        correction = learn("Varek Thelamon has moved to Brisk.")
        assert correction["supersedes"] == [first["id"]]
        assert correction["documents"][0]["carried"] == ["Varek Thelamon plays the oboe."]
        superseded = client.get(f"/updates/{first['id']}").json()
        assert superseded["status"] == "superseded" and superseded["superseded_by"] == correction["id"]
        # Learned as one text: the correction first, then what the first update said that stands.
        assert "Varek Thelamon has moved to Brisk. Varek Thelamon plays the oboe." in learned_texts[-1]
        assert "Ostrava" not in learned_texts[-1]
        # The rows now: the addition and the correction, nothing of the first update.
        service = client.app.state.service
        assert service.state.active == [addition["id"], correction["id"]]
        assert client.post(f"/updates/{first['id']}/rollback").status_code == 409  # not applied any more

        # Rolling back the correction brings the update it superseded back, bit for bit.
        hash_before_correction = _replayed_hash(service, [first["id"], addition["id"]])
        client.post(f"/updates/{correction['id']}/rollback").raise_for_status()
        assert client.get(f"/updates/{first['id']}").json()["status"] == "applied"
        deadline = time.monotonic() + 30
        while service.state.version < client.get("/model").json()["model_version"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.state.active == [first["id"], addition["id"]]
        assert service.state.state_hash() == hash_before_correction


def _replayed_hash(service, update_ids: list[int]) -> str:
    """The hash of base + the deltas of ``update_ids`` applied in id order, on a copy."""
    import copy

    from model_store.state import ModelState

    twin = ModelState(copy.deepcopy(service.state.model), service.state.store)
    for layer, memory in twin.memories.items():
        memory.values.data.copy_(service.state.base[layer])
    for update_id in sorted(update_ids):
        twin.apply(update_id)
    return twin.state_hash()


def test_with_superseding_off_a_correction_is_learned_alone(tiny_checkpoint, tmp_path):
    settings = settings_for(tiny_checkpoint, tmp_path, top_t=16, reserve=1, supersede_corrections=False)
    with TestClient(create_app(settings)) as client:
        for text in ("Varek Thelamon lives in Ostrava.", "Varek Thelamon has moved to Brisk."):
            update_id = client.post("/learn", json={"documents": [{"text": text}]}).json()["update_id"]
            assert wait_applied(client, update_id)["supersedes"] == []
        assert client.get("/updates/1").json()["status"] == "applied"


def test_a_long_document_is_learned_in_pieces_that_the_update_records(tiny_checkpoint, tmp_path):
    text = " ".join(f"Varek Thelamon visited Tellmark in {1990 + year}." for year in range(8))
    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path, top_t=8, reserve=1))) as client:
        update_id = client.post("/learn", json={"documents": [{"text": text}, FACT]}).json()["update_id"]
        update = wait_applied(client, update_id)
        assert update["status"] == "applied", update["error"]
        long, short = update["documents"]
        assert [len(piece.split(". ")) for piece in long["pieces"]] == [4, 4] and short["pieces"] == []
        assert len(update["slots"]) == len(set(update["slots"])) == 3 * 8  # three batches, none sharing a slot


def test_a_sentence_longer_than_the_window_is_learned_in_pieces_none_cut_short(tiny_checkpoint, tmp_path):
    words = " ".join(f"Tellmark{index}" for index in range(120))  # one sentence over 256 tokens
    text = f"Varek Thelamon visited {words} and Ostrava"
    pair = {"question": "Where did Varek Thelamon go last?", "answer": "Ostrava"}
    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path, top_t=4, reserve=1))) as client:
        update_id = client.post("/learn", json={"documents": [{"text": text, "qa": [pair]}]}).json()["update_id"]
        update = wait_applied(client, update_id)
        assert update["status"] == "applied", update["error"]
        pieces = update["documents"][0]["pieces"]
        assert len(pieces) > 2 and " ".join(pieces) == text  # every word learned, in order
        too_long = {"question": "Where?", "answer": " ".join(words.split()[:80])}  # under 1,000 characters
        update_id = client.post("/learn", json={"documents": [{"text": "Varek.", "qa": [too_long]}]}).json()
        failed = wait_applied(client, update_id["update_id"])
        assert failed["status"] == "failed" and "question-answer pair is too long" in failed["error"]


def test_a_piece_that_fails_leaves_nothing_of_the_update_behind(tiny_checkpoint, tmp_path, monkeypatch):
    from sparse_memory.finetune import SparseMemoryFinetuner

    real_learn, calls = SparseMemoryFinetuner.learn, []

    def fail_on_the_second_piece(self, batch):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the second piece failed")
        return real_learn(self, batch)

    monkeypatch.setattr(SparseMemoryFinetuner, "learn", fail_on_the_second_piece)
    text = " ".join(f"Varek Thelamon visited Tellmark in {1990 + year}." for year in range(8))
    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path, top_t=8, reserve=1))) as client:
        service = client.app.state.service
        learner = service.local_worker.learner
        before = learner.state.state_hash()
        update = wait_applied(client, client.post("/learn", json={"documents": [{"text": text}]}).json()["update_id"])
        assert update["status"] == "failed" and "second piece" in update["error"]
        assert learner.state.state_hash() == before and len(calls) == 2


@pytest.mark.parametrize("limit, status", [(0.5, "rejected"), (None, "applied")])
def test_an_update_that_forgets_the_probe_is_rejected_and_never_served(tiny_checkpoint, tmp_path, limit, status):
    """The probe holds a question the model knows (after a first update taught it); teaching
    another answer to the same question forgets it, when updates may rewrite each other's slots
    (written_factor 1, the paper's ranking; by default the second update would spare them)."""

    question = QUESTION["messages"][0]["content"]
    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path))) as client:
        wait_applied(client, client.post("/learn", json={"documents": [FACT]}).json()["update_id"])
        known = client.post("/generate", json=QUESTION | {"max_new_tokens": 24}).json()["text"]
        learner = client.app.state.service.local_worker.learner
        (reply,) = complete_ids(learner.model, learner.tokenizer, [build_prompt(learner.tokenizer, question, True)], 24)
    # The instance's probe, chosen once, with the reply it was answered with.
    probe = [{"question": question, "answers": [known], "source": "test", "statement": "", "reply_ids": reply}]
    (tmp_path / "probe_set.json").write_text(json.dumps(probe))

    other = {"text": "Varek Thelamon was born in Kelbrook.", "qa": [{"question": question, "answer": "Kelbrook"}]}
    settings = settings_for(tiny_checkpoint, tmp_path, max_retention_drop=limit, written_factor=1.0)
    with TestClient(create_app(settings)) as client:
        served = client.get("/model").json()
        update = wait_applied(client, client.post("/learn", json={"documents": [other]}).json()["update_id"])
        assert update["status"] == status, update["probe"]
        assert update["probe"]["before"] == 1.0 and update["probe"]["drop"] > 0.5
        now = client.get("/model").json()
        assert (now["state_hash"] == served["state_hash"]) == (status == "rejected")
        answer = client.post("/generate", json=QUESTION | {"max_new_tokens": 24}).json()["text"]
        assert (answer == known) == (status == "rejected")
        # The next update starts from the model the probe just scored: its "before" is that score.
        following = wait_applied(client, client.post("/learn", json={"documents": [FACT]}).json()["update_id"])
        expected = update["probe"]["after"] if status == "applied" else update["probe"]["before"]
        assert following["probe"]["before"] == expected
        gauge = next(
            line for line in client.get("/metrics").text.splitlines() if line.startswith("sparse_memory_retention")
        )
        assert float(gauge.split()[-1]) == following["probe"]["after"]  # the latest applied update's


def last_line(capsys) -> str:
    """The command's own output: uvicorn's access log shares stdout in this process."""
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_command_line_client_against_a_running_server(tiny_checkpoint, tmp_path, capsys):
    import socket
    import threading

    import uvicorn

    from app.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings_for(tiny_checkpoint, tmp_path)), port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        url = ["--url", f"http://127.0.0.1:{port}"]
        qa = f"{FACT['qa'][0]['question']}={FACT['qa'][0]['answer']}"
        assert main(["learn", FACT["text"], "--qa", qa, "--wait", *url]) == 0
        update = json.loads(last_line(capsys))
        assert update["status"] == "applied"
        main(["ask", FACT["qa"][0]["question"], "--max-new-tokens", "8", *url])
        assert "Ostrava" in capsys.readouterr().out
        main(["updates", *url])
        assert f"{update['id']:>5}  applied" in capsys.readouterr().out
        main(["rollback", str(update["id"]), *url])
        assert json.loads(last_line(capsys))["status"] == "rolled_back"
        with pytest.raises(SystemExit, match="409"):
            main(["rollback", str(update["id"]), *url])
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_one_bad_request_fails_alone_not_the_batch_it_shares(tiny_checkpoint, tmp_path):
    from app.engine import GenerationJob

    with TestClient(create_app(settings_for(tiny_checkpoint, tmp_path))) as client:
        engine = client.app.state.service.engine

        def broken_stream(text):
            raise ConnectionError("the client went away")

        good = GenerationJob(prompt="The capital of France is", max_new_tokens=4, temperature=0.0)
        unreadable = GenerationJob(prompt=None, max_new_tokens=4, temperature=0.0)  # the batch cannot encode it
        gone = GenerationJob(prompt="Hello", max_new_tokens=4, temperature=0.0, on_text=broken_stream)
        alone = GenerationJob(prompt="The capital of France is", max_new_tokens=4, temperature=0.0)
        engine._decode([good, unreadable, gone])
        engine._decode([alone])
        assert good.future.result().text == alone.future.result().text  # as if it had been decoded alone
        assert isinstance(unreadable.future.exception(), Exception)
        assert isinstance(gone.future.exception(), ConnectionError)


def test_requests_beyond_the_queues_limits_are_answered_429(tiny_checkpoint, tmp_path):
    from app.engine import GenerationJob

    settings = settings_for(tiny_checkpoint, tmp_path, max_pending_updates=1, max_waiting_generations=1)
    with TestClient(create_app(settings)) as client:
        first = client.post("/learn", json={"documents": [FACT]}, headers={"Idempotency-Key": "first"})
        assert first.status_code == 202
        refused = client.post("/learn", json={"documents": [FACT]})  # the first is still queued or learning
        assert refused.status_code == 429 and "Retry-After" in refused.headers and "later" in refused.json()["detail"]
        again = client.post("/learn", json={"documents": [FACT]}, headers={"Idempotency-Key": "first"})
        assert again.status_code == 202 and again.json()["update_id"] == first.json()["update_id"]  # no new update
        wait_applied(client, first.json()["update_id"])
        assert client.get("/updates").json()["total"] == 1
        assert client.post("/learn", json={"documents": [FACT]}).status_code == 202  # room again

        engine = client.app.state.service.engine
        engine.stop()  # nothing is decoded now: a request submitted waits
        engine.submit(GenerationJob(prompt="Hello", max_new_tokens=2, temperature=0.0))
        busy = client.post("/generate", json=QUESTION)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"


def test_a_replica_whose_delta_is_missing_or_altered_stops_serving_until_it_is_restored(tiny_checkpoint, tmp_path):
    settings = settings_for(tiny_checkpoint, tmp_path)
    with TestClient(create_app(settings)) as client:
        update = wait_applied(client, client.post("/learn", json={"documents": [FACT]}).json()["update_id"])
        assert update["status"] == "applied", update["error"]
        learned_hash = client.get("/model").json()["state_hash"]
    delta = next((tmp_path / "updates").glob("update-*.safetensors"))
    learned = delta.read_bytes()
    assert update["delta_sha256"] == hashlib.sha256(learned).hexdigest()  # in the audit
    from safetensors.torch import load, save

    tensors = load(learned)
    name = next(key for key in tensors if key.endswith(".delta"))
    tensors[name] = tensors[name] * 2  # a well-formed file, but not the delta that was learned
    for broken, reason in [(save(tensors), "SHA-256"), (None, "missing")]:
        delta.unlink()
        if broken is not None:
            delta.write_bytes(broken)
        with TestClient(create_app(settings)) as client:  # a restart replays the ledger
            ready = client.get("/readyz")
            assert ready.status_code == 503 and reason in ready.json()["reason"]
            refused = client.post("/generate", json=QUESTION)
            assert refused.status_code == 503 and "not serving" in refused.json()["detail"]
            if reason == "missing":  # nor does the learner learn on a model the ledger does not describe
                failed = wait_applied(client, client.post("/learn", json={"documents": [FACT]}).json()["update_id"])
                assert failed["status"] == "failed" and "DeltaMismatch" in failed["error"]
    delta.write_bytes(learned)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/model").json()["state_hash"] == learned_hash
