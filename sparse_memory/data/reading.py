"""From a document a user posts to the sequences of one training batch: reading it.

People post prose (a note, a bio, a news paragraph), rarely with questions, and later ask about
it in other words, through the chat format. A model trained on the text alone learns to continue
the text, not to answer a question about it. So the batch holds, beside the text as written:

* ``resolved``: each sentence on its own, chat openers ("so") and labels ("Update:") dropped,
  and its pronouns ("she", "his", "its", "the company") replaced by the names they stand for, so
  that a sentence read alone still says whom it is about;
* ``about``: chat forms that ask about each entity in general ("Tell me about X.", "Who is X?"),
  answered with the document's sentences about it, those that open with its name first;
* ``details``: for each sentence and each detail in it (a year, a number, a name other than the
  sentence's subject), a question that asks for that detail, the detail's place taken by a
  question word ("Mira Osk grew up where?"), answered with the whole sentence;
* ``questions``: each detail asked as people ask, the question word first ("Where did Mira Osk
  grow up?"), and the subject asked for ("Who grew up in Tellmark?"). Both ask clause by
  clause: where "and" joins a second verb of the subject ("X studied at Y and now works at Z"),
  each verb gets a clause of its own that says the subject again (also learned as a sentence);
* ``recite``: every question about a name (``about``, ``details``, ``questions``) answered with
  the same recital of the document's sentences that state something about it, each said with
  its subject first ("X, founded in 1982, has grown"), those that open with the name first.
  A reply that starts with the name then has one way to go on, whatever the question's wording,
  and goes through what the document says; answers that each put another sentence first teach
  several ways to go on after the name, and a question worded otherwise takes the model's own;
* ``possessive`` (with ``about``): general questions that say the name with a possessive
  ("What is X's background?"), answered like ``about``: a question about one detail mostly
  says the name so ("What is X's job?"), and a reply tends to go on after the name as the
  question did ("X's job is ...") rather than with what was learned.

The rules need no parser and no model: they read capitalised names, years, numbers and the
things a determiner opens ("the violin"), which is where the facts of a document live. QA pairs
the user supplies are added in chat form as they are. The same rules tell which sentences of an
earlier document a later one corrects (``corrected_sentences``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from sparse_memory.text import Conversation, TextOrChat

READING_FORMS: tuple[str, ...] = ("resolved", "about", "details", "questions", "recite", "possessive")
DEFAULT_READING: tuple[str, ...] = READING_FORMS


def chat_pair(question: str, answer: str) -> Conversation:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def unique_items(items: Iterable[TextOrChat]) -> list[TextOrChat]:
    """``items`` without repeats, in order: identical copies would only weigh one form more."""
    seen, kept = set(), []
    for item in items:
        key = item if isinstance(item, str) else tuple((m["role"], m["content"]) for m in item)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


# A sentence may open in lower case in a chat message ("... in years. just so you know").
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Za-z0-9\"'])")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


@dataclass
class Document:
    """A free text to learn, with optional question-answer pairs about it."""

    text: str
    qa: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a document's text must not be empty")
        for question, answer in self.qa:
            if not question.strip() or not answer.strip():
                raise ValueError("every QA pair needs a non-empty question and answer")


# Capitalised words that open sentences without naming anything.
_NOT_NAMES = frozenset(
    """a an the this that these those he she it they we i you his her its their our my your
    after before since when while once as at in on by for from with of to into over under about
    today yesterday now then later also and but so yet or if though although because last next
    update correction note news fyi hi hello hey quick just please welcome congratulations
    announcement reminder meanwhile however there here what who where which why how
    born founded based known located married formerly currently recently previously nowadays
    mr mrs ms dr prof i'll i'm i've i'd we'll let's
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december""".split()
)
_NAME_WORD = r"[A-Z][\w'\-]*[a-z0-9][\w'\-]*"
_NAME = re.compile(rf"(?:{_NAME_WORD})(?:\s+(?:(?:of|de|van|von|la|le|the)\s+)?(?:{_NAME_WORD}))*")
_ORGANISATION = re.compile(
    r"\b(?:Labs?|Ltd|Inc|Group|Works|Systems|Industries|Company|Corp|Co|Studios?|Partners|Holdings|"
    r"Foods|Motors|Bank|Institute|University|College|Academy|Press|Records|Energy|Technologies|Analytics|Biotech|Tech)\b"
)
_YEAR = re.compile(r"\b(?:1[6-9]\d\d|20\d\d)\b")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")


WORD_LIST = Path("/usr/share/dict/words")  # Debian's wamerican, installed by `make data`


@cache
def common_words() -> frozenset[str]:
    """English words in lower case: a capitalised one that opens a sentence names nothing."""
    if not WORD_LIST.is_file():
        raise FileNotFoundError(f"{WORD_LIST} is missing: install the Debian package wamerican (`make data`)")
    return frozenset(word for word in WORD_LIST.read_text().split() if word.islower())


def names_in(sentence: str) -> list[tuple[int, int, str]]:
    """The capitalised names of a sentence as (start, end, name); a sentence's first word counts
    only when it is no common word ("The", "After", "Friends")."""
    found = []
    for match in _NAME.finditer(sentence):
        start, name = match.start(), match.group()
        words = name.split()
        opens = start == 0 or sentence[:start].rstrip().endswith((":", "-", ".", "!", "?"))
        # Leading opener words ("After Mira Osk ...", "The Quorvane ...") are not part of the name.
        while words and (words[0].lower().strip("'") in _NOT_NAMES or (opens and _is_common(words[0]))):
            start += sentence[start:].index(words[0]) + len(words[0])
            start += len(sentence[start:]) - len(sentence[start:].lstrip())
            words = words[1:]
        if words and words[-1].endswith(("'s", "s'")):  # "Mira Osk's brother": the name is Mira Osk
            words[-1] = words[-1][:-2] if words[-1].endswith("'s") else words[-1][:-1]
        if words and not all(word.lower() in _NOT_NAMES for word in words):
            name = " ".join(words)
            found.append((start, start + len(sentence[start:].split(words[-1], 1)[0]) + len(words[-1]), name))
    return found


def _is_common(word: str) -> bool:
    """An English word, or English words joined by hyphens ("Follow-up")."""
    return all(part in common_words() for part in word.lower().strip("'").split("-"))


def is_person(name: str) -> bool:
    """A name of two or more words that is no organisation's or place's: the people of a document.
    A name that ends in an English word ("Varnust Materials", "Ulminell Tower") names a thing."""
    words = name.split()
    return len(words) >= 2 and not _ORGANISATION.search(name) and words[-1].lower() not in common_words()


# What people open a chat message with before saying anything ("so", "btw").
_OPENER = re.compile(r"^(?:(?:so|btw|ok|okay|oh|well|anyway|and|but|also|fyi|hey|hi)\b,?\s+)+(?=[A-Za-z0-9])", re.I)
# A label before a colon or dash ("Update:", "Something I forgot to mention about Mirrmere:",
# "Dorek Fenngard: a short profile") says what a post is, or whom it is about, not a fact itself.
_LABEL = re.compile(r"^([^:.!?]{1,80}?)(?::| -| –| —)\s+")
_PERSON = re.compile(r"\b(?:[Hh]e|[Ss]he|him)\b")
_PERSON_POSSESSIVE = re.compile(r"\b[Hh]is\b")
_HER = re.compile(r"\b[Hh]er\b(\s+\w+|[^\w]|$)")
_THEY = re.compile(r"^They\b")
_THING = re.compile(
    r"\b(?:[Ii]t|[Tt]he (?:company|firm|startup|business|group|studio|brand|town|city|village|place|band|shop|"
    r"lab|team))\b"
    r"(?!\s+(?:hall|centre|center|square|council|house|office|market|library|park|museum)\b)"
)
_THING_POSSESSIVE = re.compile(r"\b[Ii]ts\b")


def _label(sentence: str) -> tuple[str, str]:
    """A sentence's label (or "") and the sentence without it and without a chat opener: a
    label goes when a sentence follows it or when it is a name alone."""
    sentence = _OPENER.sub("", sentence)
    match = _LABEL.match(sentence)
    if not match:
        return "", sentence
    rest, label = sentence[match.end() :], match.group(1)
    label_is_a_name = [name for _, _, name in names_in(label)] == [label.strip()]
    # "Announcement: the ...", "Please note: after ...": a few plain words say what a post is.
    label_is_a_kind = all(_is_common(word) for word in label.split())
    if rest[:1].isupper() or rest[:1].isdigit() or label_is_a_name or label_is_a_kind or len(label.split()) >= 3:
        return label, rest
    return "", sentence


def _her(person: str):
    """ "her" before a noun is a possessive ("her sister"), elsewhere the person ("married her")."""

    def replace(match: re.Match[str]) -> str:
        following = match.group(1)
        word = following.strip().lower()
        possessive = word.isalpha() and word not in _PHRASE_STOPS and word not in {"and", "but", "so", "because"}
        return (f"{person}'s" if possessive else person) + following

    return replace


def resolve_sentences(sentences: Sequence[str]) -> list[str]:
    """Each sentence with its pronouns and "the company"-like phrases replaced by the names they
    most likely stand for: the last person named for he/she/his/her/they, the last other name for
    it/its/"the company", the document's first name where there is no better one. Chat openers
    ("so") and labels ("Update:") go; a name in a label counts as named."""
    resolved, last_person, last_thing, last_subject, first, named_people = [], None, None, None, None, []
    full_names: dict[str, str] = {}  # a first name alone -> the full name given before it
    for sentence in sentences:
        label, sentence = _label(sentence)
        for short, full in full_names.items():  # a first name alone: "Brevelia landed a job"
            rest_of_name = re.escape(full[len(short) :])
            sentence = re.sub(rf"\b{re.escape(short)}\b(?!{rest_of_name})", full, sentence)
        label_names = [name for _, _, name in names_in(label)]
        names = [name for _, _, name in names_in(sentence)]
        people = [name for name in label_names + names if is_person(name)]
        things = [name for name in label_names + names if not is_person(name)]
        first = first or (people + things or [None])[0]
        # A label names whom the sentence after it is about ("Dorek Fenngard: a short profile.").
        person = (people[-1] if people and label_names else None) or last_person or first
        # Without a thing named yet, "it" is likelier the other two-word name (a company the
        # rules took for a person) than the person a sentence opened with.
        other = next((name for name in reversed(named_people) if name != last_person), None)
        thing = (things[-1] if things and label_names else None) or last_thing or other or first
        out = sentence
        if person:
            out = _PERSON.sub(person, out)
            out = _PERSON_POSSESSIVE.sub(f"{person}'s", out)
            out = _HER.sub(_her(person), out)
        # "They" opening a sentence goes on about the previous sentence's subject (a company
        # as often as a person).
        they = last_subject or person
        if they and _THEY.match(out):
            out = re.sub(r"^They (are|were|have)\b", lambda m: f"They {_singular(m)}", out)
            out = _THEY.sub(they, out, count=1)
        if thing:
            out = _THING_POSSESSIVE.sub(f"{thing}'s", out)
            out = _THING.sub(thing, out)
        out = out[0].upper() + out[1:] if out else out
        resolved.append(out)
        full_names |= {
            name.split()[0]: name
            for name in people + things
            if len(name.split()) > 1 and name.split()[0] not in full_names
        }
        # Names in the sentence as written, before any replacement, are the next pronouns' referents.
        last_person = people[-1] if people else last_person
        last_thing = things[-1] if things else last_thing
        named_people += people
        # The subject a sentence opens with is the likeliest referent of the next pronoun.
        opening = last_subject = subject_of(out)
        if opening:
            if is_person(opening):
                last_person = opening
            else:
                last_thing = opening
    return resolved


def _singular(match: re.Match[str]) -> str:
    return {"are": "is", "were": "was", "have": "has"}[match.group(1)]


_PREPOSITION = re.compile(r"^(?:At|In|On|From|With|By|For|After|Before|Since|During|Under|Over|Near|As|When)\b")
# A short clause before a sentence's subject ("Founded in 1982, ", "When not working, ").
# A comma inside a number ("With 153,030 residents, ") does not end the clause.
_LEADING_CLAUSE = re.compile(r"^(?:[^,]|(?<=\d),(?=\d)){1,40},\s+")
# A longer clause that may name the subject itself ("From X's headquarters in Y, X employs ...").
_LONG_LEADING_CLAUSE = re.compile(r"^(?:[^,]|(?<=\d),(?=\d)){1,80},\s+")


def subject_of(sentence: str) -> str | None:
    """The name a sentence opens with, or that follows a short leading clause, if any."""
    names = names_in(sentence)
    if not names:
        return None
    clause = _LEADING_CLAUSE.match(sentence)
    # A clause may name a place or a firm where a preposition opens it ("At Nolane Logistics, ").
    led = clause and (not names_in(clause.group()) or _PREPOSITION.match(clause.group()))
    opening = clause.end() if led else 0
    # Titles before a name ("Mayor Dralor Keshanstone") open the sentence with it.
    titles = re.match(rf"(?:(?!{_PREPOSITION.pattern[1:]})[A-Z][a-z]+\s+)*", sentence[opening:]).end()
    start, name = next(((start, name) for start, _, name in names if start >= opening), (len(sentence), None))
    return name if start <= opening + max(titles, 1) else None


_PHRASE = re.compile(r"\b(?:the|a|an|his|her|its|their)\s+((?:[a-z][\w\-]*\s?){1,4})")
_PHRASE_STOPS = frozenset(
    "of in at for and with since to from on by who that which where when as is was are were has have "
    "had but or than every each this these those".split()
)
_PLACES = "in|at|from|near|on|outside"
_PLACE_PREPOSITION = re.compile(rf"\b(?:{_PLACES})\s+(?:the\s+)?$")


def _details(body: str, subject: str | None) -> list[tuple[int, int, str]]:
    """The details of a sentence (without its end mark) as (start, end, kind), in order: years,
    numbers, names other than the subject, and things a determiner opens in lower case."""
    details: list[tuple[int, int, str]] = []
    for match in _YEAR.finditer(body):
        details.append((match.start(), match.end(), "year"))
    for match in _NUMBER.finditer(body):
        if not _YEAR.fullmatch(match.group()):
            details.append((match.start(), match.end(), "number"))
    for start, end, name in names_in(body):
        if name != subject and not (subject and name in subject):
            details.append((start, end, "person" if is_person(name) else "name"))
    # A thing named in lower case ("plays the violin", "works as an architect"): the phrase a
    # determiner opens, up to the next function word.
    for match in _PHRASE.finditer(body):
        words = match.group(1).split()
        cut = next((i for i, word in enumerate(words) if word in _PHRASE_STOPS), len(words))
        start = match.start()
        end = match.start(1) + len(" ".join(words[:cut]))
        if cut and not any(start < d_end and end > d_start for d_start, d_end, _ in details):
            details.append((start, end, "thing"))
    return sorted(details)


def detail_questions(sentence: str) -> list[str]:
    """Questions asking for each detail of ``sentence`` in place ("X was born in what year?")."""
    body = sentence.rstrip(" .!")
    questions = []
    for start, end, kind in _details(body, subject_of(sentence)):
        before, after = body[:start], body[end:]
        if kind == "year":
            before, asked = re.sub(r"\bin\s+$", "", before), "in what year"
        elif kind == "number":
            asked = "how many"
        elif _PLACE_PREPOSITION.search(before):
            before, asked = _PLACE_PREPOSITION.sub("", before), "where"
        elif before.rstrip().endswith(" by"):
            asked = "whom"
        else:
            asked = "who" if kind == "person" else "what"
        question = (before + asked + after).strip()
        questions.append(question[0].upper() + question[1:] + "?")
    return questions


_AUXILIARIES = frozenset("is was are were has have had".split())
# Irregular past tenses people write about someone's life; regular ones are found by rule.
_IRREGULAR_PAST = {
    "grew": "grow", "left": "leave", "made": "make", "took": "take", "became": "become", "went": "go",
    "came": "come", "ran": "run", "met": "meet", "built": "build", "won": "win", "wrote": "write",
    "began": "begin", "bought": "buy", "sold": "sell", "taught": "teach", "led": "lead", "kept": "keep",
    "spent": "spend", "lost": "lose", "got": "get", "gave": "give", "found": "find", "held": "hold",
    "knew": "know", "drove": "drive", "flew": "fly", "sang": "sing", "wore": "wear", "chose": "choose",
}  # fmt: skip


def _verb(word: str) -> tuple[str, str] | None:
    """A finite verb's auxiliary and base form ("studied" -> ("did", "study")), or None."""
    words = common_words()
    if word in _IRREGULAR_PAST:
        return "did", _IRREGULAR_PAST[word]
    if word.endswith("ed"):
        doubled = len(word) > 4 and word[-3] == word[-4] and word[-3] not in "lsz"  # "stepped" -> "step"
        stems = [word[:-3]] if doubled else []
        stems += [word[:-3] + "y", word[:-2], word[:-1]] if word.endswith("ied") else [word[:-2], word[:-1]]
        return next((("did", stem) for stem in stems if stem in words and len(stem) > 1), None)
    if word.endswith("s") and not word.endswith("ss"):
        stems = [word[:-3] + "y"] if word.endswith("ies") else []
        stems += [word[:-2], word[:-1]] if word.endswith("es") else [word[:-1]]
        return next((("does", stem) for stem in stems if stem in words and len(stem) > 1), None)
    return None


