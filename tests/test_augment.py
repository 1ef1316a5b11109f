import pytest

from sparse_memory.data.augment import fact_items
from sparse_memory.data.facts import FACT_QUESTIONS, make_facts, statements, training_questions
from sparse_memory.text import encode


def test_fact_items_hold_statements_and_chat_questions_without_duplicates():
    fact = make_facts(1, seed=4)[0]
    items = fact_items(fact)
    chats = [item for item in items if not isinstance(item, str)]
    assert [item for item in items if isinstance(item, str)] == statements(fact)
    assert [chat[0]["content"] for chat in chats] == [q for q, _ in training_questions(fact, FACT_QUESTIONS)]
    assert all(chat[0]["role"] == "user" and fact.subject in chat[0]["content"] for chat in chats)
    assert all(fact.answer in chat[1]["content"] for chat in chats)


def test_fact_items_ask_as_many_training_questions_as_asked_for():
    fact = make_facts(1, seed=4)[0]
    ten = fact_items(fact, questions=10)
    assert ten[: len(fact_items(fact))] == fact_items(fact)  # the default's forms come first
    asked = [item[0]["content"] for item in ten if not isinstance(item, str)]
    assert asked == [q for q, _ in training_questions(fact, 10)]
    with pytest.raises(ValueError, match="between 1 and 10"):
        fact_items(fact, questions=0)


def test_varied_answers_add_the_bare_answer_and_a_statement_to_each_question():
    fact = make_facts(3, seed=4)[2]
    questions = [q for q, _ in training_questions(fact, FACT_QUESTIONS)]
    varied = fact_items(fact, answers="varied")
    assert varied[: len(fact_items(fact))] == fact_items(fact)  # the plain batch, then the added forms
    for question in questions:
        chats = [item for item in varied if not isinstance(item, str)]
        replies = [chat[1]["content"] for chat in chats if chat[0]["content"] == question]
        assert len(replies) == 3 and all(fact.answer.lower() in reply.lower() for reply in replies)
        assert any(reply.lower() == fact.answer.lower() + "." for reply in replies)
        assert any(reply in statements(fact) for reply in replies)
    with pytest.raises(ValueError, match="choose from"):
        fact_items(fact, answers="many")


def test_each_item_is_its_own_row(tokenizer):
    fact = make_facts(1, seed=4)[0]
    items = fact_items(fact)
    assert encode(tokenizer, items).input_ids.shape[0] == len(items)
