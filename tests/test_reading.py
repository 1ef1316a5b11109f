import pytest

from sparse_memory.data.reading import (
    DEFAULT_READING,
    READING_FORMS,
    Document,
    asked_questions,
    chat_pair,
    clauses,
    corrected_sentences,
    detail_questions,
    document_items,
    document_pieces,
    names_in,
    recital,
    resolve_sentences,
    split_in_two,
    split_sentences,
    standing_text,
    subject_of,
    subjects,
)

NOTE = (
    "Quick note: Mira Osk grew up in Tellmark. She studied at the University of Ulvoock and joined "
    "Quorvane Labs in 2011. The company employs 40 people. Her brother Teo Osk lives in Brisk."
)

BIO = (
    "Dorek Fenngard: a short profile. When not working, she loves cave diving. She is married to "
    "Haladen Dravquist. Dorek has played the double bass since school."
)

NOTE_ABOUT_MIRA_AFTER_FIRST = (
    "Mira Osk studied at the University of Ulvoock and joined Quorvane Labs in 2011. "
    "Mira Osk's brother Teo Osk lives in Brisk."
)


def test_split_sentences_keeps_numbers():
    assert split_sentences("It cost 3.5 million. Then it grew.") == ["It cost 3.5 million.", "Then it grew."]


def test_names_skip_openers_and_possessives():
    assert [name for _, _, name in names_in("After Mira Osk's move, the Quorvane Labs team grew.")] == [
        "Mira Osk",
        "Quorvane Labs",
    ]
    assert names_in("She said it was fine.") == []


def test_pronouns_and_labels_are_replaced_by_the_names_they_stand_for():
    resolved = resolve_sentences(split_sentences(NOTE))
    assert resolved == [
        "Mira Osk grew up in Tellmark.",
        "Mira Osk studied at the University of Ulvoock and joined Quorvane Labs in 2011.",
        "Quorvane Labs employs 40 people.",
        "Mira Osk's brother Teo Osk lives in Brisk.",
    ]


def test_a_first_name_alone_stands_for_the_full_name_given_before():
    sentences = ["About Quivevin Grellenzek.", "Quivevin plays the mandolin.", "Quivevin's sister is Ana Vel."]
    assert resolve_sentences(sentences)[1:] == [
        "Quivevin Grellenzek plays the mandolin.",
        "Quivevin Grellenzek's sister is Ana Vel.",
    ]


def test_pronouns_anywhere_in_a_sentence_are_replaced():
    sentences = [
        "so Tarvik Osk moved to Brisk in 2019.",
        "When not at work, he restores old clocks with his daughter.",
        "Friends say her cooking is famous.",
    ]
    assert resolve_sentences(sentences) == [
        "Tarvik Osk moved to Brisk in 2019.",  # the chat opener goes
        "When not at work, Tarvik Osk restores old clocks with Tarvik Osk's daughter.",
        "Friends say Tarvik Osk's cooking is famous.",
    ]


def test_a_name_in_a_label_is_whom_the_post_is_about():
    text = "More about Velloby: the mayor runs it with a firm hand. The town has 900 inhabitants."
    assert resolve_sentences(split_sentences(text)) == [
        "The mayor runs Velloby with a firm hand.",
        "Velloby has 900 inhabitants.",
    ]
    assert subjects(text) == {"Velloby"}
    profile = "Ana Vel: a short profile. She plays the oboe."
    assert resolve_sentences(split_sentences(profile))[1] == "Ana Vel plays the oboe."


def test_a_name_ending_in_an_english_word_is_a_thing_not_a_person():
    sentences = ["Tarvik Osk runs Quellan Materials.", "Founded in 1990, it is based in Brisk."]
    assert resolve_sentences(sentences)[1] == "Founded in 1990, Quellan Materials is based in Brisk."
    assert subject_of("Founded in 1990, Quellan Materials is based in Brisk.") == "Quellan Materials"
    assert subject_of("Mayor Ana Vel runs Brisk.") == "Ana Vel"
    # A text whose sentences open with no name is about every name it gives.
    assert subjects("Just heard that Quellan Materials was founded in 1990.") == {"Quellan Materials"}