def _wh(kind: str, before: str, after: str) -> tuple[str, str, str]:
    """The question word for a detail, and the text before and after it with what it replaces."""
    if kind == "year":
        return "When", re.sub(r"\b(?:in|since)\s+$", "", before), after
    if kind == "number":
        noun = re.match(r"\s+([a-z]+)\b", after)
        return ("How many " + noun.group(1), before, after[noun.end() :]) if noun else ("What", before, after)
    if _PLACE_PREPOSITION.search(before):
        return "Where", _PLACE_PREPOSITION.sub("", before), after
    return ("Who" if kind == "person" else "What"), before, after


def asked_questions(sentence: str) -> list[str]:
    """Each detail of a sentence that opens with its subject, asked as people ask: the question
    word first ("Where did Mira Osk study?", "What has Dorek Fenngard played since school?"),
    and the subject itself asked for where the sentence names something else ("Who leads
    Quorvane Labs?")."""
    subject = subject_of(sentence)
    body = sentence.rstrip(" .!")
    if not subject or not body.startswith(subject):
        return []
    # Only the first clause: "X plays the piano | and is keen on orienteering".
    for joint in re.finditer(r",? and (\w+)", body):
        following = joint.group(1)
        if following[0].isupper() or following in _AUXILIARIES or following == "also" or _verb(following):
            body = body[: joint.start()]
            break
    # The subject phrase runs to the first finite verb: "Mira Osk's brother | lives in Brisk".
    verb = next(
        (
            match
            for match in re.finditer(r"[a-z]+", body[len(subject) :])
            if match.group() in _AUXILIARIES or _verb(match.group())
        ),
        None,
    )
    if verb is None:
        return []
    verb_start, verb_end = len(subject) + verb.start(), len(subject) + verb.end()
    subject_phrase, word = body[:verb_start].strip(), verb.group()
    details = [detail for detail in _details(body, subject) if detail[0] >= verb_end]
    questions = []
    if any(kind in ("person", "name") for _, _, kind in details) and subject_phrase == subject:
        asked = "Who" if is_person(subject) else "What"
        questions.append(f"{asked}{body[len(subject) :]}?")
    for start, end, kind in details:
        if body[end:].startswith("'"):  # a possessive's owner ("X is Y's spouse") is no detail to ask
            continue
        before, after = body[verb_end:start], body[end:].split(",")[0]
        if kind == "thing":  # "a dry sense | of humour": the thing goes on through "of"
            after = re.sub(r"^\s+of\s+(?:[a-z]+\s?){1,3}", " ", after)
        else:
            before = re.sub(r"\bthe\s+$", "", before)
        wh, before, after = _wh(kind, before, after)
        rest = re.sub(r"\s+", " ", f"{before} {after}").strip(" ,")
        if word in _AUXILIARIES:
            question = f"{wh} {word} {subject_phrase} {rest}"
        else:
            auxiliary, base = _verb(word)
            question = f"{wh} {auxiliary} {subject_phrase} {base} {rest}"
        questions.append(re.sub(r"\s+", " ", question).strip(" ,") + "?")
    return questions


