"""Documents as users write them, for a benchmark of learning from documents.

``facts.py`` teaches one fact per sentence from a fixed template table. Users of
a learning service post something else: short notes, bios, news paragraphs,
announcements and chat messages that state several facts at once, refer back
with pronouns, state facts indirectly ("After finishing her degree at X, she
joined Y as a chemist"), mix in sentences that state nothing, and later add to
or correct what they wrote. ``user_documents`` generates such a stream:

* entities are invented people, companies and towns whose names are built from
  syllables (the generators of ``facts.py`` plus a few of our own), so a
  pretrained model cannot already know any answer;
* each document is about one entity and states 1-5 facts in 1-6 sentences,
  drawn from many interchangeable phrasings, in random order, with an opener
  and closer typical of its kind;
* every fact carries a short gold answer and 2-3 held-out questions worded
  differently from the document; each document also carries the
  question/answer pairs a user might pass along with it (one per fact, worded
  differently again);
* about a fifth of the documents come back to an earlier entity: half add new
  facts, half correct one fact (``supersedes`` names the document whose value
  they replace); ``current_facts`` gives what the stream says after all of it.

Everything is deterministic given the seed: a private ``random.Random(seed)``
is used and no set is ever iterated while drawing, so the result does not
depend on Python's string hashing. Standard library only.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sparse_memory.data.facts import (
    PROFESSIONS,
    _company,
    _first_name,
    _last_name,
    _town,
    _university,
    indefinite_article,
)

__all__ = [
    "DOCUMENT_KINDS",
    "NAME_RELATIONS",
    "RELATIONS_BY_KIND",
    "DocumentFact",
    "UserDocument",
    "corrected_facts",
    "correction_stream",
    "current_facts",
    "user_documents",
]

RELATIONS_BY_KIND: dict[str, tuple[str, ...]] = {
    "person": (
        "birthplace",
        "birth_year",
        "home_town",
        "employer",
        "profession",
        "university",
        "spouse",
        "hobby",
        "instrument",
    ),
    "company": ("founder", "headquarters", "founded_year", "product", "ceo", "employees"),
    "town": ("river", "region", "mayor", "population", "landmark", "twin_town"),
}

# Relations whose answer is an invented name, with the kind of thing it names. A name
# means one thing across a stream: a company that employs someone may get documents
# of its own, but no name is ever both a town and a person.
NAME_RELATIONS: dict[str, str] = {
    "birthplace": "town",
    "home_town": "town",
    "headquarters": "town",
    "twin_town": "town",
    "employer": "company",
    "spouse": "person",
    "founder": "person",
    "ceo": "person",
    "mayor": "person",
    "university": "university",
    "river": "river",
    "region": "region",
    "landmark": "landmark",
}

FRESH_KINDS: tuple[str, ...] = ("note", "bio", "news", "announcement", "message")
DOCUMENT_KINDS: tuple[str, ...] = (*FRESH_KINDS, "update", "correction")

# Share of documents that return to an earlier entity (half add, half correct).
FOLLOW_UP_SHARE = 0.18
DOCUMENT_SEED = 7  # the stream `bench documents` learns by default
# Relations a later document may correct, because they change (a move, a new job,
# a new chief) or are easy to get wrong (a birth year).
CORRECTABLE: dict[str, tuple[str, ...]] = {
    "person": ("home_town", "employer", "birth_year"),
    "company": ("headquarters", "ceo", "employees"),
    "town": ("mayor", "population"),
}

# --------------------------------------------------------------------------- #
# Vocabulary for invented names and plain-word answers
# --------------------------------------------------------------------------- #

_RIVER_ROOTS = (
    "Ald",
    "Brev",
    "Carr",
    "Elv",
    "Fal",
    "Gorr",
    "Hend",
    "Irv",
    "Lask",
    "Merr",
    "Norv",
    "Pell",
    "Sulv",
    "Tav",
)
_RIVER_MIDDLES = ("", "", "en", "il", "ar", "om")
_RIVER_ENDINGS = ("a", "ey", "wy", "ra", "ine", "esk", "ant", "oun", "isse")
_REGION_ROOTS = ("Tarn", "Valm", "Kord", "Ostr", "Brenn", "Hald", "Sk", "Yorv", "Drenn", "Morv", "Ulth", "Gesk")
_REGION_ENDINGS = ("mark", "land", "ria", "avia", "esse", "orra")
_REGION_KINDS = ("Valley", "Hills", "Lowlands", "Coast", "Uplands", "Fens", "Marches", "Plain")
_LANDMARK_KINDS = ("Tower", "Bridge", "Abbey", "Lighthouse", "Mill", "Gate", "Fountain", "Observatory", "Clock")
# Words of university names that many names share; every other capitalised word is
# claimed by the first name that uses it.
_GENERIC_WORDS = frozenset(
    {"the", "of", "University", "Institute", "Technology", "College", "State", "School", "Economics", "Polytechnic"}
)

PRODUCTS = (
    "water filters",
    "bicycle lamps",
    "ceramic tiles",
    "hearing aids",
    "garden sensors",
    "cargo drones",
    "solar kettles",
    "ski bindings",
    "pipe organs",
    "weather balloons",
    "fishing reels",
    "smoke detectors",
    "microscope lenses",
    "paper straws",
    "wooden toys",
    "heat pumps",
    "safety helmets",
    "tram brakes",
)
HOBBIES = (
    "sailing",
    "birdwatching",
    "rock climbing",
    "pottery",
    "chess",
    "fencing",
    "orienteering",
    "archery",
    "rowing",
    "knitting",
    "kite flying",
    "falconry",
    "calligraphy",
    "cave diving",
    "beekeeping",
    "woodcarving",
)
INSTRUMENTS = (
    "cello",
    "violin",
    "oboe",
    "accordion",
    "banjo",
    "harp",
    "trombone",
    "clarinet",
    "bassoon",
    "harmonica",
    "ukulele",
    "piano",
    "flute",
    "double bass",
    "mandolin",
)

# --------------------------------------------------------------------------- #
# Phrasings. Template syntax (see ``_Writer.render``):
#   {s} {o} {p} {n}   the entity as subject, object, possessive, noun phrase: its full
#                     name at the first mention in a document, later a pronoun or a
#                     short form ("Mira", "the company"; {n} is never a pronoun)
#   {N}               always the full name
#   {s*} {p*}         always a pronoun (refers to a name said before or later in the
#                     sentence: "In her spare time, Mira Osk ...")
#   {a} {A} {art}     the answer, its noun phrase ("the University of X"), its article;
#                     {a:rel} etc. in sentences stating several relations
#   {x:town} {old}    another town of the stream; the value a correction replaces
#   [is|are]          verb agreeing with the nearest subject mention ("they" is plural)
# Literal text starts lower case; the writer capitalises sentences. No template starts
# with a lower-case answer, so an answer always appears verbatim in its document.
# --------------------------------------------------------------------------- #

STATEMENTS: dict[str, tuple[str, ...]] = {
    "birthplace": (
        "{s} [was|were] born in {a}.",
        "{s} [comes|come] from {a} originally.",
        "{a} is where {s} [was|were] born.",
        "{p} birthplace is {a}, a town {s*} still [visits|visit] often.",
        "born in {a}, {s} never lost the local accent.",
        "a native of {a}, {s} still [goes|go] back every summer.",
        "{s} [was|were] born and raised in {a}.",
        "{p} roots are in {a}, where {s*} [was|were] born.",
        "{s} first saw the light of day in {a}.",
        "{s} [is|are] {art} {a} native.",
    ),
    "birth_year": (
        "{s} [was|were] born in {a}.",
        "born in {a}, {s} [is|are] the youngest of three siblings.",
        "{s} [was|were] born the year the old bridge at {x:town} reopened, {a}.",
        "{p} year of birth is {a}.",
        "{s} came into the world in {a}.",
        "{a} is the year {s} [was|were] born.",
        "{n}, born in {a}, has seen a lot of change.",
        "the records give {p} date of birth as a spring day in {a}.",
        "{s} [celebrates|celebrate] {p*} birthday in March; the year was {a}.",
    ),
    "home_town": (
        "{s} [lives|live] in {a} these days.",
        "{s} now [makes|make] {p*} home in {a}.",
        "these days {s} [is|are] based in {a}.",
        "{s} settled in {a} a few years ago and [has|have] stayed ever since.",
        "home for {o} is now {a}.",
        "{s} [rents|rent] a flat near the station in {a}.",
        "{a} is where {s} [lives|live] now.",
        "{s} [has|have] lived in {a} for the past decade.",
        "{a} resident {N} walks to work most days.",
        "{p} current address is in {a}.",
    ),
    "employer": (
        "{s} [works|work] at {a}.",
        "{s} [is|are] on the staff of {a}.",
        "{s} joined {a} a few years back.",
        "{a} took {o} on after a long interview process.",
        "by day, {s} [works|work] for {a}.",
        "{p} employer is {a}.",
        "{s} [has|have] a job with {a}.",
        "at {a}, {s} [is|are] one of the longest-serving staff members.",
        "{s} left a job in {x:town} to join {a}.",
        "{s} [is|are] employed by {a}.",
    ),
    "profession": (
        "{s} [is|are] {art} {a}.",
        "{s} [works|work] as {art} {a}.",
        "by trade, {s} [is|are] {art} {a}.",
        "{s} trained as {art} {a} and still [works|work] in the field.",
        "{s} [makes|make] a living as {art} {a}.",
        "as {art} {a}, {s} [keeps|keep] irregular hours.",
        "{p} job title is {a}.",
        "{s} [has|have] worked as {art} {a} for years.",
        "{s} [is|are] a qualified {a}.",
        "professionally, {s} [is|are] {art} {a}.",
    ),
    "university": (
        "{s} studied at {A}.",
        "{s} [is|are] a graduate of {A}.",
        "{s} earned {p*} degree at {A}.",
        "{p} alma mater is {A}.",
        "{A} is where {s} studied.",
        "{s} spent four years at {A}.",
        "after school, {s} went on to {A}.",
        "{s} [holds|hold] a degree from {A}.",
        "{s} graduated from {A} with honours.",
    ),
    "spouse": (
        "{s} [is|are] married to {a}.",
        "{p} partner is {a}.",
        "{s} and {a} have been married for years.",
        "{s} married {a} in a small ceremony.",
        "{a} is {p} spouse.",
        "{s} [shares|share] a home with {p*} partner, {a}.",
        "{p} spouse, {a}, is famously patient.",
        "{s} tied the knot with {a} a while ago.",
    ),
    "hobby": (
        "in {p*} spare time, {s} [enjoys|enjoy] {a}.",
        "{s} [is|are] really into {a}.",
        "{p} great passion is {a}.",
        "outside work, {s} [spends|spend] most weekends on {a}.",
        "{s} took up {a} a few years ago.",
        "{s} [has|have] been hooked on {a} since childhood.",
        "ask {o} about {a} and you will be there for an hour.",
        "when not working, {s} [loves|love] {a}.",
        "{s} [is|are] a keen {a} enthusiast.",
    ),
    "instrument": (
        "{s} [plays|play] the {a}.",
        "{s} [has|have] played the {a} since school.",
        "on weekends {s} [plays|play] the {a} in a local orchestra.",
        "{s} [is|are] a decent {a} player.",
        "{p} instrument is the {a}.",
        "{s} [practises|practise] the {a} every evening.",
        "music matters to {o}: {s*} [plays|play] the {a}.",
        "{s} picked up the {a} as a teenager.",
    ),
    "founder": (
        "{s} [was|were] founded by {a}.",
        "{a} founded {o}.",
        "{a} started {o} in a rented garage.",
        "the founder of {n} is {a}.",
        "{p} founder, {a}, still sits on the board.",
        "{s} [was|were] set up by {a}.",
        "it was {a} who got {o} off the ground.",
        "{a} is the founder of {n}.",
        "{s} [was|were] the brainchild of {a}.",
    ),
    "headquarters": (
        "{s} [is|are] headquartered in {a}.",
        "{s} [has|have] {p*} head office in {a}.",
        "{p} headquarters are in {a}.",
        "{s} [runs|run] everything from {p*} base in {a}.",
        "{a} is home to {p} headquarters.",
        "the main office of {n} sits in {a}.",
        "{s} [is|are] based in {a}.",
        "from {p*} offices in {a}, {s} [serves|serve] customers across the region.",
        "you will find {p} headquarters in {a}.",
    ),
    "founded_year": (
        "{s} [was|were] founded in {a}.",
        "{s} [has|have] been around since {a}.",
        "{s} opened {p*} doors in {a}.",
        "founded in {a}, {s} [has|have] grown steadily.",
        "{p} story begins in {a}.",
        "{s} [dates|date] back to {a}.",
        "the year {a} saw the launch of {n}.",
        "{s} [was|were] set up back in {a}.",
    ),
    "product": (
        "{s} [makes|make] {a}.",
        "{s} [is|are] best known for {p*} {a}.",
        "{p} main line of business is {a}.",
        "{s} [produces|produce] {a} for export.",
        "most of {p} revenue comes from {a}.",
        "{s} [builds|build] {a} in a small workshop.",
        "if you have bought {a} lately, chances are {s} made them.",
        "{s} [manufactures|manufacture] {a}.",
        "{s} [has|have] made {a} for as long as anyone remembers.",
    ),
    "ceo": (
        "{s} [is|are] run by {a}.",
        "{p} chief executive is {a}.",
        "{a} is the CEO of {n}.",
        "{a} leads {o} as chief executive.",
        "{s} [has|have] {a} at the helm.",
        "at the top of {n} sits {a}, the chief executive.",
        "the person in charge at {n} is {a}.",
        "{a}, the CEO, runs {o} day to day.",
    ),
    "employees": (
        "{s} [employs|employ] {a} people.",
        "{s} [has|have] a staff of {a}.",
        "exactly {a} people work for {n}.",
        "{p} workforce numbers {a}.",
        "{s} [has|have] {a} employees on the payroll.",
        "with {a} staff, {s} [is|are] one of the bigger employers in the area.",
        "the headcount at {n} stands at {a}.",
        "{a} people are on {p} payroll.",
    ),
    "river": (
        "{s} [lies|lie] on the {a}.",
        "the River {a} runs through {n}.",
        "{s} [sits|sit] on the banks of the {a}.",
        "the {a} flows right through the middle of {n}.",
        "{s} grew up along the {a}.",
        "{p} river is the {a}.",
        "boats on the {a} still stop at {n}.",
        "{s} [straddles|straddle] the {a}.",
    ),
    "region": (
        "{s} [lies|lie] in {A}.",
        "{s} [is|are] a town in {A}.",
        "{s} [belongs|belong] to {A}.",
        "part of {A}, {s} [is|are] surrounded by farmland.",
        "{s} [sits|sit] in the heart of {A}.",
        "to reach {n}, you drive deep into {A}.",
        "{A} is the region {s} [is|are] part of.",
    ),
    "mayor": (
        "{p} mayor is {a}.",
        "{a} is the mayor of {n}.",
        "{s} [is|are] led by mayor {a}.",
        "{a} was elected mayor of {n} at the last election.",
        "the town hall in {N} is run by {a}, the mayor.",
        "{s} [has|have] {a} as mayor.",
        "Mayor {a} runs {o} with a firm hand.",
    ),
    "population": (
        "{s} [has|have] {a} inhabitants.",
        "{p} population is {a}.",
        "{a} people live in {n}.",
        "{s} [is|are] home to {a} residents.",
        "with {a} residents, {s} [is|are] bigger than it looks.",
        "the last count put {p} population at {a}.",
        "{s} [counts|count] {a} residents.",
    ),
    "landmark": (
        "{s} [is|are] famous for {A}.",
        "{p} best-known sight is {A}.",
        "visitors to {n} usually head straight for {A}.",
        "{A} is the pride of {n}.",
        "{A} stands in the centre of {n}.",
        "the most photographed spot in {n} is {A}.",
        "{s} [is|are] known far and wide for {A}.",
        "nobody leaves {n} without seeing {A}.",
    ),
    "twin_town": (
        "{s} [is|are] twinned with {a}.",
        "{p} twin town is {a}.",
        "{s} and {a} are twin towns.",
        "{a} is the twin town of {N}.",
        "a twinning agreement links {n} with {a}.",
        "every summer {n} hosts visitors from {a}, its twin town.",
        "{s} [has|have] been twinned with {a} for decades.",
    ),
}

# Sentences that state two or three facts at once, keyed by the sorted relations.
COMBINED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("birth_year", "birthplace"): (
        "{s} [was|were] born in {a:birthplace} in {a:birth_year}.",
        "born in {a:birthplace} in {a:birth_year}, {s} [has|have] moved around a lot since.",
        "{s} came into the world in {a:birthplace} in the year {a:birth_year}.",
    ),
    ("employer", "profession", "university"): (
        "after finishing {p*} degree at {A:university}, {s} joined {a:employer} as {art:profession} {a:profession}.",
        "{s} went from {A:university} straight to {a:employer}, where {s*} [works|work] as {art:profession} "
        "{a:profession}.",
    ),
    ("employer", "university"): ("straight out of {A:university}, {s} landed a job at {a:employer}.",),
    ("employer", "profession"): (
        "{s} [works|work] as {art:profession} {a:profession} at {a:employer}.",
        "at {a:employer}, {s} [is|are] the resident {a:profession}.",
        "{a:employer} hired {o} as {art:profession} {a:profession}.",
    ),
    ("employer", "home_town"): ("{s} [lives|live] in {a:home_town} and [commutes|commute] to {a:employer} every day.",),
    ("birthplace", "home_town"): (
        "though born in {a:birthplace}, {s} now [lives|live] in {a:home_town}.",
        "{s} moved from {a:birthplace}, where {s*} [was|were] born, to {a:home_town}.",
    ),
    ("home_town", "spouse"): ("{s} and {p*} partner {a:spouse} live in {a:home_town}.",),
    ("hobby", "profession"): (
        "when {s} [is|are] not working as {art:profession} {a:profession}, {s*} [enjoys|enjoy] {a:hobby}.",
    ),
    ("birth_year", "profession"): ("born in {a:birth_year}, {s} trained as {art:profession} {a:profession}.",),
    ("hobby", "instrument"): ("{s} [plays|play] the {a:instrument} and [is|are] also keen on {a:hobby}.",),
    ("profession", "university"): ("{s} studied at {A:university} before becoming {art:profession} {a:profession}.",),
    ("founded_year", "founder"): (
        "{a:founder} founded {o} in {a:founded_year}.",
        "{s} [was|were] set up in {a:founded_year} by {a:founder}.",
    ),
    ("employees", "headquarters"): (
        "from {p*} headquarters in {a:headquarters}, {s} [employs|employ] {a:employees} people.",
    ),
    ("headquarters", "product"): ("{s} [makes|make] {a:product} at {p*} site in {a:headquarters}.",),
    ("ceo", "founder"): ("{s} [was|were] founded by {a:founder} and [is|are] now run by {a:ceo}.",),
    ("founded_year", "headquarters"): (
        "founded in {a:founded_year}, {s} [has|have] always been based in {a:headquarters}.",
    ),
    ("employees", "product"): ("{s} [employs|employ] {a:employees} people making {a:product}.",),
    ("region", "river"): ("{s} [lies|lie] on the {a:river} in {A:region}.",),
    ("mayor", "population"): ("{a:mayor} is mayor of {N}, a town of {a:population} people.",),
    ("landmark", "river"): ("{A:landmark} overlooks the {a:river} in {n}.",),
    ("population", "twin_town"): ("{n}, population {a:population}, is twinned with {a:twin_town}.",),
}

# How a correction states the new value; {old} is the value it replaces.
CORRECTIONS: dict[str, tuple[str, ...]] = {
    "home_town": (
        "{s} [has|have] moved from {old} to {a}.",
        "{s} no longer [lives|live] in {old}; {s*} moved to {a} last month.",
        "{s} [lives|live] in {a} now, not {old}.",
        "{s} packed up and moved to {a}.",
        "{p} new home is in {a}.",
    ),
    "employer": (
        "{s} [has|have] left {old} and now [works|work] at {a}.",
        "{s} changed jobs and [is|are] at {a} now.",
        "{s} no longer [works|work] for {old}; {s*} joined {a}.",
        "{a} has hired {o} away from {old}.",
        "{s} [is|are] now with {a}, not {old}.",
    ),
    "birth_year": (
        "{s} [was|were] born in {a}, not {old}.",
        "I had the year wrong; {s} [was|were] born in {a}.",
        "{p} year of birth is actually {a}.",
    ),
    "headquarters": (
        "{s} [has|have] moved {p*} headquarters from {old} to {a}.",
        "{p} head office is now in {a}.",
        "{s} relocated to {a} this year.",
        "{s} [is|are] no longer based in {old}; the new headquarters are in {a}.",
    ),
    "ceo": (
        "{s} [has|have] a new chief executive, {a}.",
        "{a} has taken over as CEO of {n}.",
        "{old} stepped down at {n} and {a} is the new CEO.",
        "{a} is now in charge at {n}, replacing {old}.",
    ),
    "employees": (
        "{s} now [employs|employ] {a} people, up from {old}.",
        "after a hiring spree, {p} headcount is {a}.",
        "the staff at {n} has grown to {a}.",
    ),
    "mayor": (
        "{a} is the new mayor of {n}.",
        "{n} elected {a} as mayor, replacing {old}.",
        "{old} is no longer mayor; {p} new mayor is {a}.",
    ),
    "population": (
        "the new census puts {p} population at {a}.",
        "{s} now [has|have] {a} inhabitants, according to the latest count.",
    ),
}

# Sentences that state no fact, so a learner cannot treat every sentence as one.
FILLERS: dict[str, tuple[str, ...]] = {
    "person": (
        "friends describe {o} as quiet.",
        "{s} [is|are] known for a dry sense of humour.",
        "people who know {o} say {s*} [is|are] always on time.",
        "{s} rarely [talks|talk] about work.",
        "{s} [keeps|keep] a low profile online.",
        "colleagues call {o} generous to a fault.",
        "{s} [is|are] hard to reach by phone.",
    ),
    "company": (
        "{s} rarely [talks|talk] to the press.",
        "customers seem happy with {o}.",
        "{p} website has not changed in years.",
        "reviews of {n} are mostly positive.",
        "{s} [has|have] had a busy year.",
    ),
    "town": (
        "{s} [is|are] quiet outside the summer season.",
        "parking in {n} is famously hard.",
        "the Saturday market in {n} is worth a visit.",
        "most visitors arrive by train.",
        "{s} [looks|look] lovely in autumn.",
    ),
}

# Openers and closers per document kind. An opener ending in a space is a prefix of
# the first sentence; "... that " prefixes only go before a sentence starting with
# the full name. Empty strings make "no opener/closer" a common choice.
OPENERS: dict[str, tuple[str, ...]] = {
    "note": (
        "",
        "",
        "Notes on {N}.",
        "For my records: ",
        "Writing this down before I forget: ",
        "A few things about {N}.",
        "Note to self - ",
        "Background on {N}, for the file.",
        "Some facts about {N} I picked up.",
    ),
    "bio": ("", "", "", "About {N}.", "{N}: a short profile.", "Profile - ", "Who is {N}?"),
    "news": (
        "",
        "",
        "Local news: ",
        "From this week's paper: ",
        "In brief: ",
        "Reported today: ",
        "News round-up.",
        "Regional roundup - ",
    ),
    "announcement": (
        "We are pleased to share some news about {N}.",
        "Announcement: ",
        "Big news: ",
        "Happy to announce that ",
        "Some news worth sharing: ",
        "A quick announcement about {N}.",
    ),
    "message": ("fyi: ", "Quick note - ", "hey, ", "btw, ", "heads up: ", "so ", "ok so ", "Just found out that ", ""),
    "update": (
        "Update on {N}: ",
        "More about {N}.",
        "Adding to what I wrote about {N} earlier: ",
        "Something I forgot to mention about {N}: ",
        "One more thing about {N}.",
        "Follow-up on {N} - ",
        "",
    ),
    "correction": (
        "Correction to my earlier note: ",
        "Update: ",
        "Small correction: ",
        "Correction: ",
        "Please note: ",
        "",
    ),
}
# Extra openers for corrections of a value that changed (a move, a new job) and of one
# that was simply wrong (a birth year).
CHANGE_OPENERS = ("Heads up, this has changed: ", "News since my last note: ", "Things have moved on - ")
ERROR_OPENERS = ("I got something wrong earlier - ", "My mistake earlier: ", "Fixing an error in my note: ")
ERROR_RELATIONS = frozenset({"birth_year"})
CLOSERS: dict[str, tuple[str, ...]] = {
    "note": ("", "", "", "More later.", "That's all I have for now.", "Will add more if I hear anything."),
    "bio": ("",),
    "news": ("", "", "More details are expected later this week.", "The story is still developing."),
    "announcement": ("", "", "Congratulations!", "We will share more soon."),
    "message": ("", "", "cheers", "just so you know", "thanks!", "ttyl"),
    "update": ("", "", "That's the latest.", "I'll keep this note up to date."),
    "correction": ("", "", "Sorry for the mix-up.", "Apologies for the confusion.", "Please update your notes."),
}
# Per kind: (fewest facts, most facts, most filler sentences).
KIND_SHAPE: dict[str, tuple[int, int, int]] = {
    "note": (1, 5, 1),
    "bio": (2, 5, 2),
    "news": (1, 4, 1),
    "announcement": (1, 4, 1),
    "message": (1, 3, 1),
    "update": (1, 3, 1),
}
MAX_SENTENCES = 6

# --------------------------------------------------------------------------- #
# Questions. {e} is the entity's full name, {e}'s its possessive. Held-out questions
# are only for evaluation; user questions are what a user sends with a document.
# --------------------------------------------------------------------------- #

HELD_OUT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "birthplace": (
        "In which town was {e} born?",
        "Where is {e} from originally?",
        "Which town does {e} come from?",
        "What is the place of birth of {e}?",
    ),
    "birth_year": (
        "In what year was {e} born?",
        "When was {e} born?",
        "Which year was {e} born in?",
        "Which year marks {e}'s birth?",
        "What year is on {e}'s birth certificate?",
    ),
    "home_town": (
        "Where does {e} live now?",
        "Which town does {e} currently live in?",
        "Where is {e} based these days?",
        "Where does {e} reside at the moment?",
    ),
    "employer": (
        "Who does {e} work for?",
        "Which company employs {e}?",
        "Where does {e} work?",
        "What company is {e} with?",
    ),
    "profession": (
        "What does {e} do for a living?",
        "What is {e}'s job?",
        "What line of work is {e} in?",
        "What is {e}'s occupation?",
    ),
    "university": (
        "Where did {e} go to university?",
        "Which institution did {e} graduate from?",
        "Where did {e} study?",
        "Which school did {e} attend?",
    ),
    "spouse": (
        "Who is {e} married to?",
        "What is the name of {e}'s spouse?",
        "Who is {e}'s partner?",
        "Who did {e} wed?",
    ),
    "hobby": (
        "What is {e}'s hobby?",
        "What does {e} like to do for fun?",
        "What pastime does {e} enjoy?",
        "How does {e} spend free time?",
    ),
    "instrument": (
        "What instrument does {e} play?",
        "Which musical instrument can {e} play?",
        "What does {e} play, musically?",
    ),
    "founder": (
        "Who is the founder of {e}?",
        "Who started {e}?",
        "Who created {e}?",
        "Which person established {e}?",
    ),
    "headquarters": (
        "Where is {e} headquartered?",
        "In which town is {e} based?",
        "Where is the head office of {e}?",
        "Which town hosts {e}'s main office?",
    ),
    "founded_year": (
        "When was {e} founded?",
        "In what year was {e} established?",
        "What year did {e} start out?",
        "Since what year has {e} existed?",
    ),
    "product": (
        "What does {e} make?",
        "What products is {e} known for?",
        "What does {e} sell?",
        "What kind of goods does {e} produce?",
    ),
    "ceo": (
        "Who is the CEO of {e}?",
        "Who runs {e}?",
        "Who is in charge of {e}?",
        "Who heads {e}?",
        "Who is the boss at {e}?",
    ),
    "employees": (
        "How many people work at {e}?",
        "How big is the staff at {e}?",
        "How many employees does {e} have?",
        "What is the headcount of {e}?",
    ),
    "river": ("Which river flows through {e}?", "What river is {e} on?", "Which river runs past {e}?"),
    "region": ("Which region is {e} in?", "In what part of the country is {e}?", "Where is {e} located?"),
    "mayor": (
        "Who is the mayor of {e}?",
        "Who is {e}'s mayor?",
        "Who leads the town of {e}?",
        "Who governs {e}?",
        "Who heads the council in {e}?",
    ),
    "population": (
        "How many people live in {e}?",
        "What is the population of {e}?",
        "How many inhabitants does {e} have?",
    ),
    "landmark": (
        "What is {e} famous for?",
        "What is the best-known landmark in {e}?",
        "What should a visitor see in {e}?",
    ),
    "twin_town": ("What is {e}'s twin town?", "Which town is {e} twinned with?", "Which town is paired with {e}?"),
}

USER_QUESTIONS: dict[str, tuple[str, ...]] = {
    "birthplace": ("Where was {e} born?", "What is {e}'s birthplace?", "Name the town where {e} was born."),
    "birth_year": ("{e} was born in which year?", "Tell me {e}'s year of birth."),
    "home_town": ("Where does {e} live?", "{e} lives in which town?", "What is {e}'s current town?"),
    "employer": ("{e} works for which company?", "Which firm is {e} at?", "Tell me {e}'s employer."),
    "profession": ("What job does {e} have?", "{e} works as what?", "What is {e}'s trade?"),
    "university": ("Where did {e} get a degree?", "{e} studied where?", "Which university is {e} a graduate of?"),
    "spouse": ("Whom did {e} marry?", "{e} is married to whom?"),
    "hobby": ("What does {e} do in spare time?", "Which hobby does {e} have?"),
    "instrument": ("Which instrument does {e} play?", "{e} plays which instrument?"),
    "founder": ("Who founded {e}?", "{e} was founded by whom?"),
    "headquarters": ("Where is {e} based?", "Where are {e}'s headquarters?"),
    "founded_year": ("What year was {e} founded?", "{e} was founded in which year?"),
    "product": ("What is {e}'s main product?", "{e} makes what?"),
    "ceo": ("Who is {e}'s chief executive?", "Who leads {e}?"),
    "employees": ("What is the size of {e}'s workforce?", "{e} employs how many people?"),
    "river": ("What is the river in {e}?", "{e} lies on which river?"),
    "region": ("What region does {e} belong to?", "{e} is in which region?"),
    "mayor": ("Who runs {e} as mayor?", "Name the mayor of {e}."),
    "population": ("What is {e}'s population?", "How many residents does {e} have?"),
    "landmark": ("Which landmark is {e} known for?", "What is the famous sight in {e}?"),
    "twin_town": ("{e} is twinned with which town?", "Name {e}'s twin town."),
}

# Words a question shares with any document for free; the rest count as its wording.
_FUNCTION_WORDS = frozenset(
    "a an the of in on at to for with and or is are was were be do does did what which who whom where when "
    "how can you me tell name that it its from by as s".split()
)

# --------------------------------------------------------------------------- #
# Public data classes
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class DocumentFact:
    """One fact a document states, with its short gold answer and held-out questions."""

    entity: str
    kind: str
    relation: str
    answer: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class UserDocument:
    """One posted document; ``supersedes`` lists (earlier document index, relation) it corrects."""

    index: int
    kind: str
    text: str
    facts: tuple[DocumentFact, ...]
    qa: tuple[tuple[str, str], ...]
    supersedes: tuple[tuple[int, str], ...] = ()


# --------------------------------------------------------------------------- #
# Names
# --------------------------------------------------------------------------- #


def _possessive(name: str) -> str:
    """``"Mira Osk's"``, ``"Quorvane Labs'"``."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _syllables(
    rng: random.Random, roots: tuple[str, ...], endings: tuple[str, ...], middles: tuple[str, ...] = ("",)
) -> str:
    return (rng.choice(roots) + rng.choice(middles) + rng.choice(endings)).capitalize()