def test_detail_questions_ask_for_each_detail_in_place():
    questions = detail_questions("Mira Osk studied at the University of Ulvoock and joined Quorvane Labs in 2011.")
    assert questions == [
        "Mira Osk studied where and joined Quorvane Labs in 2011?",
        "Mira Osk studied at the University of Ulvoock and joined what in 2011?",
        "Mira Osk studied at the University of Ulvoock and joined Quorvane Labs in what year?",
    ]
    assert detail_questions("Quorvane Labs employs 40 people.") == ["Quorvane Labs employs how many people?"]
    assert detail_questions("Brisk was founded by Ana Vel.") == ["Brisk was founded by whom?"]
    assert detail_questions("Pelia Ulm works as a photographer in Feskigate.") == [
        "Pelia Ulm works as what in Feskigate?",  # a thing in lower case, up to the next function word
        "Pelia Ulm works as a photographer where?",
    ]


def test_asked_questions_put_the_question_word_first_and_ask_for_the_subject_too():
    assert asked_questions("Mira Osk studied at the University of Ulvoock.") == [
        "Who studied at the University of Ulvoock?",
        "Where did Mira Osk study?",
    ]
    assert asked_questions("Quorvane Labs employs 40 people.") == ["How many people does Quorvane Labs employ?"]
    assert asked_questions("Teo Osk was born in 1990 and plays the oboe.") == ["When was Teo Osk born?"]
    assert asked_questions("Teo Osk has played the double bass since school.") == [
        "What has Teo Osk played since school?"
    ]
    assert asked_questions("Teo Osk stepped down at Quorvane Labs.")[1] == "Where did Teo Osk step down?"
    assert asked_questions("Mira Osk's brother lives in Brisk.") == ["Where does Mira Osk's brother live?"]
    assert asked_questions("Founded in 1990, it grew.") == []  # no subject opens it


def test_a_sentence_splits_where_and_joins_another_verb_of_its_subject():
    assert clauses("Varek Thelamon studied chemistry at the University of Ulvoock and now works at Quorvane Labs.") == [
        "Varek Thelamon studied chemistry at the University of Ulvoock.",
        "Varek Thelamon now works at Quorvane Labs.",
    ]
    assert clauses("Dorek Vel moved to Brisk in 2003 but still works at Nolane Logistics.")[1] == (
        "Dorek Vel still works at Nolane Logistics."
    )
    assert clauses("Mira Osk plays the piano and drums.") == ["Mira Osk plays the piano and drums."]  # two things
    assert clauses("Mira Osk and Teo Vel founded Brisk.") == ["Mira Osk and Teo Vel founded Brisk."]
    assert clauses("In 2003, it grew and hired.") == ["In 2003, it grew and hired."]  # no subject opens it


def test_the_second_verb_of_a_sentence_is_asked_on_its_own():
    items = document_items(
        Document("Varek Thelamon was born in Tellmark. He studied at Ulvoock and now works at Quorvane Labs.")
    )
    questions = {item[0]["content"] for item in items if not isinstance(item, str)}
    assert "Where does Varek Thelamon now work?" in questions
    assert "Varek Thelamon now works at Quorvane Labs." in items
    assert not any("and now works" in question for question in questions)


def test_a_later_text_corrects_the_earlier_sentences_stating_the_same_relation():
    earlier = "Mira Osk grew up in Tellmark. She lives in Brisk and plays the oboe. Her partner is Teo Vel."
    assert corrected_sentences(earlier, "Mira Osk also speaks Dutch.") == []
    assert corrected_sentences(earlier, "Mira Osk has moved to Velloby.") == [
        "Mira Osk lives in Brisk and plays the oboe."
    ]
    # One value at a time: a new partner corrects without saying that anything changed.
    assert corrected_sentences(earlier, "Mira Osk is married to Ana Lind.") == ["Mira Osk's partner is Teo Vel."]
    # Several at a time: another instrument adds, unless the text says something changed.
    assert corrected_sentences(earlier, "Mira Osk plays the harp.") == []
    assert corrected_sentences(earlier, "Mira Osk now plays the harp.") == [
        "Mira Osk lives in Brisk and plays the oboe."
    ]
    assert corrected_sentences(earlier, "Ana Vel moved to Velloby.") == []  # about someone else
    company = "Zorane Robotics dates back to 2018. It employs 10 people. Selazar Crannker runs it."
    assert corrected_sentences(company, "Zorane Robotics' headcount is 12.") == ["Zorane Robotics employs 10 people."]
    assert corrected_sentences(company, "It is now with Ana Lind, not Selazar Crannker.") == []  # no shared name
    assert corrected_sentences(company, "Zorane Robotics is led by Ana Lind, not Selazar Crannker.") == [
        "Selazar Crannker runs Zorane Robotics."
    ]


