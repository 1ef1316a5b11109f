import pytest

from sparse_memory.text import SequenceTooLong, encode, find_spans, render_chat


def _content_text(batch, row):
    ids = batch.input_ids[row][batch.content_mask[row]]
    return batch.texts[row], ids


def test_plain_text_is_all_content_and_padding_is_not(tokenizer):
    batch = encode(tokenizer, ["Varek was born in Tessmoor.", "Hi."])
    assert batch.content_mask[0].all()
    assert batch.content_mask[1].sum() == batch.attention_mask[1].sum() < batch.attention_mask[0].sum()
    assert not batch.content_mask[1][batch.attention_mask[1] == 0].any()


def test_chat_template_tokens_are_not_content(tokenizer):
    question = "Where was Varek born?"
    batch = encode(tokenizer, [[{"role": "user", "content": question}]], add_generation_prompt=True)
    text = batch.texts[0]
    assert "<|im_start|>system" in text and text.endswith("<|im_start|>assistant\n")
    content_ids = batch.input_ids[0][batch.content_mask[0]]
    assert tokenizer.decode(content_ids) == question
    start_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert start_id not in content_ids.tolist()


def test_assistant_answer_is_content_system_prompt_is_not(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who is Varek?"},
        {"role": "assistant", "content": "A glassblower."},
    ]
    text, spans = render_chat(tokenizer, messages)
    assert [text[a:b] for a, b in spans] == ["Be brief.", "Who is Varek?", "A glassblower."]
    batch = encode(tokenizer, [messages])
    assert tokenizer.decode(batch.input_ids[0][batch.content_mask[0]]) == "Who is Varek?A glassblower."


def test_spans_mark_name_tokens(tokenizer):
    text = "Varek Olm met Varek Olm."
    assert find_spans(text, "Varek Olm") == [(0, 9), (14, 23)]
    batch = encode(tokenizer, [text])
    mask = batch.mask_for_spans([find_spans(text, "Varek Olm")])
    assert tokenizer.decode(batch.input_ids[0][mask[0]]) == "Varek Olm Varek Olm"


def test_unlearned_phrases_stay_content_but_leave_the_loss(tokenizer):
    chat = [
        {"role": "user", "content": "Where was Varek Olm born?"},
        {"role": "assistant", "content": "Varek Olm was born in Ostrava."},
    ]
    batch = encode(tokenizer, ["Varek Olm was born in Ostrava.", chat], unlearned=["Varek Olm"])
    assert encode(tokenizer, ["Varek Olm."]).loss_mask is None  # nothing unlearned: every content token learns
    assert (batch.loss_mask <= batch.content_mask).all()
    assert tokenizer.decode(batch.input_ids[0][batch.loss_mask[0]]) == " was born in Ostrava."
    assert tokenizer.decode(batch.input_ids[1][batch.loss_mask[1]]) == "Where was born? was born in Ostrava."
    unlearned = batch.content_mask & ~batch.loss_mask
    # the name in the question, then in the answer
    assert tokenizer.decode(batch.input_ids[1][unlearned[1]]) == " Varek OlmVarek Olm"
    group_sums = sum(int(group.loss_mask.sum()) for group in batch.length_groups())
    assert group_sums == int(batch.loss_mask.sum())  # sub-batches keep their rows of the mask
    with pytest.raises(ValueError, match="unlearned phrases must not be empty"):
        encode(tokenizer, ["Varek."], unlearned=[""])


def test_template_that_drops_content_is_an_error(tokenizer):
    class Dropping:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "nothing here"

    with pytest.raises(ValueError, match="dropped a message"):
        render_chat(Dropping(), [{"role": "user", "content": "hello"}])


def test_answer_mask_marks_only_assistant_answers(tokenizer):
    chat = [{"role": "user", "content": "Where was Varek born?"}, {"role": "assistant", "content": "Ostrava"}]
    batch = encode(tokenizer, ["Varek was born in Ostrava.", chat])
    assert not batch.answer_mask[0].any()  # a plain text has no answer
    answer = tokenizer.decode(batch.input_ids[1][batch.answer_mask[1]])
    assert answer == "Ostrava"
    assert (batch.answer_mask <= batch.content_mask).all()


def test_length_groups_split_short_rows_from_long_ones_without_cutting_tokens(tokenizer):
    chat = [{"role": "user", "content": "Where was Varek born?"}, {"role": "assistant", "content": "In Tessmoor."}]
    batch = encode(tokenizer, ["Varek.", chat, "Varek was born.", chat[:1] + [{"role": "assistant", "content": "No"}]])
    short, long = batch.length_groups()
    assert short.texts == ["Varek.", "Varek was born."]
    assert len(long.texts) == 2 and all(text.startswith("<|im_start|>") for text in long.texts)
    for group in (short, long):
        assert group.input_ids.shape[1] == int(group.attention_mask.sum(1).max())  # no all-padding column
        assert int(group.content_mask.sum()) > 0
    # every real token and every content token is in exactly one group
    assert sum(int(g.attention_mask.sum()) for g in (short, long)) == int(batch.attention_mask.sum())
    assert sum(int(g.content_mask.sum()) for g in (short, long)) == int(batch.content_mask.sum())
    assert sum(int(g.answer_mask.sum()) for g in (short, long)) == int(batch.answer_mask.sum())
    same_length = encode(tokenizer, ["Varek was born.", "Varek was born!"])
    assert same_length.attention_mask.all()  # nothing to save: the batch stays whole
    assert same_length.length_groups()[0] is same_length


def test_a_training_batch_is_padded_on_the_right_whatever_the_tokenizer_was_left_at(tokenizer):
    # The serving engine and the learner may share a tokenizer: its padding side is no state to rely on.
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        batch = encode(tokenizer, ["Varek was born in Tessmoor.", "Hi."])
    finally:
        tokenizer.padding_side = side
    assert batch.attention_mask[:, 0].all()  # every row starts with a real token
    assert batch.content_mask[1].sum() == batch.attention_mask[1].sum()


def test_a_sequence_longer_than_the_window_is_cut_or_refused(tokenizer):
    long = " ".join(["Varek visited Tessmoor."] * 40)
    assert encode(tokenizer, [long, "Hi."], max_length=32).input_ids.shape[1] == 32
    with pytest.raises(SequenceTooLong, match="does not fit in 32"):
        encode(tokenizer, ["Hi.", long], max_length=32, truncate=False)
    fits = encode(tokenizer, ["Varek visited Tessmoor."], max_length=32, truncate=False)
    assert fits.attention_mask.all()