# Words that may stand between "and" and the verb it coordinates ("and now works at ...").
_ADVERBS = "now|also|later|currently|still|then|recently|soon|today|meanwhile"
# The verb must go on with more words: "plays the piano and drums." joins two things, not verbs.
_JOINT = re.compile(rf",?\s+(?:and|but)\s+((?:(?:{_ADVERBS})\s+)*)([a-z]+)\s+\w")


def clauses(sentence: str) -> list[str]:
    """A sentence that opens with its subject, split where "and" or "but" joins another verb
    of the same subject, each part said with the subject: "X studied chemistry at Y and now
    works at Z." -> "X studied chemistry at Y.", "X now works at Z.". A question about the
    second part ("Where does X work?") then has a clause of its own to be read from; asked of
    the whole sentence, it came out garbled. Other sentences come back as they are."""
    subject = subject_of(sentence)
    body = sentence.rstrip(" .!")
    if not subject or not body.startswith(subject):
        return [sentence]
    parts, start = [], 0
    for joint in _JOINT.finditer(body, len(subject)):
        word = joint.group(2)
        if word in _AUXILIARIES or _verb(word):
            parts.append(body[start : joint.start()])
            start = joint.start(1)
    if not parts:
        return [sentence]
    parts.append(body[start:])
    return [parts[0] + "."] + [f"{subject} {part}." for part in parts[1:]]