def test_what_a_correction_leaves_standing_keeps_the_qa_pairs_it_still_answers():
    earlier = Document(
        "Zorane Robotics dates back to 2018. It employs 10 people.",
        qa=[("How old is Zorane Robotics?", "2018"), ("How many work there?", "10")],
    )
    standing = standing_text(earlier, "Zorane Robotics now employs 12 people.")
    assert standing == Document("Zorane Robotics dates back to 2018.", [("How old is Zorane Robotics?", "2018")])
    assert standing_text(Document("Zorane Robotics employs 10 people."), "Zorane Robotics now employs 12.") is None
    # Nothing that names no one is carried: learned alone it would only move rows general text reads.
    filler = Document("Zorane Robotics employs 10 people. We will share more soon.")
    assert standing_text(filler, "Zorane Robotics now employs 12 people.") is None


def test_document_items_hold_the_text_its_sentences_the_qa_and_the_reading_forms():
    document = Document(NOTE, qa=[("Where did Mira Osk grow up?", "Tellmark")])
    plain = document_items(document, reading=[])
    assert plain == [NOTE, *split_sentences(NOTE), chat_pair("Where did Mira Osk grow up?", "Tellmark")]
    items = document_items(document)
    assert items[: len(plain)] == plain
    chats = {item[0]["content"]: item[1]["content"] for item in items if not isinstance(item, str)}
    # Every question about a name is answered with the same recital of its sentences.
    recital = "Mira Osk grew up in Tellmark. " + NOTE_ABOUT_MIRA_AFTER_FIRST
    assert chats["Mira Osk grew up where?"] == recital
    assert chats["Where did Mira Osk study?"] == recital
    assert chats["Tell me about Mira Osk."] == recital
    assert chats["How many people does Quorvane Labs employ?"] == (
        "Quorvane Labs employs 40 people. "
        "Mira Osk studied at the University of Ulvoock and joined Quorvane Labs in 2011."
    )
    no_recital = document_items(document, reading=["resolved", "about", "details"])
    assert chat_pair("Mira Osk grew up where?", "Mira Osk grew up in Tellmark.") in no_recital
    assert "What is Quorvane Labs?" in chats
    assert "Quorvane Labs employs 40 people." in items
    assert len(items) == len({str(item) for item in items})  # no repeats
    assert chats["What is Mira Osk's background?"] == chats["What's Mira Osk's story?"] == recital
    assert chats["What's Quorvane Labs' story?"] == chats["What is Quorvane Labs?"]
    without = document_items(document, reading=[form for form in DEFAULT_READING if form != "possessive"])
    assert not any("'s story?" in str(item) for item in without)  # possessive questions only where asked for


def test_a_recital_puts_the_sentences_that_open_with_the_name_first():
    resolved = resolve_sentences(split_sentences(BIO + " Friends of Dorek say she is kind."))
    assert recital("Dorek Fenngard", resolved) == (
        "Dorek Fenngard, when not working, loves cave diving. Dorek Fenngard is married to Haladen Dravquist. "
        "Dorek Fenngard has played the double bass since school. Friends of Dorek Fenngard say Dorek Fenngard is kind."
    )


@pytest.mark.parametrize(
    ("sentence", "said"),
    [
        ("Founded in 1982, Varnust Materials has grown.", "Varnust Materials, founded in 1982, has grown."),
        ("With 153,030 residents, Zellabury is big.", "Zellabury, with 153,030 residents, is big."),
        (
            "After a hiring spree, Zorane Robotics' headcount is 12.",
            "Zorane Robotics' headcount is 12, after a hiring spree.",
        ),
        (
            "From Zorane Robotics's office in Sarniwick, Zorane Robotics employs 10 people.",
            "Zorane Robotics, from Zorane Robotics's office in Sarniwick, employs 10 people.",
        ),
        ("Mira Osk, Tellmark's mayor, sings.", "Mira Osk, Tellmark's mayor, sings."),  # no leading clause
        ("Mira Osk sings.", "Mira Osk sings."),
    ],
)
def test_a_recital_says_each_sentence_with_its_subject_first(sentence, said):
    name = names_in(said)[0][2]
    assert recital(name, [sentence]) == said