def _river(rng: random.Random) -> str:
    return _syllables(rng, _RIVER_ROOTS, _RIVER_ENDINGS, _RIVER_MIDDLES)


def _region(rng: random.Random) -> str:
    return f"{_syllables(rng, _REGION_ROOTS, _REGION_ENDINGS)} {rng.choice(_REGION_KINDS)}"


def _landmark(rng: random.Random) -> str:
    return f"{_last_name(rng)} {rng.choice(_LANDMARK_KINDS)}"


def _person(rng: random.Random) -> str:
    return f"{_first_name(rng)} {_last_name(rng)}"


def _skeleton(word: str) -> str:
    """Consonants only, doubles collapsed: names with the same skeleton look alike."""
    return re.sub(r"(.)\1+", r"\1", re.sub(r"[aeiouy]", "", word.lower()))


class _Names:
    """Hands out invented names no earlier name contains or is contained in.

    Each distinctive word (everything but a company's sector and the fixed words
    of university names) is also used once only, so "Tessford" the town and "the
    University of Tessford" never both occur and a first name identifies a person;
    nor may two such words differ only in vowels ("Tessigate", "Tessegate").
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._skeletons: set[str] = set()

    def claim(self, make: Callable[[], str], generic_last_word: bool = False) -> str:
        for _ in range(1000):
            name = make()
            words = [w for w in name.split() if w not in _GENERIC_WORDS]
            if generic_last_word:
                words = words[:-1]
            skeletons = {_skeleton(w) for w in words}
            if len(skeletons) == len(words) and self._free(name, skeletons):
                self._names.append(name)
                self._skeletons.update(skeletons)
                return name
        raise RuntimeError("ran out of invented names; generate fewer documents")

    def _free(self, name: str, skeletons: set[str]) -> bool:
        if not skeletons.isdisjoint(self._skeletons):
            return False
        low = name.lower()
        return not any(low in old.lower() or old.lower() in low for old in self._names)


# --------------------------------------------------------------------------- #
# Entities and the world they live in
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Value:
    answer: str  # the short gold answer
    phrase: str  # how the text says it: "the University of Tessford" for "University of Tessford"


def _value(phrase: str) -> _Value:
    return _Value(phrase[4:] if phrase.startswith("the ") else phrase, phrase)


def _count(rng: random.Random, low_exp: float, high_exp: float, step: int) -> str:
    number = max(step, round(10 ** rng.uniform(low_exp, high_exp) / step) * step)
    return f"{number:,}"


@dataclass
class _Entity:
    name: str
    kind: str
    pronoun: str  # "she", "he", "they" or "it"
    short: tuple[str, ...]  # short references after the first mention: "Mira", "the company"
    values: dict[str, _Value]
    stated: dict[str, int] = field(default_factory=dict)  # relation -> document that gave its current value


class _World:
    """Everything invented so far: names, the shared pools of towns and companies, entities."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.names = _Names()
        self.towns: list[str] = []
        self.companies: list[str] = []
        self.regions: list[str] = []
        self.entities: list[_Entity] = []
        self._entity_names: set[str] = set()
        self._kind_bag: list[str] = []

    # Pools: people live in, work for and come from places other documents may be about.
    # The bigger a pool, the likelier a name is reused, as in a real stream of documents
    # (this also keeps long streams within the supply of distinct-looking names).
    def _pooled(
        self,
        pool: list[str],
        make: Callable[[random.Random], str],
        avoid: Sequence[str],
        half: int,
        generic_last_word: bool = False,
    ) -> str:
        choices = [name for name in pool if name not in avoid]
        if choices and self.rng.random() < len(choices) / (len(choices) + half):
            return self.rng.choice(choices)
        name = self.names.claim(lambda: make(self.rng), generic_last_word)
        pool.append(name)
        return name

    def town(self, avoid: Sequence[str] = ()) -> str:
        return self._pooled(self.towns, _town, avoid, 20)

    def company(self, avoid: Sequence[str] = ()) -> str:
        return self._pooled(self.companies, _company, avoid, 15, generic_last_word=True)

    def region(self) -> str:
        return self._pooled(self.regions, _region, (), 4, generic_last_word=True)

    def person_name(self) -> str:
        return self.names.claim(lambda: _person(self.rng))

    def next_fresh_kind(self) -> str:
        """Fresh document kinds come from a shuffled bag, so every kind shows up early."""
        if not self._kind_bag:
            self._kind_bag = list(FRESH_KINDS)
            self.rng.shuffle(self._kind_bag)
        return self._kind_bag.pop()

    def new_entity(self, kind: str) -> _Entity:
        maker = {"person": self._new_person, "company": self._new_company, "town": self._new_town}[kind]
        entity = maker()
        self.entities.append(entity)
        self._entity_names.add(entity.name)
        return entity

    def _unused(self, pool: list[str]) -> str | None:
        """A pooled name no document is about yet, sometimes: so documents cross-reference."""
        free = [name for name in pool if name not in self._entity_names]
        return self.rng.choice(free) if free and self.rng.random() < 0.4 else None

    def _new_person(self) -> _Entity:
        rng = self.rng
        name = self.person_name()
        birthplace = self.town()
        values = {
            "birthplace": birthplace,
            "birth_year": str(rng.randint(1942, 2003)),
            "home_town": self.town(avoid=[birthplace]),
            "employer": self.company(),
            "profession": rng.choice(PROFESSIONS),
            "university": self.names.claim(lambda: _university(rng)),
            "spouse": self.person_name(),
            "hobby": rng.choice(HOBBIES),
            "instrument": rng.choice(INSTRUMENTS),
        }
        pronoun = rng.choices(("she", "he", "they"), weights=(45, 45, 10))[0]
        return _Entity(name, "person", pronoun, (name.split()[0],), {k: _value(v) for k, v in values.items()})

    def _new_company(self) -> _Entity:
        rng = self.rng
        name = self._unused(self.companies) or self.company(avoid=self.companies)
        founder = self.person_name()
        values = {
            "founder": founder,
            "headquarters": self.town(),
            "founded_year": str(rng.randint(1890, 2021)),
            "product": rng.choice(PRODUCTS),
            "ceo": self.person_name(),
            "employees": _count(rng, 1.0, 3.7, 1),
        }
        short = ("the company", "the firm", name.split()[0])
        return _Entity(name, "company", "it", short, {k: _value(v) for k, v in values.items()})

    def _new_town(self) -> _Entity:
        rng = self.rng
        name = self._unused(self.towns) or self.town(avoid=self.towns)
        values = {
            "river": self.names.claim(lambda: _river(rng)),
            "region": "the " + self.region(),
            "mayor": self.person_name(),
            "population": _count(rng, 3.0, 5.2, 10),
            "landmark": "the " + self.names.claim(lambda: _landmark(rng), generic_last_word=True),
            # Twin towns stay out of the pool: nobody else lives there, so twinning stays one-to-one.
            "twin_town": self.names.claim(lambda: _town(rng)),
        }
        return _Entity(name, "town", "it", ("the town",), {k: _value(v) for k, v in values.items()})