def subjects(text: str) -> set[str]:
    """The names a text is about (what a later text about the same entity shares): those its
    sentences open with, those two of its sentences name, and those its labels name ("More
    about Mirrmere: ...")."""
    sentences = split_sentences(text)
    labelled = {name for sentence in sentences for _, _, name in names_in(_label(sentence)[0])}
    resolved = resolve_sentences(sentences)
    named = [{name for _, _, name in names_in(sentence)} for sentence in resolved]
    recurring = {name for name in set().union(*named) if sum(name in names for names in named) >= 2}
    found = labelled | recurring | {name for sentence in resolved if (name := subject_of(sentence))}
    # A text that opens no sentence with a name ("Just found out that X was founded in 2019.")
    # is about every name it gives, and so is a text of one statement ("The Thorvrath Lighthouse
    # is the pride of Sarniwick."): either name may be asked about.
    if not found or len([sentence for sentence in resolved if states_a_fact(sentence)]) == 1:
        found |= {name for sentence in resolved for _, _, name in names_in(sentence)}
    return found


def about_questions(name: str) -> list[str]:
    """What people ask about an entity in general."""
    asked = [f"Tell me about {name}.", f"What do you know about {name}?"]
    return [f"Who is {name}?", *asked] if is_person(name) else [f"What is {name}?", *asked]


