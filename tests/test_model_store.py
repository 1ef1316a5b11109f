"""The ledger (SQLite and the real PostgreSQL) and the one rule: served rows = base rows plus the
deltas of the active updates, in id order."""

import pytest
import torch

from model_store.ledger import Ledger, NotApplied, UnknownUpdate
from model_store.state import DeltaStore, ModelState, rows_equal_base
from sparse_memory.modeling import retrofit


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    ledger = Ledger(url)
    ledger.migrate()
    yield ledger
    ledger.engine.dispose()


def document(text="Varek Thelamon was born in Ostrava."):
    return [{"text": text, "sha256": "x", "qa": []}]


def test_updates_are_listed_newest_first_and_filtered(ledger):
    ids = [ledger.create_update(document(f"fact {i}"), {"top_t": 5}).id for i in range(3)]
    ledger.finish(ids[0], "failed", error="boom")
    items, total = ledger.list()
    assert [u.id for u in items] == ids[::-1] and total == 3
    failed, total_failed = ledger.list(status="failed")
    assert [u.id for u in failed] == [ids[0]] and total_failed == 1
    assert ledger.pending_ids() == ids[1:]
    assert ledger.next_queued(up_to=ids[1]).id == ids[1]


def test_an_update_left_queued_while_none_runs_is_found_and_sent_again(ledger):
    from datetime import timedelta

    from worker.celery_app import sweep_stranded

    sent = []
    ids = [ledger.create_update(document(f"fact {i}"), {}).id for i in range(2)]
    assert sweep_stranded(ledger, sent.append, timedelta(hours=1)) is None  # just queued: its task may be on its way
    assert sweep_stranded(ledger, sent.append, timedelta(0)) == ids[1] and sent == [ids[1]]  # the newest: learns both
    ledger.mark_running(ids[0])
    assert sweep_stranded(ledger, sent.append, timedelta(0)) is None  # a worker is busy: the queue still holds work
    ledger.finish(ids[0], "applied", slots=[1])
    ledger.finish(ids[1], "applied", slots=[2])
    assert sweep_stranded(ledger, sent.append, timedelta(0)) is None and sent == [ids[1]]


def test_idempotency_key_returns_the_same_update(ledger):
    first = ledger.create_update(document(), {}, idempotency_key="abc")
    again = ledger.create_update(document("something else"), {}, idempotency_key="abc")
    assert again.id == first.id and again.documents == first.documents


def test_apply_and_rollback_append_ordered_events(ledger):
    a = ledger.create_update(document(), {}).id
    b = ledger.create_update(document(), {}).id
    applied_a = ledger.finish(a, "applied", slots=[1, 2])
    applied_b = ledger.finish(b, "applied", slots=[3])
    assert (applied_a.model_version, applied_b.model_version) == (1, 2)
    update, version = ledger.rollback(a)
    assert update.status == "rolled_back" and version == 3
    assert [(e.version, e.update_id, e.action) for e in ledger.events_after(1)] == [(2, b, "apply"), (3, a, "rollback")]
    assert ledger.latest_version() == 3
    with pytest.raises(NotApplied, match="rolled_back"):
        ledger.rollback(a)
    with pytest.raises(UnknownUpdate):
        ledger.rollback(999)


def test_a_correction_supersedes_in_one_transaction_and_its_rollback_brings_them_back(ledger):
    a, b, c = (ledger.create_update(document(), {}).id for _ in range(3))
    ledger.finish(a, "applied", slots=[1])
    ledger.finish(b, "applied", slots=[2])
    ledger.rollback(b)
    correction = ledger.finish(c, "applied", supersedes=[a, b], slots=[3])  # b: rolled back already
    assert correction.supersedes == [a] and correction.model_version == 5
    superseded = ledger.get(a)
    assert superseded.status == "superseded" and superseded.superseded_by == c
    assert [(e.update_id, e.action) for e in ledger.events_after(3)] == [(a, "rollback"), (c, "apply")]
    with pytest.raises(NotApplied, match="superseded"):
        ledger.rollback(a)
    _, version = ledger.rollback(c)
    assert version == 7 and [(e.update_id, e.action) for e in ledger.events_after(5)] == [(c, "rollback"), (a, "apply")]
    again = ledger.get(a)
    assert again.status == "applied" and again.superseded_by is None and again.model_version == 7
    failed = ledger.finish(ledger.create_update(document(), {}).id, "failed", supersedes=[a], error="boom")
    assert failed.supersedes is None and ledger.get(a).status == "applied"  # only an applied update supersedes


@pytest.fixture
def memory_model(tiny_llama, tiny_memory):
    return retrofit(tiny_llama, tiny_memory)