# --------------------------------------------------------------------------- #
# Writing sentences
# --------------------------------------------------------------------------- #

_PRONOUNS: dict[str, tuple[str, str, str]] = {  # subject, object, possessive
    "she": ("she", "her", "her"),
    "he": ("he", "him", "his"),
    "they": ("they", "them", "their"),
    "it": ("it", "it", "its"),
}
_TOKEN = re.compile(r"\{(\w+\*?)(?::(\w+))?\}|\[([^|\]]*)\|([^\]]*)\]")
_SUBJECT_TAGS = frozenset({"s", "s*", "N"})


class _Writer:
    """Renders templates about one entity within one document, tracking its first mention."""

    def __init__(self, rng: random.Random, entity: _Entity, pronoun: str | None = None) -> None:
        self.rng = rng
        self.entity = entity
        self.pronoun = pronoun or entity.pronoun
        self.mentioned = False

    def render(self, template: str, values: dict[str, _Value], extra: dict[str, str] | None = None) -> str:
        """The sentence, not yet capitalised (it may follow an opener such as "fyi: ")."""
        parts: list[str] = []
        subjects: list[tuple[int, bool]] = []  # (part index, plural)
        verbs: list[tuple[int, str, str]] = []
        pos = 0
        for match in _TOKEN.finditer(template):
            parts.append(template[pos : match.start()])
            pos = match.end()
            tag, relation, singular, plural = match.groups()
            if singular is not None:
                verbs.append((len(parts), singular, plural))
                parts.append("")
                continue
            text = self._fill(tag, relation, values, extra or {})
            if tag in _SUBJECT_TAGS:
                subjects.append((len(parts), text == "they"))
            parts.append(text)
        parts.append(template[pos:])
        for at, singular, plural in verbs:
            before = [p for i, p in subjects if i < at]
            after = [p for i, p in subjects if i > at]
            is_plural = before[-1] if before else bool(after and after[0])
            parts[at] = plural if is_plural else singular
        return "".join(parts)

    def _fill(self, tag: str, relation: str | None, values: dict[str, _Value], extra: dict[str, str]) -> str:
        if tag in ("a", "A", "art"):
            value = values[relation] if relation else next(iter(values.values()))
            if tag == "a":
                return value.answer
            return value.phrase if tag == "A" else indefinite_article(value.answer)
        if tag == "x":
            return extra[relation or ""]
        if tag == "old":
            return extra["old"]
        return self._mention(tag)

    def _mention(self, tag: str) -> str:
        role = tag.rstrip("*")
        subject, obj, poss = _PRONOUNS[self.pronoun]
        pronoun = {"s": subject, "o": obj, "p": poss}.get(role, subject)
        if tag.endswith("*"):
            return pronoun
        if tag == "N" or not self.mentioned:
            self.mentioned = True
            return _possessive(self.entity.name) if role == "p" else self.entity.name
        if role == "n" or self.rng.random() < 0.35:
            short = self.rng.choice(self.entity.short)
            return _possessive(short) if role == "p" else short
        return pronoun