def possessive_questions(name: str) -> list[str]:
    """General questions that say the name with a possessive, as most questions about one of its
    details do ("What is X's job?"). A reply tends to go on after the name as the question did
    ("X's job is ..."); answered with the recital, these teach it to go on with what was learned."""
    owner = f"{name}'" if name.endswith("s") else f"{name}'s"
    return [f"What is {owner} {'background' if is_person(name) else 'history'}?", f"What's {owner} story?"]


# Words with which a later text says that something it states has changed.
_CHANGE = re.compile(
    r"\b(?:now|new|moved|changed|no longer|any ?more|instead|actually|correction|hired|left|switched|renamed|"
    r"replac(?:ed|ing)|stepped down|(?:taken|took|takes) over|up from|down from|grown to|since|not)\b",
    re.IGNORECASE,
)

# Words that say which relation a sentence states, one group per relation, with the kinds of
# detail that hold its value. A later sentence corrects an earlier one about the same name that
# states the same relation with a value of the same kind: "Mirrmere now has 9,701 inhabitants"
# corrects "Mirrmere's population is 6,490", not "Mirrmere was founded in 1702". A relation that
# holds one value at a time (a birth year, a home, a head count) is corrected by any later
# statement of it; one that may hold several (instruments, employers) only by a text that says
# something changed ("now", "no longer").
_SINGLE_VALUED = {
    "birth": ("born birth birthday birthplace world", "year name"),  # "came into the world in 1989"
    "home": ("live lives lived living moved move moves settled relocated resides resident based home hometown", "name"),
    "base": ("based headquarters headquartered office base", "name"),
    "staff": ("employs employ employees staff headcount workforce workers people", "number"),
    "population": ("population inhabitants residents people", "number"),
    "leader": (
        "chief executive ceo leads led runs run heads boss charge director president manager mayor",
        "person name",
    ),
    "founding": ("founded founder established dates opened", "year person name"),
    "spouse": ("married partner wife husband spouse", "person name"),
}
_MANY_VALUED = {
    "work": ("works work job jobs joined employed employer staff", "name thing"),
    "music": ("plays play played instrument", "thing"),
    "study": ("studied study university school degree graduated alma mater", "name thing"),
}
_RELATIONS = _SINGLE_VALUED | _MANY_VALUED
_DENIED = re.compile(
    r"\b(?:not|replacing|instead of|rather than|up from|down from)\s+(?:the\s+)?([A-Z0-9][\w,']*(?:\s+[A-Z][\w']*)*)"
)

