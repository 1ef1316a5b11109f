import math

import torch

from sparse_memory.modeling import retrofit
from sparse_memory.slots import BackgroundStats, access_counts, compute_background_stats, tfidf_scores, top_slots
from sparse_memory.text import encode


def test_access_counts_skip_padding_and_masked_positions():
    accesses = torch.tensor([[[0, 1], [1, 2], [-1, -1]], [[3, 3], [-1, -1], [-1, -1]]])
    assert access_counts(accesses, 5).tolist() == [1, 2, 1, 2, 0]
    content = torch.tensor([[False, True, False], [True, False, False]])
    assert access_counts(accesses, 5, content).tolist() == [0, 1, 1, 2, 0]


def test_tfidf_matches_a_hand_computed_example():
    counts = torch.tensor([3, 1, 0, 4])
    doc_freq = torch.tensor([9, 0, 2, 1])
    scores = tfidf_scores(counts, doc_freq, n_batches=9)
    # tf = c / 8; idf = log((9 + 1) / (df + 1))
    expected = [3 / 8 * math.log(10 / 10), 1 / 8 * math.log(10 / 1), 0.0, 4 / 8 * math.log(10 / 2)]
    assert torch.allclose(scores, torch.tensor(expected, dtype=torch.float64))
    # Slot 0 is read in every background batch: frequent but not specific, so it scores 0.
    assert top_slots(scores, 2).tolist() == [3, 1]
    assert top_slots(scores, 10).tolist() == [3, 1]  # only positive scores are selectable


def test_equal_scores_go_to_the_lower_slot_id_whatever_else_is_spared():
    scores = torch.tensor([0.2, 0.5, 0.0, 0.2, 0.5, 0.2], dtype=torch.float64)
    assert top_slots(scores, 4).tolist() == [1, 4, 0, 3]
    scores[1] = 0.0  # spared: the rest keep their order
    assert top_slots(scores, 3).tolist() == [4, 0, 3]


def test_background_stats_count_batches_not_reads_and_ignore_padding(tiny_llama, tiny_memory, tokenizer, tmp_path):
    model = retrofit(tiny_llama, tiny_memory)
    short = "Varek was born in Tessmoor."
    long = "The quick brown fox jumps over the lazy dog many times over."
    padded = encode(tokenizer, [short, long])
    assert padded.attention_mask[0].sum() < padded.attention_mask[1].sum()
    stats = compute_background_stats(model, [padded, encode(tokenizer, [short])])
    assert stats.n_batches == 2
    alone = compute_background_stats(model, [encode(tokenizer, [short]), encode(tokenizer, [long])])
    # Each slot counts once per batch that read it; a padded batch reads what its real tokens read.
    short_slots = set(model.memory_accesses(*_ids_mask(tokenizer, short))[1].flatten().tolist())
    long_slots = set(model.memory_accesses(*_ids_mask(tokenizer, long))[1].flatten().tolist())
    df = stats.doc_freq[1]
    for slot in short_slots:
        assert df[slot] == 2
    for slot in long_slots - short_slots:
        assert df[slot] == 1
    assert int((df > 0).sum()) == len(short_slots | long_slots)
    expected_alone = [(slot in short_slots) + (slot in long_slots) for slot in range(df.numel())]
    assert alone.doc_freq[1].tolist() == expected_alone
    stats.save(tmp_path)
    loaded = BackgroundStats.load(tmp_path)
    assert loaded.n_batches == 2 and torch.equal(loaded.doc_freq[1], df)
    assert 0 < loaded.usage(1) < 1


def _ids_mask(tokenizer, text):
    batch = encode(tokenizer, [text])
    return batch.input_ids, batch.attention_mask


def test_no_slot_a_chat_template_token_reads_is_chosen(tiny_llama, tiny_memory, tokenizer):
    from sparse_memory.data.augment import fact_items
    from sparse_memory.data.facts import make_facts
    from sparse_memory.slots import select_slots

    model = retrofit(tiny_llama, tiny_memory)
    batch = encode(tokenizer, fact_items(make_facts(1, seed=0)[0]))
    template = batch.attention_mask.bool() & ~batch.content_mask
    assert template.any() and batch.content_mask.any()
    reads = model.memory_accesses(batch.input_ids, batch.attention_mask)[1]
    template_slots = set(reads[template].flatten().tolist())

    spared, _ = select_slots(model, batch, t=64, ranking="tf", spare_template_reads=True)[1]
    unspared, _ = select_slots(model, batch, t=64, ranking="tf")[1]
    assert spared.numel() > 0
    assert not template_slots & set(spared.tolist())
    # Content tokens read some of the same slots: the paper's ranking would have written them.
    assert template_slots & set(unspared.tolist())


def test_slots_where_general_replies_open_are_never_chosen(tiny_llama, tiny_memory, tokenizer):
    from sparse_memory.evaluation import general_replies
    from sparse_memory.slots import opening_mask, reply_opening_slots, select_slots

    model = retrofit(tiny_llama, tiny_memory)
    replies = encode(tokenizer, general_replies(64))
    never = reply_opening_slots(model, replies)[1]
    opening_reads = model.memory_accesses(replies.input_ids, replies.attention_mask)[1][
        opening_mask(replies) & replies.answer_mask
    ]
    assert 0 < int(never.sum()) < opening_reads.unique().numel()  # the shared ones, not every one
    chat = [
        {"role": "user", "content": "What is Sarniwick proud of?"},
        {"role": "assistant", "content": "The lighthouse."},
    ]
    batch = encode(tokenizer, ["The lighthouse of Sarniwick is old.", chat])
    spared, _ = select_slots(model, batch, t=256, ranking="tf", never={1: never})[1]
    unspared, _ = select_slots(model, batch, t=256, ranking="tf")[1]
    assert spared.numel() > 0 and not never[spared].any()
    assert never[unspared].any()  # an answer opening "The" reads some: the paper's ranking writes them


def test_slots_where_real_answers_are_predicted_leave_the_held_out_facts_out(tiny_llama, tiny_memory, tokenizer):
    from sparse_memory.data.real_facts import all_real_facts
    from sparse_memory.evaluation import answer_slots, stated_answer
    from sparse_memory.slots import chance_reads

    model = retrofit(tiny_llama, tiny_memory)
    facts = all_real_facts()
    kept = [item for item in facts[:: len(facts) // 12] if item.answers[0] in item.statement][:10]
    held_out = [item for item in facts if item not in kept]
    spared = answer_slots(model, tokenizer, held_out)[1]
    assert not answer_slots(model, tokenizer, facts)[1].any()  # every fact held out: nothing spared

    # Counted directly, fact by fact: the reads at the token before each answer token.
    readers, n_positions = torch.zeros_like(spared, dtype=torch.long), 0
    for item in kept:
        batch = encode(tokenizer, [stated_answer(item)])
        reply_start = batch.content_spans[0][-1][0]
        start = batch.texts[0].index(item.answers[0], reply_start)
        answer = batch.mask_for_spans([[(start, start + len(item.answers[0]))]])[0]
        predicting = torch.cat([answer[1:], torch.zeros(1, dtype=torch.bool)])
        n_positions += int(predicting.sum())
        reads = model.memory_accesses(batch.input_ids, batch.attention_mask)[1][0][predicting]
        readers[reads[reads >= 0].unique()] += 1
    least = max(2, chance_reads(model, n_positions))
    assert spared.any() and (readers == 1).any()  # some slots shared by answers, some read by one
    assert torch.equal(spared, readers >= least)