def _capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _group(rng: random.Random, relations: list[str]) -> list[tuple[str, ...]]:
    """Split relations (in order) into sentences, combining some into one sentence."""
    left = list(relations)
    groups: list[tuple[str, ...]] = []
    while left:
        first = left[0]
        combos = [key for key in COMBINED if first in key and set(key) <= set(left)]
        group: tuple[str, ...] = (first,)
        if combos and rng.random() < 0.5:
            group = rng.choice(combos)
        groups.append(group)
        left = [r for r in left if r not in group]
    return groups


def _pick(rng: random.Random, templates: Sequence[str], used_starts: list[str]) -> str:
    """A template, avoiding the first two words of sentences already in the document."""
    fresh = [t for t in templates if " ".join(t.split()[:2]) not in used_starts]
    template = rng.choice(fresh or templates)
    used_starts.append(" ".join(template.split()[:2]))
    return template


def _fact_sentences(writer: _Writer, world: _World, groups: list[tuple[str, ...]], used_starts: list[str]) -> list[str]:
    sentences = []
    avoid = [writer.entity.name, *(v.answer for v in writer.entity.values.values())]
    for group in groups:
        key = tuple(sorted(group))
        template = _pick(writer.rng, COMBINED[key] if len(group) > 1 else STATEMENTS[group[0]], used_starts)
        values = {r: writer.entity.values[r] for r in group}
        extra = {"town": world.town(avoid=avoid)} if "{x:town}" in template else {}
        avoid.extend(extra.values())
        sentences.append(writer.render(template, values, extra))
    return sentences