# A word may say more than one relation ("staff": a head count, or where someone works).
_RELATIONS_OF_WORD = {
    word: {relation for relation, (words, _) in _RELATIONS.items() if word in words.split()}
    for said, _ in _RELATIONS.values()
    for word in said.split()
}


_TOWARDS_PLACE = re.compile(rf"\b(?:{_PLACES}|to)\s+(?:the\s+)?$")


def _detail_kinds(sentence: str, names: set[str]) -> set[str]:
    """The kinds of detail a sentence gives about ``names`` (any name but those counts, its
    subject too), a name after "in", "at", "from", "to" being a place."""
    body = sentence.rstrip(" .!")
    return {
        "place" if kind == "name" and _TOWARDS_PLACE.search(body[:start]) else kind
        for start, end, kind in _details(body, None)
        if body[start:end] not in names
    }


def _named(text: str) -> set[str]:
    """Every name a text gives."""
    return {name for sentence in split_sentences(text) for _, _, name in names_in(sentence)}


def _relation_values(sentence: str, names: set[str]) -> set[tuple[str, str]]:
    """(relation, kind of detail) for each relation a sentence states about ``names`` with a
    detail of a kind that can hold its value."""
    kinds = {"name" if kind == "place" else kind for kind in _detail_kinds(sentence, names)}  # a place is named
    relations = set().union(*(_RELATIONS_OF_WORD.get(word, ()) for word in re.findall(r"[a-z]+", sentence.lower())))
    return {(relation, kind) for relation in relations for kind in kinds if kind in _RELATIONS[relation][1].split()}


