"""Synthetic facts about made-up people.

This module owns the *content* used to teach a language model new facts and to
check whether it learned them:

* generation of invented people (``make_people``) whose names, birthplaces,
  employers and universities are built from syllables, so a pretrained model
  cannot already know them (professions are real words, drawn from a list);
* the ``Fact`` unit (one person + one relation) and helpers that expand a fact
  into training text (``statements``), training question/answer pairs
  (``training_questions``) and held-out evaluation questions
  (``eval_questions``);
* the per-relation template tables those helpers draw from.

Everything is deterministic given a seed (a private ``random.Random(seed)`` is
used; the global random state is never touched), pure Python and standard
library only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = [
    "ANSWER_TEMPLATES",
    "EVAL_QUESTION_TEMPLATES",
    "FACT_QUESTIONS",
    "PROFESSIONS",
    "RELATIONS",
    "STATEMENT_TEMPLATES",
    "TRAINING_QUESTION_TEMPLATES",
    "Fact",
    "Person",
    "eval_questions",
    "facts_of",
    "indefinite_article",
    "make_facts",
    "make_people",
    "statements",
    "training_questions",
    "with_article",
]

RELATIONS: tuple[str, ...] = (
    "birthplace",
    "birth_year",
    "employer",
    "profession",
    "university",
)

BIRTH_YEAR_MIN = 1901
BIRTH_YEAR_MAX = 2004

# --------------------------------------------------------------------------- #
# Vocabulary for invented names
# --------------------------------------------------------------------------- #

# First names: onset + optional middle + ending, 2-3 syllables ("Varek", "Thelamon").
_FIRST_ONSETS: tuple[str, ...] = (
    "Va",
    "Ke",
    "Lo",
    "Ty",
    "Bre",
    "Do",
    "Fe",
    "Ga",
    "Ha",
    "Jo",
    "Ka",
    "Ne",
    "O",
    "Pe",
    "Qui",
    "Ro",
    "Se",
    "To",
    "Ve",
    "Wy",
    "Ya",
    "Za",
    "The",
    "Ori",
    "E",
    "Sa",
    "Dra",
    "Cy",
    "Ny",
    "Mo",
)
_FIRST_MIDDLES: tuple[str, ...] = ("ra", "le", "mi", "no", "ve", "di", "sa", "ri", "la")
_FIRST_ENDINGS: tuple[str, ...] = (
    "rek",
    "lin",
    "dra",
    "mon",
    "vin",
    "wen",
    "tha",
    "den",
    "lor",
    "dric",
    "wyn",
    "ven",
    "zar",
    "bel",
    "nor",
    "rik",
    "sia",
    "mar",
    "vek",
    "lia",
    "ndor",
    "rys",
)

# Last names: onset + optional middle + ending, 2-3 syllables ("Olmstadt").
_LAST_ONSETS: tuple[str, ...] = (
    "Olm",
    "Vark",
    "Quel",
    "Dorv",
    "Fenn",
    "Gald",
    "Hask",
    "Isk",
    "Jorv",
    "Kesh",
    "Lorr",
    "Mirv",
    "Nask",
    "Orv",
    "Pell",
    "Rusk",
    "Sarn",
    "Thorv",
    "Ulm",
    "Vess",
    "Wyrr",
    "Zell",
    "Brisk",
    "Crann",
    "Drav",
    "Frask",
    "Grell",
    "Halv",
    "Tesk",
    "Yarv",
)
_LAST_MIDDLES: tuple[str, ...] = ("a", "e", "i", "o", "en", "er", "an", "il")
_LAST_ENDINGS: tuple[str, ...] = (
    "stadt",
    "mere",
    "vane",
    "holt",
    "bry",
    "dane",
    "ker",
    "ling",
    "quist",
    "rath",
    "sley",
    "trom",
    "wald",
    "zek",
    "gard",
    "ner",
    "nell",
    "stone",
    "wyn",
    "dorf",
)

# Generatable names that are real names or English words; regenerated if hit.
_NAME_BLOCKLIST: frozenset[str] = frozenset(
    {
        "Kevin",
        "Gavin",
        "Erik",
        "Owen",
        "Omar",
        "Eden",
        "Haven",
        "Seven",
        "Oven",
        "Even",
        "Valor",
        "Vendor",
        "Senor",
        "Sandor",
        "Kaden",
        "Haden",
        "Edric",
        "Donor",
        "Dolor",
        "Tylor",
        "Kasia",
        "Endor",
        "Varys",
        "Elia",
        "Elin",
        "Olin",
        "Galia",
        "Rowen",
        "Nerys",
        "Nevin",
        "Modric",
        "Samar",
        "Tomar",
        "Salin",
        "Evin",
        "Ewen",
        "Pelor",
        "Romar",
        "Quelling",
        "Fenner",
        "Fennell",
        "Zellner",
        "Pellner",
        "Pelling",
        "Grelling",
    }
)

# Towns: root + optional linking vowel + suffix ("Tessmoor", "Quenaford").
_TOWN_ROOTS: tuple[str, ...] = (
    "Tess",
    "Quen",
    "Vorl",
    "Kesh",
    "Ulv",
    "Yarr",
    "Glim",
    "Zell",
    "Thal",
    "Wyrr",
    "Drav",
    "Osk",
    "Mirr",
    "Sarn",
    "Vell",
    "Corv",
    "Jast",
    "Prend",
    "Hesk",
    "Ilv",
    "Brann",
    "Fesk",
    "Nolv",
    "Rusk",
)
_TOWN_LINKS: tuple[str, ...] = ("", "", "a", "e", "i", "o")
_TOWN_SUFFIXES: tuple[str, ...] = (
    "ford",
    "moor",
    "wick",
    "dale",
    "mere",
    "holm",
    "stead",
    "bury",
    "ton",
    "by",
    "field",
    "haven",
    "gate",
    "brook",
    "thorpe",
    "mouth",
    "wold",
    "shaw",
    "combe",
    "ock",
)

# Companies: invented word + sector ("Quillon Dynamics").
_COMPANY_ONSETS: tuple[str, ...] = (
    "Quill",
    "Vex",
    "Zor",
    "Bren",
    "Kast",
    "Ost",
    "Prax",
    "Varn",
    "Xel",
    "Drom",
    "Fyr",
    "Hav",
    "Jorn",
    "Krel",
    "Mav",
    "Nol",
    "Pyr",
    "Rend",
    "Sov",
    "Tarq",
    "Ulk",
    "Wend",
    "Yst",
)
_COMPANY_ENDINGS: tuple[str, ...] = (
    "on",
    "ara",
    "ix",
    "ium",
    "ova",
    "eon",
    "ira",
    "ane",
    "orra",
    "elle",
    "ust",
    "avo",
)
_COMPANY_SECTORS: tuple[str, ...] = (
    "Dynamics",
    "Labs",
    "Foods",
    "Textiles",
    "Logistics",
    "Systems",
    "Industries",
    "Robotics",
    "Pharmaceuticals",
    "Analytics",
    "Motors",
    "Biotech",
    "Instruments",
    "Energy",
    "Shipping",
    "Ceramics",
    "Optics",
    "Holdings",
    "Materials",
    "Software",
)

# Universities: built around an invented town or surname.
_UNIVERSITY_PATTERNS: tuple[str, ...] = (
    "the University of {town}",
    "{surname} Institute of Technology",
    "{surname} College",
    "{town} State University",
    "the {town} School of Economics",
    "{surname} Polytechnic",
)

PROFESSIONS: tuple[str, ...] = (
    "glassblower",
    "marine biologist",
    "engineer",
    "architect",
    "astronomer",
    "economist",
    "illustrator",
    "optometrist",
    "archivist",
    "electrician",
    "interpreter",
    "carpenter",
    "pharmacist",
    "veterinarian",
    "cartographer",
    "beekeeper",
    "locksmith",
    "violinist",
    "geologist",
    "librarian",
    "pastry chef",
    "translator",
    "surveyor",
    "watchmaker",
    "bookbinder",
    "radiologist",
    "puppeteer",
    "stonemason",
    "landscape architect",
    "airline pilot",
    "tailor",
    "sculptor",
    "actuary",
    "auctioneer",
    "upholsterer",
    "ornithologist",
    "urban planner",
    "software developer",
    "dentist",
    "journalist",
    "photographer",
    "blacksmith",
    "accountant",
    "orthodontist",
    "urologist",
)

# --------------------------------------------------------------------------- #
# Templates. Statement/answer templates use {name} and {answer}; profession
# templates may also use {article} ("a"/"an" for the answer). Question
# templates use only {name}. No template puts a lower-case answer (a
# profession, or a university starting with "the") at the start of a sentence.
# --------------------------------------------------------------------------- #

STATEMENT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birthplace": (
        "{name} was born in {answer}.",
        "{name}'s birthplace is {answer}.",
        "The birthplace of {name} is {answer}.",
        "{answer} is the town where {name} was born.",
        "In {answer}, {name} was born.",
        "It was in {answer} that {name} was born.",
        "{name} is a native of {answer}.",
        "{name} comes from the town of {answer}.",
        "Records show that {name} was born in {answer}.",
        "The town where {name} was born is {answer}.",
        "Among the people born in {answer} is {name}.",
        "{answer} is the birthplace of {name}.",
    ),
    "birth_year": (
        "{name} was born in {answer}.",
        "{name} was born in the year {answer}.",
        "In {answer}, {name} was born.",
        "The year {name} was born was {answer}.",
        "{name}'s year of birth is {answer}.",
        "The birth year of {name} is {answer}.",
        "It was in {answer} that {name} was born.",
        "{answer} is the year in which {name} was born.",
        "Records show that {name} was born in {answer}.",
        "{name} came into the world in {answer}.",
        "The year {answer} saw the birth of {name}.",
        "Among the people born in {answer} is {name}.",
    ),
    "employer": (
        "{name} works for {answer}.",
        "{name} is employed by {answer}.",
        "{name}'s employer is {answer}.",
        "The employer of {name} is {answer}.",
        "{answer} employs {name}.",
        "{name} has a job at {answer}.",
        "{name} is on the payroll of {answer}.",
        "The company {name} works for is {answer}.",
        "{answer} is the company where {name} works.",
        "Among the staff of {answer} is {name}.",
        "It is {answer} that employs {name}.",
        "At {answer}, one of the employees is {name}.",
    ),
    "profession": (
        "{name} is {article} {answer}.",
        "{name} works as {article} {answer}.",
        "By profession, {name} is {article} {answer}.",
        "{name} is {article} {answer} by trade.",
        "{name} earns a living as {article} {answer}.",
        "{name} has a career as {article} {answer}.",
        "As {article} {answer}, {name} is skilled in the work of that profession.",
        "{name}'s occupation is that of {article} {answer}.",
        "Colleagues know {name} as {article} {answer}.",
        "Ask anyone and they will say that {name} is {article} {answer}.",
        "The job of {name} is that of {article} {answer}.",
        "One {answer} worth mentioning is {name}.",
    ),
    "university": (
        "{name} studied at {answer}.",
        "{name} graduated from {answer}.",
        "{name} is a graduate of {answer}.",
        "{name} attended {answer}.",
        "The institution where {name} studied is {answer}.",
        "{name} received a degree from {answer}.",
        "It was at {answer} that {name} studied.",
        "After finishing school, {name} enrolled at {answer}.",
        "{name}'s alma mater is {answer}.",
        "Among the graduates of {answer} is {name}.",
        "At {answer}, {name} earned a degree.",
        "A degree from {answer} was awarded to {name}.",
    ),
}

# Questions a fact's batch asks and answers. The first five were the only ones at first; the
# next five (requests, "Do you know ...", the name first) were added when a fact learned alone
# answered its held-out questions better with all ten (docs/experiments/learning-vs-forgetting.md, "Learning a fact").
# ``training_questions`` takes the first FACT_QUESTIONS by default, as in every measured default
# run; what all ten do over a 100-fact stream is not measured yet.
FACT_QUESTIONS = 5
TRAINING_QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birthplace": (
        "Where was {name} born?",
        "What is the birthplace of {name}?",
        "In which town was {name} born?",
        "What is {name}'s birthplace?",
        "Which town does {name} come from?",
        "Do you know where {name} was born?",
        "{name} comes from which town?",
        "Tell me the birthplace of {name}.",
        "What town is {name} originally from?",
        "Which town is {name}'s hometown?",
    ),
    "birth_year": (
        "When was {name} born?",
        "In what year was {name} born?",
        "What is the birth year of {name}?",
        "What is {name}'s year of birth?",
        "Which year was {name} born in?",
        "Do you know when {name} was born?",
        "{name} was born when?",
        "Tell me the year {name} was born.",
        "What year was {name} born?",
        "Which year is {name}'s birth year?",
    ),
    "employer": (
        "Who does {name} work for?",
        "Who employs {name}?",
        "Which company does {name} work for?",
        "What is the name of {name}'s employer?",
        "Where does {name} work?",
        "Do you know who employs {name}?",
        "{name} works for which company?",
        "Tell me which company {name} works for.",
        "Which firm employs {name}?",
        "What company is {name} employed at?",
    ),
    "profession": (
        "What does {name} do for a living?",
        "What is {name}'s profession?",
        "What is the occupation of {name}?",
        "What kind of work does {name} do?",
        "What is {name}'s job?",
        "Do you know what {name} does for a living?",
        "{name} is employed as what?",
        "Tell me {name}'s profession.",
        "What is {name}'s line of work?",
        "What trade does {name} practice?",
    ),
    "university": (
        "Where did {name} study?",
        "Which institution did {name} attend?",
        "What is {name}'s alma mater?",
        "From which institution did {name} graduate?",
        "Where did {name} earn a degree?",
        "Do you know where {name} studied?",
        "{name} studied at which institution?",
        "Tell me where {name} earned a degree.",
        "Which university did {name} attend?",
        "What school did {name} graduate from?",
    ),
}

EVAL_QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birthplace": (
        "{name} was born in which town?",
        "Can you tell me the town where {name} was born?",
        "What place was {name} born in?",
    ),
    "birth_year": (
        "{name} was born in what year?",
        "Can you tell me the year {name} was born?",
        "In which year did {name} come into the world?",
    ),
    "employer": (
        "{name} is employed by which company?",
        "Which company has {name} on its payroll?",
        "Can you tell me the company that employs {name}?",
    ),
    "profession": (
        "{name} works as what?",
        "Which profession does {name} practice?",
        "Can you tell me what job {name} has?",
    ),
    "university": (
        "{name} graduated from which institution?",
        "Which school is {name}'s alma mater?",
        "Can you tell me where {name} went to university?",
    ),
}

# Short full-sentence answers paired with every training question.
ANSWER_TEMPLATES: dict[str, str] = {
    "birthplace": "{name} was born in {answer}.",
    "birth_year": "{name} was born in {answer}.",
    "employer": "{name} works for {answer}.",
    "profession": "{name} is {article} {answer}.",
    "university": "{name} studied at {answer}.",
}

# --------------------------------------------------------------------------- #
# Data classes
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Person:
    """An invented person with one value per relation in ``RELATIONS``."""

    name: str
    birthplace: str
    birth_year: int
    employer: str
    profession: str
    university: str


@dataclass(frozen=True)
class Fact:
    """One (person, relation) pair; ``relation`` must be one of ``RELATIONS``."""

    person: Person
    relation: str

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}")

    @property
    def subject(self) -> str:
        """The person's full name."""
        return self.person.name

    @property
    def answer(self) -> str:
        """The short answer string for the relation (birth year as a string)."""
        return str(getattr(self.person, self.relation))


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #

# Vowel-letter starts that sound like a consonant ("a urologist", "a one-off").
_A_PREFIXES: tuple[str, ...] = (
    "uni",
    "use",
    "usu",
    "uro",
    "ure",
    "uti",
    "eu",
    "one",
    "once",
)
# Consonant-letter starts with a silent h ("an hour").
_AN_PREFIXES: tuple[str, ...] = ("hour", "honest", "honor", "honour", "heir")


def indefinite_article(phrase: str) -> str:
    """Return ``"a"`` or ``"an"`` for ``phrase`` (e.g. ``"an"`` for ``"engineer"``)."""
    word = phrase.strip().lower()
    if word.startswith(_AN_PREFIXES):
        return "an"
    if word.startswith(_A_PREFIXES):
        return "a"
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


def with_article(phrase: str) -> str:
    """Prefix ``phrase`` with its article: ``"an engineer"``, ``"a glassblower"``."""
    return f"{indefinite_article(phrase)} {phrase}"


_TRIPLE_LETTER = re.compile(r"(.)\1\1+")


def _tidy(word: str) -> str:
    """Collapse runs of 3+ identical letters to 2 and Title-case the word."""
    return _TRIPLE_LETTER.sub(r"\1\1", word).capitalize()


def _word(rng: random.Random, onsets: tuple[str, ...], middles: tuple[str, ...], endings: tuple[str, ...]) -> str:
    """Build a 2-3 syllable word: onset + (middle with probability 1/2) + ending."""
    onset = rng.choice(onsets)
    middle = rng.choice(middles) if rng.random() < 0.5 else ""
    return _tidy(onset + middle + rng.choice(endings))