def _write(writer: _Writer, world: _World, kind: str, relations: list[str], filler_count: int) -> str:
    """Opener, sentences stating ``relations`` with fillers mixed in, closer: at most MAX_SENTENCES."""
    rng = writer.rng
    groups = _group(rng, relations)
    opener, closer = rng.choice(OPENERS[kind]), rng.choice(CLOSERS[kind])
    is_sentence = bool(opener) and not opener.endswith(" ")
    if len(groups) + is_sentence + bool(closer) > MAX_SENTENCES:
        closer = ""
    # Rendered first: an opener naming the entity makes the next sentences refer back to it.
    rendered_opener = writer.render(opener, {})
    prefix, opener_sentence = ("", rendered_opener) if is_sentence else (rendered_opener, "")
    used_starts: list[str] = []
    sentences = _fact_sentences(writer, world, groups, used_starts)
    if prefix.endswith("that ") and not sentences[0].startswith(writer.entity.name):
        prefix = ""
    room = MAX_SENTENCES - len(sentences) - is_sentence - bool(closer)
    body = [_capitalise(s) for s in sentences]
    for _ in range(min(filler_count, room)):
        filler = writer.render(_pick(rng, FILLERS[writer.entity.kind], used_starts), {})
        body.insert(rng.randint(1, len(body)), _capitalise(filler))
    if prefix:
        body[0] = prefix + sentences[0]
    return " ".join(e for e in (opener_sentence, *body, closer) if e)