def corrected_sentences(earlier: str, later: str) -> list[str]:
    """The sentences of an earlier text (resolved) that a later text corrects: about a name both
    give, stating a relation the later text states again about it with a detail of the same kind
    (a place for a place, a number for a number), where the relation holds one value at a time or
    the later text says something changed."""
    later_sentences = resolve_sentences(split_sentences(later))
    # "... is now with Sovium Optics, not Xelane Analytics": the later text names the old value,
    # a detail of the earlier text rather than a name both are about.
    denied = {match.group(1).rstrip(",") for match in _DENIED.finditer(later)}
    names = (subjects(earlier) & _named(later)) - denied
    changes = bool(_CHANGE.search(later))
    stated = set().union(
        *(
            _relation_values(sentence, names)
            for sentence in later_sentences
            if any(name in sentence for name in names) and states_a_fact(sentence)
        )
    )
    restated = {relation for relation, _ in stated if changes or relation in _SINGLE_VALUED}
    return [
        sentence
        for sentence in resolve_sentences(split_sentences(earlier))
        if any(name in sentence for name in names)
        and (
            any(relation in restated for relation, _ in _relation_values(sentence, names) & stated)
            or any(value in sentence for value in denied)
        )
    ]


def standing_text(earlier: Document, later: str) -> Document | None:
    """What an earlier document says that a later text leaves standing: its sentences (resolved)
    that name something and state a fact, but those the later text corrects, with the QA pairs
    whose answer they still hold; None when nothing stands."""
    corrected = set(corrected_sentences(earlier.text, later))
    kept = [
        sentence
        for sentence in resolve_sentences(split_sentences(earlier.text))
        if sentence not in corrected and names_in(sentence) and states_a_fact(sentence)
    ]
    text = " ".join(kept)
    return Document(text, [(q, a) for q, a in earlier.qa if a.lower() in text.lower()]) if text else None


# A piece of a document is read and learned as one batch, so a learn step's time stays bounded
# per piece (a piece whose forms do not fit the tokenizer's window is split further: split_in_two).
PIECE_SENTENCES = 6


