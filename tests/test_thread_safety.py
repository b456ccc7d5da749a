"""Analysis from several threads at once: the bot builds server indexes with ``asyncio.to_thread``.

Snowball stemmers keep their working state on the instance, so one stemmer shared by threads
mixes up words mid-stem (wrong stems, ``IndexError``), and the stem cache then keeps a wrong stem
for the life of the process. These tests stem and build from several threads and must get
exactly what one thread gets. A tiny switch interval makes the interpreter swap threads every few
bytecodes, so a race that would take minutes of real traffic shows up in a fraction of a second.
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
import snowballstemmer

from bot.engine import Document, Engine, parse_text
from bot.engine.analyzer import stem

ROOT = Path(__file__).resolve().parents[1]
THREADS = 6
T = TypeVar("T")

# Endings that send the English Snowball algorithm down its different steps.
ENDINGS = ["", "s", "es", "ies", "ing", "ed", "ly", "ation", "ational", "ness", "ment", "ful", "izer"]
ENDINGS += ["ousness", "iveness", "ally", "ement", "ence", "ability", "fulness", "ization", "eed"]


@pytest.fixture
def threads_switch_often() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def made_up_words(count: int, seed: int) -> list[str]:
    """``count`` distinct word-like strings, none of them cached by an earlier test."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < count:
        root = "".join(rng.choice("abcdefghilmnoprstuvwy") for _ in range(rng.randint(3, 9)))
        words.add(f"q{seed}{root}{rng.choice(ENDINGS)}")  # the prefix keeps seeds apart
    return sorted(words)


def in_threads(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run every job at once, one thread each; results in the order of ``jobs``."""
    start = threading.Barrier(len(jobs))

    def run(job: Callable[[], T]) -> T:
        start.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def test_stems_from_several_threads_are_the_stems_of_one_thread(threads_switch_often: None) -> None:
    words = made_up_words(THREADS * 3000, seed=1)
    reference = snowballstemmer.stemmer("english")  # a private stemmer, used by this thread only
    expected = {word: reference.stemWord(word) for word in words}
    stem.cache_clear()  # every word below is stemmed, none answered from the cache

    def stem_share(share: list[str]) -> dict[str, str]:
        found = {}
        for word in share:
            try:
                found[word] = stem(word)
            except Exception as error:  # a shared stemmer fails this way too: count it
                found[word] = repr(error)
        return found

    results = in_threads([lambda share=words[i::THREADS]: stem_share(share) for i in range(THREADS)])

    got = {word: found for result in results for word, found in result.items()}
    wrong = {word: (got[word], expected[word]) for word in words if got[word] != expected[word]}
    assert not wrong, f"{len(wrong)} wrong stems or errors of {len(words)}: {list(wrong.items())[:3]}"
    # Nor has the cache kept anything but the right stem.
    cached = {word: stem(word) for word in words}
    assert cached == expected


def server_documents(seed: int, words_each: int = 500) -> list[Document]:
    """Two server documents of made-up words, 40 to a paragraph, each ending in a real sentence."""
    words = made_up_words(2 * words_each, seed)
    halves = {"a": words[:words_each], "b": words[words_each:]}
    return [
        parse_text(
            "\n".join(
                " ".join(half[i : i + 40]) + " Paella is served on Fridays." for i in range(0, len(half), 40)
            ),
            doc_id=f"g{seed}-{part}",
            default_title=f"notes {seed} {part}",
            markdown=False,
        )
        for part, half in halves.items()
    ]


def questions() -> list[str]:
    lines = (ROOT / "evals" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()] + ["What is served on Fridays?"]


def test_engines_built_at_once_answer_exactly_like_engines_built_one_by_one(
    threads_switch_often: None,
) -> None:
    """As the bot does at start-up: several servers' indexes built in worker threads at once."""
    asked = questions()
    seeds = range(100, 100 + THREADS)

    def build(seed: int) -> Engine:
        return Engine.from_path(ROOT / "corpus").with_documents(server_documents(seed))

    def answers(engine: Engine) -> list[object]:
        return [engine.ask(question, k=3).to_dict() for question in asked]

    stem.cache_clear()
    one_by_one = [answers(build(seed)) for seed in seeds]
    assert sum(a["answered"] for a in one_by_one[0]) > len(asked) // 2  # type: ignore[index]

    stem.cache_clear()  # the builds below stem every word again, all at once
    engines = in_threads([lambda seed=seed: build(seed) for seed in seeds])
    for seed, engine, expected in zip(seeds, engines, one_by_one, strict=True):
        assert answers(engine) == expected, f"server {seed} answers differently"