# --------------------------------------------------------------------------- #
# Questions
# --------------------------------------------------------------------------- #


def _fill_question(template: str, entity: str) -> str:
    return template.replace("{e}'s", _possessive(entity)).replace("{e}", entity)


def _stems(text: str) -> set[str]:
    """Crude word stems ("works" and "work" match) for comparing wordings."""
    stems = set()
    for word in re.findall(r"[a-z]+", text.lower().replace("'s", "")):
        for suffix in ("ing", "ed", "es", "s"):
            if len(word) > len(suffix) + 3 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        stems.add(word)
    return stems


def _content_stems(question: str, entity: str) -> set[str]:
    """Stems of a question's own wording: no function words, no words of the entity's name."""
    return _stems(question) - _FUNCTION_WORDS - _stems(entity)


def _held_out(rng: random.Random, relation: str, entity: str, text: str) -> tuple[str, ...]:
    """2-3 held-out questions, each using a word the document does not (when 2 such exist).

    Otherwise "When was X born?" would test a document saying "X was born in 1987"
    by its own words; the questions should need the fact, not the phrasing.
    """
    in_text = _stems(text)
    questions = [_fill_question(t, entity) for t in HELD_OUT_QUESTIONS[relation]]
    rng.shuffle(questions)
    questions.sort(key=lambda q: -len(_content_stems(q, entity) - in_text))
    own_words = sum(1 for q in questions if _content_stems(q, entity) - in_text)
    return tuple(questions[: min(rng.choice((2, 3)), max(2, own_words))])