def random_rows(n_slots, t, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    slots = torch.randperm(n_slots, generator=generator)[:t]
    return slots, torch.randn(t, dim, generator=generator) * 1e-3


def test_rows_follow_the_one_rule_and_rollback_restores_the_base_bit_for_bit(memory_model, tmp_path):
    store = DeltaStore(tmp_path)
    state = ModelState(memory_model, store)
    layer, memory = next(iter(state.memories.items()))
    n_slots, dim = memory.values.shape
    for update_id in (1, 2, 3):  # overlapping slot sets: t = 60 of 256
        store.save(update_id, {layer: random_rows(n_slots, 60, dim, update_id)})

    class Event:
        def __init__(self, version, update_id, action):
            self.version, self.update_id, self.action = version, update_id, action

    events = [Event(1, 1, "apply"), Event(2, 2, "apply"), Event(3, 3, "apply"), Event(4, 2, "rollback")]
    state.replay(events)
    written = torch.zeros(n_slots, dtype=torch.bool)
    for update_id in (1, 3):
        written[store.load(update_id)[layer][0]] = True
    assert torch.equal(state.written()[layer], written)  # what new updates must spare
    expected = state.base[layer].clone()
    for update_id in (1, 3):  # the rule: base + active deltas in id order
        slots, delta = store.load(update_id)[layer]
        expected[slots] += delta
    assert torch.equal(memory.values, expected)

    # A fresh process replaying the same log has the same rows, bit for bit.
    twin = ModelState(retrofit_copy(memory_model, state), store)
    twin.replay(events)
    assert twin.state_hash() == state.state_hash()

    state.replay([Event(5, 1, "rollback"), Event(6, 3, "rollback")])
    assert rows_equal_base(state) and state.active == []
    assert not state.written()[layer].any()


def test_reserved_slots_are_spared_while_their_update_is_active(memory_model, tmp_path):
    store = DeltaStore(tmp_path)
    state = ModelState(memory_model, store)
    layer, memory = next(iter(state.memories.items()))
    n_slots, dim = memory.values.shape
    slots, delta = random_rows(n_slots, 40, dim, seed=1)
    store.save(1, {layer: (slots[:10], delta[:10])}, reserved={layer: slots[10:]})
    rows, reserved = store.load_with_reserved(1)
    assert torch.equal(reserved[layer], slots[10:]) and len(rows[layer][0]) == 10
    assert state.apply(1) == 10  # the reserved rows are not changed...
    assert torch.equal(memory.values[slots[10:]], state.base[layer][slots[10:]])
    spared = torch.zeros(n_slots, dtype=torch.bool)
    spared[slots] = True
    assert torch.equal(state.written()[layer], spared)  # ...but new updates spare them
    state.roll_back(1)
    assert rows_equal_base(state) and not state.written()[layer].any()


def retrofit_copy(model, state):
    """The same model with its base rows back, as a restarted process would load it."""
    import copy

    twin = copy.deepcopy(model)
    with torch.no_grad():
        for layer, memory in twin.memory_layers().items():
            memory.values.copy_(state.base[layer])
    return twin


def test_a_prefetched_delta_gives_the_same_rows(memory_model, tmp_path):
    store = DeltaStore(tmp_path)
    state = ModelState(memory_model, store)
    layer, memory = next(iter(state.memories.items()))
    store.save(1, {layer: random_rows(*memory.values.shape[:1], 60, memory.values.shape[1], seed=1)})

    class OneEvent:
        def events_after(self, version):
            return [type("Event", (), {"version": version + 1, "update_id": 1, "action": "apply"})()]

        def delta_hashes(self, update_ids):
            return {}

    state.prefetch(OneEvent())
    assert 1 in state._prefetched
    state.apply(1)
    assert 1 not in state._prefetched  # used once, then dropped
    expected = state.base[layer].clone()
    slots, delta = store.load(1)[layer]
    expected[slots] += delta
    assert torch.equal(memory.values, expected)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_starting_together_migrate_one_at_a_time(backend, request, tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'ledger.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    script = "import sys; from model_store.ledger import Ledger; Ledger(sys.argv[1]).migrate()"
    processes = [subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, errors
    ledger = Ledger(url)
    assert ledger.create_update(document(), {}).id == 1  # one schema, usable
    ledger.engine.dispose()


def test_rows_without_some_updates_for_a_while_and_an_update_applied_out_of_order(memory_model, tmp_path):
    store = DeltaStore(tmp_path)
    state = ModelState(memory_model, store)
    layer, memory = next(iter(state.memories.items()))
    n_slots, dim = memory.values.shape
    for update_id in (1, 2, 3):  # overlapping slot sets
        store.save(update_id, {layer: random_rows(n_slots, 60, dim, update_id)})
        state.apply(update_id)
    live, counts = state.state_hash(), state.write_counts[layer].clone()
    twin = ModelState(retrofit_copy(memory_model, state), store)
    for update_id in (1, 3):
        twin.apply(update_id)
    with state.without([2]):
        assert state.state_hash() == twin.state_hash() and state.active == [1, 3]
        assert not state.written()[layer][store.load(2)[layer][0]].all()  # its rows are free for a while
        memory.values.data[store.load(2)[layer][0]] += 1.0  # whatever the block writes
    assert state.state_hash() == live and state.active == [1, 2, 3]
    assert torch.equal(state.write_counts[layer], counts)
    # Update 2 applied again after 3 (a superseding correction rolled back): summed in id order.
    state.roll_back(2)
    state.apply(2)
    assert state.state_hash() == live