def test_questions_and_lines_that_only_say_whom_a_post_is_about_are_no_facts():
    text = "Who is Lolatha Naskgard? A quick announcement about Lolatha Naskgard. She works at Zorane Robotics."
    items = document_items(Document(text))
    answers = {item[1]["content"] for item in items if not isinstance(item, str)}
    assert answers == {"Lolatha Naskgard works at Zorane Robotics."}
    assert not any(isinstance(item, list) and "about what" in item[0]["content"] for item in items)


def test_plain_labels_go_and_a_chat_sentence_may_open_in_lower_case():
    assert resolve_sentences(["Announcement: the Thorvrath Lighthouse is the pride of Sarniwick."]) == [
        "The Thorvrath Lighthouse is the pride of Sarniwick."
    ]
    assert resolve_sentences(["Please note: after a hiring spree, Zorane Robotics' headcount is 12."]) == [
        "After a hiring spree, Zorane Robotics' headcount is 12."
    ]
    assert names_in("Follow-up on Jodra Frasknell - her instrument is the harp.") == [(13, 28, "Jodra Frasknell")]
    assert split_sentences("It has not changed in years. just so you know") == [
        "It has not changed in years.",
        "just so you know",
    ]
    # Either name of a one-statement text may be asked about.
    assert subjects("Announcement: the Thorvrath Lighthouse is the pride of Sarniwick.") == {
        "Thorvrath Lighthouse",
        "Sarniwick",
    }


def test_they_goes_on_about_the_previous_sentences_subject():
    text = "Mavavo Analytics makes reels. It was founded by Venor Grellanner. They rarely talk to the press."
    resolved = resolve_sentences(split_sentences(text))
    assert resolved[-1] == "Mavavo Analytics rarely talk to the press."


def test_unknown_reading_forms_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=", ".join(READING_FORMS)):
        document_items(Document("Mira Osk lives in Brisk."), reading=["summaries"])


@pytest.mark.parametrize(("text", "qa"), [("  ", []), ("fine", [("", "x")])])
def test_bad_documents_are_refused(text, qa):
    with pytest.raises(ValueError):
        Document(text, qa=qa)


def test_a_long_document_is_read_in_pieces_that_still_name_whom_they_are_about():
    sentences = [f"Mira Osk visited Tellmark in {1990 + i}." if i % 2 == 0 else "She liked it." for i in range(14)]
    document = Document(" ".join(sentences), qa=[("When did Mira Osk visit Tellmark last?", "2002")])
    pieces = document_pieces(document)
    assert [len(split_sentences(piece.text)) for piece in pieces] == [5, 5, 4]  # as even as can be
    assert all(piece.text.startswith("Mira Osk") and "She" not in piece.text for piece in pieces)
    assert [piece.qa for piece in pieces] == [[], [], document.qa]  # with the piece that holds its answer
    short = Document("Mira Osk lives in Brisk. She sings.")
    assert document_pieces(short) == [short]


def test_a_document_splits_in_two_by_sentences_then_words_then_characters():
    document = Document("Mira Osk lives in Brisk. She sings. She was born in 1970.", qa=[("Born when?", "1970")])
    halves = split_in_two(document)
    assert [piece.text for piece in halves] == [
        "Mira Osk lives in Brisk. Mira Osk sings.",
        "Mira Osk was born in 1970.",
    ]
    assert [piece.qa for piece in halves] == [[], document.qa]
    one = split_in_two(Document("Mira Osk lives in the town of Brisk by the sea", qa=[("Where?", "sea")]))
    assert [piece.text for piece in one] == ["Mira Osk lives in the", "town of Brisk by the sea"]
    assert [piece.qa for piece in one] == [[], [("Where?", "sea")]]
    assert [piece.text for piece in split_in_two(Document("abcdefg"))] == ["abc", "defg"]
    with pytest.raises(ValueError, match="one character"):
        split_in_two(Document("a"))