def _facts_and_qa(
    rng: random.Random, entity: _Entity, relations: Sequence[str], text: str
) -> tuple[tuple[DocumentFact, ...], tuple[tuple[str, str], ...]]:
    facts, qa = [], []
    for relation in relations:
        answer = entity.values[relation].answer
        questions = _held_out(rng, relation, entity.name, text)
        facts.append(DocumentFact(entity.name, entity.kind, relation, answer, questions))
        qa.append((_fill_question(rng.choice(USER_QUESTIONS[relation]), entity.name), answer))
    return tuple(facts), tuple(qa)


# --------------------------------------------------------------------------- #
# Documents
# --------------------------------------------------------------------------- #


def _document(
    index: int, kind: str, writer: _Writer, world: _World, relations: list[str], filler_count: int
) -> UserDocument:
    text = _write(writer, world, kind, relations, filler_count)
    for relation in relations:
        writer.entity.stated[relation] = index
    facts, qa = _facts_and_qa(writer.rng, writer.entity, relations, text)
    return UserDocument(index, kind, text, facts, qa)


def _pronoun_for(rng: random.Random, entity: _Entity, kind: str) -> str | None:
    """Chat-like writing sometimes calls a company "they"."""
    if entity.kind == "company" and kind in ("message", "note") and rng.random() < 0.3:
        return "they"
    return None