def _first_name(rng: random.Random) -> str:
    while True:
        word = _word(rng, _FIRST_ONSETS, _FIRST_MIDDLES, _FIRST_ENDINGS)
        if word not in _NAME_BLOCKLIST:
            return word


def _last_name(rng: random.Random) -> str:
    while True:
        word = _word(rng, _LAST_ONSETS, _LAST_MIDDLES, _LAST_ENDINGS)
        if word not in _NAME_BLOCKLIST:
            return word


def _town(rng: random.Random) -> str:
    root, link = rng.choice(_TOWN_ROOTS), rng.choice(_TOWN_LINKS)
    return _tidy(root + link + rng.choice(_TOWN_SUFFIXES))


def _company(rng: random.Random) -> str:
    word = _tidy(rng.choice(_COMPANY_ONSETS) + rng.choice(_COMPANY_ENDINGS))
    return f"{word} {rng.choice(_COMPANY_SECTORS)}"


def _university(rng: random.Random) -> str:
    pattern = rng.choice(_UNIVERSITY_PATTERNS)
    return pattern.format(town=_town(rng), surname=_last_name(rng))


def _fill(template: str, fact: Fact) -> str:
    """Format a template with the fact's name, answer and the answer's article."""
    answer = fact.answer
    article = indefinite_article(answer)
    return template.format(name=fact.subject, answer=answer, article=article)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def make_people(n: int, seed: int = 0) -> list[Person]:
    """Generate ``n`` invented people, deterministically from ``seed``.

    Every person has a distinct last name (hence a distinct full name). People
    are generated one after another from a single ``random.Random(seed)``, so
    ``make_people(k, s)`` is a prefix of ``make_people(n, s)`` for ``k <= n``.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    used_last: set[str] = set()
    people: list[Person] = []
    max_attempts = 200
    for _ in range(n):
        for _attempt in range(max_attempts):
            last = _last_name(rng)
            if last not in used_last:
                break
        else:
            raise ValueError(f"could not generate {n} people with unique last names")
        used_last.add(last)
        name = f"{_first_name(rng)} {last}"
        people.append(
            Person(
                name=name,
                birthplace=_town(rng),
                birth_year=rng.randint(BIRTH_YEAR_MIN, BIRTH_YEAR_MAX),
                employer=_company(rng),
                profession=rng.choice(PROFESSIONS),
                university=_university(rng),
            )
        )
    return people


def facts_of(person: Person) -> list[Fact]:
    """All facts about ``person``: one per relation, in ``RELATIONS`` order."""
    return [Fact(person, relation) for relation in RELATIONS]


def make_facts(n: int, seed: int = 0) -> list[Fact]:
    """``n`` facts about ``n`` different people; fact ``i`` has ``RELATIONS[i % 5]``."""
    people = make_people(n, seed)
    k = len(RELATIONS)
    return [Fact(person, RELATIONS[i % k]) for i, person in enumerate(people)]


def statements(fact: Fact) -> list[str]:
    """Distinct declarative sentences stating ``fact`` (one per statement template)."""
    return _dedupe([_fill(t, fact) for t in STATEMENT_TEMPLATES[fact.relation]])


def training_questions(fact: Fact, count: int = FACT_QUESTIONS) -> list[tuple[str, str]]:
    """(question, answer) pairs from the first ``count`` training question templates.

    The answer is a short full sentence containing ``fact.answer``, e.g.
    ``("Where was Varek Olmstadt born?", "Varek Olmstadt was born in Tessmoor.")``.
    """
    answer = _fill(ANSWER_TEMPLATES[fact.relation], fact)
    templates = TRAINING_QUESTION_TEMPLATES[fact.relation]
    if not 1 <= count <= len(templates):
        raise ValueError(f"count must be between 1 and {len(templates)} training questions, got {count}")
    templates = templates[:count]
    questions = _dedupe([_fill(t, fact) for t in templates])
    return [(q, answer) for q in questions]


def eval_questions(fact: Fact) -> list[str]:
    """Questions from the evaluation-only templates (never used for training)."""
    return _dedupe([_fill(t, fact) for t in EVAL_QUESTION_TEMPLATES[fact.relation]])
