import torch

from sparse_memory.data.real_facts import QAItem
from sparse_memory.evaluation import ReplyProbe
from sparse_memory.generation import build_prompt, complete, complete_ids, decode_steps, tokenize_prompts
from sparse_memory.modeling import retrofit


def test_step_decoding_matches_transformers_greedy_generate(tiny_llama, tiny_memory, tokenizer):
    model = retrofit(tiny_llama, tiny_memory)
    with torch.no_grad():
        for memory in model.memory_layers().values():
            memory.values.normal_()  # a memory that speaks, so its output takes part
    prompts = [build_prompt(tokenizer, q, chat=True) for q in ["Where was he born?", "What is the capital of France?"]]
    batch = tokenize_prompts(tokenizer, prompts, torch.device("cpu"))
    reference = model.generate(**batch, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    ours = torch.stack(list(decode_steps(model, batch["input_ids"], batch["attention_mask"], 8)), dim=1)
    expected = reference[:, batch["input_ids"].shape[1] :]
    # transformers pads a row after its end-of-sequence token; compare up to there
    for row in range(len(prompts)):
        stop = (expected[row] == tokenizer.eos_token_id).nonzero()
        end = int(stop[0]) + 1 if len(stop) else expected.shape[1]
        assert torch.equal(ours[row, :end], expected[row, :end])


def test_sampling_depends_on_temperature_and_seed(tiny_llama, tokenizer):
    batch = tokenize_prompts(tokenizer, ["The quick brown fox"] * 2, torch.device("cpu"))

    def sample(temperatures, seed):
        generator = torch.Generator().manual_seed(seed)
        steps = decode_steps(tiny_llama, batch["input_ids"], batch["attention_mask"], 12, temperatures, generator)
        return torch.stack(list(steps), dim=1)

    hot = torch.tensor([0.0, 5.0])
    first, again, other = sample(hot, 1), sample(hot, 1), sample(hot, 2)
    assert torch.equal(first, again)  # same seed, same tokens
    assert not torch.equal(first[1], other[1])  # a hot row differs with another seed
    assert torch.equal(first[0], other[0])  # the greedy row never does


def test_complete_returns_only_the_completion(tiny_llama, tokenizer):
    prompt = build_prompt(tokenizer, "What is the capital of France?", chat=True)
    (text,) = complete(tiny_llama, tokenizer, [prompt], max_new_tokens=5)
    assert "capital of France" not in text
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 6


def test_prompts_are_padded_on_the_left_without_changing_the_tokenizer(tokenizer):
    class Watched(type(tokenizer)):
        def __setattr__(self, name, value):
            if name == "padding_side":
                raise AssertionError("tokenize_prompts changed the shared tokenizer's padding side")
            super().__setattr__(name, value)

    side = tokenizer.padding_side
    tokenizer.__class__ = Watched
    try:
        batch = tokenize_prompts(tokenizer, ["The quick brown fox jumps", "Hi"], torch.device("cpu"))
    finally:
        tokenizer.__class__ = Watched.__mro__[1]
    assert tokenizer.padding_side == side
    assert batch["attention_mask"][:, -1].all() and not batch["attention_mask"][1, 0]  # left padding


def test_the_reply_probe_tells_without_generating_whether_each_answer_still_comes_out(
    tiny_llama, tiny_memory, tokenizer
):
    """The probe's verdict per fact is exactly whether greedy decoding still gives the base
    model's reply through its answer, as the model's rows change."""
    model = retrofit(tiny_llama, tiny_memory)
    memory = model.memory_layers()[max(model.memory_layers())]
    with torch.no_grad():
        memory.values.normal_()  # a memory that speaks: its replies are not empty
    questions = [f"Where was person {n} born?" for n in range(8)]
    replies = complete(model, tokenizer, [build_prompt(tokenizer, q, chat=True) for q in questions], 8)
    # Each fact's answer is what the model says: its reply answers it right.
    items = [QAItem(q, (reply,), "test", "") for q, reply in zip(questions, replies, strict=True) if reply]
    probe = ReplyProbe.build(model, tokenizer, items)
    assert len(probe) >= 6 and probe.score(model) == 1.0  # a near-tie a forward pass breaks otherwise is left out
    unknown = QAItem("Where was nobody born?", ("Zzyzzx",), "test", "")
    assert len(ReplyProbe.build(model, tokenizer, [unknown])) == 0  # not answered right: not probed
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for scale in (0.02, 0.1, 0.5, 2.0):
        with torch.no_grad():
            memory.values.add_(torch.randn(memory.values.shape, generator=generator) * scale)
        kept = probe.kept_rows(model).tolist()
        prompts = [build_prompt(tokenizer, item.question, chat=True) for item in probe.items]
        now = complete_ids(model, tokenizer, prompts, 24)
        assert kept == [ids[: len(reply)] == reply for ids, reply in zip(now, probe.replies, strict=True)]
        assert probe.score(model) == sum(kept) / len(kept)
        seen |= set(kept)
    assert seen == {True, False}  # both verdicts were checked against decoding