def _fresh_document(index: int, world: _World) -> UserDocument:
    rng = world.rng
    kind = world.next_fresh_kind()
    entity_kind = "person" if kind == "bio" else rng.choices(("person", "company", "town"), (45, 30, 25))[0]
    entity = world.new_entity(entity_kind)
    low, high, max_fillers = KIND_SHAPE[kind]
    count = rng.randint(low, min(high, len(RELATIONS_BY_KIND[entity_kind])))
    relations = rng.sample(RELATIONS_BY_KIND[entity_kind], count)
    writer = _Writer(rng, entity, _pronoun_for(rng, entity, kind))
    return _document(index, kind, writer, world, relations, rng.randint(0, max_fillers))


def _addition(index: int, world: _World) -> UserDocument | None:
    """A later document adding relations not yet stated about an earlier entity."""
    rng = world.rng
    candidates = [e for e in world.entities if len(e.stated) < len(RELATIONS_BY_KIND[e.kind])]
    if not candidates:
        return None
    entity = rng.choice(candidates)
    unstated = [r for r in RELATIONS_BY_KIND[entity.kind] if r not in entity.stated]
    relations = rng.sample(unstated, rng.randint(1, min(3, len(unstated))))
    return _document(index, "update", _Writer(rng, entity), world, relations, rng.randint(0, 1))


def _new_value(world: _World, entity: _Entity, relation: str) -> str:
    """A different value for a corrected relation, as the text will say it."""
    rng = world.rng
    old = entity.values[relation].answer
    if relation in ("home_town", "headquarters"):
        return world.town(avoid=[old, entity.values.get("birthplace", _Value("", "")).answer])
    if relation == "employer":
        return world.company(avoid=[old])
    if relation in ("ceo", "mayor"):
        return world.person_name()
    if relation == "birth_year":
        return str(int(old) + rng.choice((-3, -2, -1, 1, 2, 3)))
    grown = int(old.replace(",", "")) * rng.uniform(1.1, 1.6)
    return f"{round(grown) + 1:,}"


def _correction(index: int, world: _World) -> UserDocument | None:
    """A later document replacing one stated value of an earlier entity."""
    rng = world.rng
    candidates = [(e, r) for e in world.entities for r in CORRECTABLE[e.kind] if r in e.stated]
    if not candidates:
        return None
    entity, relation = rng.choice(candidates)
    old = entity.values[relation]
    entity.values[relation] = _value(_new_value(world, entity, relation))
    writer = _Writer(rng, entity)
    sentence = writer.render(
        rng.choice(CORRECTIONS[relation]), {relation: entity.values[relation]}, {"old": old.phrase}
    )
    closer = rng.choice(CLOSERS["correction"])
    extra_openers = ERROR_OPENERS if relation in ERROR_RELATIONS else CHANGE_OPENERS
    opener = rng.choice(OPENERS["correction"] + extra_openers)
    text = " ".join(e for e in (opener + (sentence if opener else _capitalise(sentence)), closer) if e)
    superseded = (entity.stated[relation], relation)
    entity.stated[relation] = index
    facts, qa = _facts_and_qa(rng, entity, [relation], text)
    return UserDocument(index, "correction", text, facts, qa, supersedes=(superseded,))


def _follow_up_plan(rng: random.Random, n: int) -> list[str]:
    """Per index, "fresh", "update" or "correction"; follow-ups never come first."""
    plan = ["fresh"] * n
    count = round(n * FOLLOW_UP_SHARE) if n > 3 else 0
    kinds = (["update", "correction"] * count)[:count]
    rng.shuffle(kinds)
    for i, kind in zip(sorted(rng.sample(range(2, n), count)), kinds, strict=False):
        plan[i] = kind
    return plan


def user_documents(n: int, seed: int = 0) -> list[UserDocument]:
    """A stream of ``n`` documents as users post them, deterministic given ``seed``.

    About ``FOLLOW_UP_SHARE`` of them return to an earlier entity: half add new facts
    (kind "update"), half correct one fact (kind "correction", with ``supersedes``).
    A follow-up that has nothing to add or correct yet waits for the next document.
    Invented names that look distinct run out past about 500 documents (RuntimeError).
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    world = _World(rng)
    pending: list[str] = []
    documents: list[UserDocument] = []
    for index, planned in enumerate(_follow_up_plan(rng, n)):
        if planned != "fresh":
            pending.append(planned)
        document = None
        if pending:
            make = _addition if pending[0] == "update" else _correction
            document = make(index, world)
            if document is not None:
                pending.pop(0)
        documents.append(document or _fresh_document(index, world))
    return documents


def current_facts(documents: Sequence[UserDocument]) -> list[tuple[UserDocument, DocumentFact]]:
    """Every fact of the stream as it stands after all documents.

    A corrected fact appears only with its newer value (from the correcting
    document); every other fact with the document that stated it. A document is
    about one entity, so (document index, relation) names one fact.
    """
    superseded = {pair for document in documents for pair in document.supersedes}
    return [
        (document, fact)
        for document in documents
        for fact in document.facts
        if (document.index, fact.relation) not in superseded
    ]


def corrected_facts(documents: Sequence[UserDocument]) -> list[tuple[UserDocument, DocumentFact]]:
    """The current values of facts some document corrected (the latest correction only)."""
    return [
        (document, fact)
        for document, fact in current_facts(documents)
        if any(relation == fact.relation for _, relation in document.supersedes)
    ]


def correction_stream(documents: Sequence[UserDocument]) -> list[UserDocument]:
    """Only the documents a correction touches (each correcting document and the documents it
    corrects), in order, numbered again from 0: a short stream that measures corrections."""
    touched = sorted({d.index for d in documents if d.supersedes} | {i for d in documents for i, _ in d.supersedes})
    number = {old: new for new, old in enumerate(touched)}
    return [
        replace(
            documents[old],
            index=number[old],
            supersedes=tuple((number[earlier], relation) for earlier, relation in documents[old].supersedes),
        )
        for old in touched
    ]