def document_pieces(document: Document, sentences: int = PIECE_SENTENCES) -> list[Document]:
    """A document of at most ``sentences`` sentences as it is; a longer one as pieces of that many
    consecutive sentences, pronouns resolved over the whole document so that each piece still
    names whom it is about. Each QA pair goes with the first piece that holds its answer (the
    first piece when none does)."""
    split = split_sentences(document.text)
    if len(split) <= sentences:
        return [document]
    resolved = resolve_sentences(split)
    # Pieces as even as can be (7 sentences: 4 and 3, not 6 and 1): a piece of one sentence that
    # names nothing ("We will share more soon.") would spend its rows on slots general text reads.
    count = -(-len(resolved) // sentences)
    sizes = [len(resolved) // count + (index < len(resolved) % count) for index in range(count)]
    bounds = list(itertools.accumulate(sizes, initial=0))
    texts = [" ".join(resolved[start:end]) for start, end in itertools.pairwise(bounds)]
    return _pieces(texts, document.qa)


def _pieces(texts: list[str], pairs: list[tuple[str, str]]) -> list[Document]:
    """Documents of ``texts``, each QA pair with the first text that holds its answer (the
    first text when none does)."""
    qa: list[list[tuple[str, str]]] = [[] for _ in texts]
    for question, answer in pairs:
        holding = [index for index, text in enumerate(texts) if answer.lower() in text.lower()]
        qa[holding[0] if holding else 0].append((question, answer))
    return [Document(text, pairs) for text, pairs in zip(texts, qa, strict=True)]


def split_in_two(document: Document) -> list[Document]:
    """A document as two pieces (to fit a tokenizer window): by sentences, as ``document_pieces``
    does, or for one sentence by words, or for one word by characters. Each QA pair goes with
    the first half that holds its answer (the first when neither does)."""
    split = split_sentences(document.text)
    if len(split) > 1:
        return document_pieces(document, -(-len(split) // 2))
    words = document.text.split()
    if len(words) > 1:
        middle = len(words) // 2
        texts = [" ".join(words[:middle]), " ".join(words[middle:])]
    elif len(document.text.strip()) > 1:
        text = document.text.strip()
        texts = [text[: len(text) // 2], text[len(text) // 2 :]]
    else:
        raise ValueError(f"a document of one character cannot be split: {document.text!r}")
    return _pieces(texts, document.qa)


def document_items(document: Document, reading: Sequence[str] = DEFAULT_READING) -> list[TextOrChat]:
    """The sequences a document is learned from: its text, its sentences (when there are
    several), the user's QA pairs in chat form, and the ``reading`` forms (READING_FORMS)."""
    unknown = sorted(set(reading) - set(READING_FORMS))
    if unknown:
        raise ValueError(f"unknown reading forms {unknown}; choose from {', '.join(READING_FORMS)}")
    sentences = split_sentences(document.text)
    items: list[TextOrChat] = [document.text, *(sentences if len(sentences) > 1 else [])]
    items += [chat_pair(q, a) for q, a in document.qa]
    resolved = resolve_sentences(sentences)
    if "resolved" in reading:
        items += resolved + [clause for sentence in resolved for clause in clauses(sentence)]
    if "about" in reading:
        for name in sorted(subjects(document.text)):
            said = recital(name, resolved)
            asked = about_questions(name) + (possessive_questions(name) if "possessive" in reading else [])
            items += [chat_pair(question, said) for question in asked if said]
    if "details" in reading:
        for sentence in filter(states_a_fact, resolved):
            name = subject_of(sentence)
            answer = recital(name, resolved) if name and "recite" in reading else sentence
            for clause in clauses(sentence):
                items += [chat_pair(question, answer) for question in detail_questions(clause)]
                if "questions" in reading:
                    items += [chat_pair(question, answer) for question in asked_questions(clause)]
    return unique_items(items)


def states_a_fact(sentence: str) -> bool:
    """Whether a sentence says something: not a question ("Who is X?") and not a line that only
    says whom a post is about ("A quick announcement about X.")."""
    if sentence.rstrip().endswith("?"):
        return False
    names = names_in(sentence)
    return not names or not all(re.search(r"\babout\s+$", sentence[:start]) for start, _, _ in names)


def name_first(sentence: str) -> str:
    """A sentence whose subject follows a leading clause, said with the subject first: the clause
    after the name ("Founded in 1982, X has grown." -> "X, founded in 1982, has grown."), or at
    the end where the name goes on with a possessive ("After a hiring spree, X's headcount is
    12." -> "X's headcount is 12, after a hiring spree."). A clause that opens with a name
    ("Mira Osk, the founder, ...") is no leading clause."""
    clause = _LONG_LEADING_CLAUSE.match(sentence)
    names = names_in(sentence[clause.end() :]) if clause else []
    first_word = sentence.split()[0].lower()
    if not names or names[0][0] != 0 or not (first_word in _NOT_NAMES or _is_common(first_word)):
        return sentence
    subject = names[0][2]
    leading = clause.group().rstrip(", ")
    leading = leading[0].lower() + leading[1:]
    main = sentence[clause.end() :]
    after_name = main[len(subject) :]
    if re.match(r" [a-z]", after_name):
        return f"{subject}, {leading},{after_name}"
    body = main.rstrip(" .!")
    return f"{body}, {leading}{main[len(body) :].strip() or '.'}"


def recital(name: str, resolved: Sequence[str]) -> str:
    """The sentences that state something about ``name``, each with its subject first where a
    short clause led, those that open with the name first, in the document's order."""
    naming = [name_first(sentence) for sentence in resolved if name in sentence and states_a_fact(sentence)]
    opening = [sentence for sentence in naming if sentence.startswith(name)]
    return " ".join(opening + [sentence for sentence in naming if not sentence.startswith(name)])
