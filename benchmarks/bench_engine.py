"""Engine benchmark: build time, query latency and memory, beside plain rank-bm25.

Run by hand from the repository root (takes several minutes with the default sizes)::

    python benchmarks/bench_engine.py [--sizes 1000,10000,100000] [--queries N] [--out docs/BENCHMARKS.md]

Corpora: the article (``corpus/``) and generated corpora of about 1k, 10k and 100k passages. Each
corpus is measured in a fresh subprocess, so one size's memory never shows up in another's.

Per corpus:

- **build**: wall time of ``Engine(documents)``; peak RSS growth during it (``VmHWM`` after the
  build minus ``VmRSS`` before it, the high-water mark reset first through
  ``/proc/self/clear_refs``); and, in a second build from the same cold start (stemmer cache
  cleared), the ``tracemalloc`` peak (Python allocations only) and what stays allocated after it.
  tracemalloc slows that build down several times; ``--no-tracemalloc`` skips it.
- **ask**: p50 / p99 of ``engine.ask(question, k=3)`` over a fixed, seeded mix of questions: the
  eval questions (``evals/dev.jsonl``, ``evals/heldout.jsonl``) and, for generated corpora, as many
  questions built from words of random passages, so most of them match something; ``--passes``
  timed passes over the mix (default 5), after a warm-up.
- **score**: the engine's main field (``engine.index``, a ``BM25Index``) alone, on the analysed
  question: the like-for-like figure against plain rank-bm25.
- **plain**: ``rank_bm25.BM25Okapi(passages' terms).get_scores(terms)`` with the engine's k1, b
  and epsilon, the passages tokenised with the engine's own analyzer (heading terms + text terms,
  as in the engine's main field), so only scoring differs. Above ``PLAIN_LARGE`` passages only the
  first ``--plain-queries-large`` questions go through it (each call walks every passage). Every
  plain result is compared with the engine's main-field scores over all passages: the largest
  absolute difference is reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import re
import shlex
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import machine  # benchmarks/machine.py, beside this script
import numpy as np
import rank_bm25

from bot.engine import Document, Engine, load_corpus
from bot.engine.analyzer import analyze, stem
from bot.engine.documents import Block
from bot.engine.passages import MAX_WORDS, make_passages

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
EVAL_FILES = (ROOT / "evals" / "dev.jsonl", ROOT / "evals" / "heldout.jsonl")
DEFAULT_SIZES = "1000,10000,100000"
DEFAULT_SEED = 20240607
BUSY_OTHERS = 0.2  # other processes using more than this share of a core make timings suspect
PLAIN_LARGE = 50_000  # above this many passages, plain get_scores runs on fewer questions
RESULT_PREFIX = "RESULT "
MB = 1024 * 1024

T = TypeVar("T")
R = TypeVar("R")

# Targets the figures are reported against.
TARGET_ARTICLE_P99_MS = 1.0
TARGET_LARGE_PASSAGES = 100_000
TARGET_LARGE_P99_MS = 20.0
TARGET_LARGE_SPEEDUP = 10.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Generated corpora
# --------------------------------------------------------------------------------------------------

_ARTICLE_WORD = re.compile(r"[A-Za-z][A-Za-z]*(?:['’][A-Za-z]+)*|\d+")
_ONSETS = "b br c ch cl d dr f fl g gr h j k l m n p pl pr qu r s sh sk st t th tr v w z".split()
_VOWELS = "a e i o u ai ea ee io ou".split()
_CODAS = ["", "", "", "", "n", "r", "s", "l", "t", "nd", "st", "rk", "m", "x", "ng"]
_QUESTION_TEMPLATES = (
    "What does the article say about {a} and {b}?",
    "Who {a} the {b}?",
    "When did {a} {b}?",
    "How many {a} {b} {c}?",
    "Why is {a} {b} {c}?",
    "{a} {b} {c}",
    "tell me about {a} {b}",
    "what happened with {a} {b} after {c}",
)
HEAD_WORDS = 60  # --dense-sizes: the article's most frequent words, names included, stay on top
CONTENT_STRIDE = 10  # default: one article content word every this many ranks after the head
SYNTHETIC_WORDS = 30_000
ZIPF_S = 1.07
ZIPF_Q = 2.7  # Zipf-Mandelbrot shift: flattens the very top a little, as in real text


def article_words() -> list[str]:
    """The article's words, most frequent first, each in its most common spelling."""
    text = (CORPUS / "article.txt").read_text(encoding="utf-8")
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    for match in _ARTICLE_WORD.finditer(text):
        word = match.group().replace("’", "'")
        key = word.lower()
        counts[key] += 1
        spellings.setdefault(key, Counter())[word] += 1
    return [spellings[key].most_common(1)[0][0] for key, _ in counts.most_common()]


def synthetic_words(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    onsets = _ONSETS
    words: list[str] = []
    seen = set(taken)
    while len(words) < count:
        syllables = rng.choice((1, 1, 1, 2, 2, 2, 2, 3, 3, 4))
        word = "".join(
            rng.choice(onsets) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass(slots=True)
class Vocabulary:
    words: list[str]  # by rank, most frequent first
    probabilities: np.ndarray[Any, np.dtype[np.float64]]
    first_content: int  # words before this rank are function words


def build_vocabulary(rng: random.Random, dense_topic: bool = False) -> Vocabulary:
    """The article's words and synthetic ones, ranked for a Zipf(-Mandelbrot) draw.

    Default: the article's function words (those the analyzer drops) head the ranking, as in any
    English text; its content words follow in their article order, one every ``CONTENT_STRIDE``
    ranks among synthetic words, so "Musk" is a common word but no longer in most passages.
    ``dense_topic`` (a stress case): the article's ``HEAD_WORDS`` most frequent words, names
    included, head the ranking, so the names the eval questions ask about are in most passages.
    """
    from_article = article_words()
    synthetic = synthetic_words(rng, SYNTHETIC_WORDS, {w.lower() for w in from_article})
    if dense_topic:
        head = from_article[:HEAD_WORDS]
        rest = from_article[HEAD_WORDS:] + synthetic
        rng.shuffle(rest)
    else:
        head = [w for w in from_article if not analyze(w)]
        content = [w for w in from_article if analyze(w)]
        rest = []
        for i, word in enumerate(content):
            rest.append(word)
            rest.extend(synthetic[i * (CONTENT_STRIDE - 1) : (i + 1) * (CONTENT_STRIDE - 1)])
        rest.extend(synthetic[len(content) * (CONTENT_STRIDE - 1) :])
    words = head + rest
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    weights = 1.0 / (ranks + ZIPF_Q) ** ZIPF_S
    return Vocabulary(words, weights / weights.sum(), len(head))


class WordStream:
    """Zipf-distributed words, drawn from numpy in chunks (seeded)."""

    def __init__(self, vocabulary: Vocabulary, seed: int, chunk: int = 1 << 20) -> None:
        self.words = vocabulary.words
        self.p = vocabulary.probabilities
        self.np_rng = np.random.default_rng(seed)
        self.chunk = chunk
        self.buffer: list[int] = []
        self.at = 0

    def take(self, n: int) -> list[str]:
        if self.at + n > len(self.buffer):
            fresh = self.np_rng.choice(len(self.words), size=max(self.chunk, n), p=self.p)
            self.buffer = self.buffer[self.at :] + fresh.tolist()
            self.at = 0
        picked = self.buffer[self.at : self.at + n]
        self.at += n
        return [self.words[i] for i in picked]


def make_sentence(rng: random.Random, stream: WordStream) -> str:
    words = stream.take(rng.randint(8, 25))
    if rng.random() < 0.12:  # some sentences carry a year or a quantity
        number = rng.choice(
            (str(rng.randint(1990, 2025)), str(rng.randint(2, 500)), f"${rng.randint(1, 90)}")
        )
        words[rng.randrange(1, len(words))] = number
    for i in range(1, len(words) - 1):
        if rng.random() < 0.06:
            words[i] += ","
    first = words[0]
    words[0] = first[:1].upper() + first[1:]
    return " ".join(words) + ("?" if rng.random() < 0.03 else ".")


def make_heading(rng: random.Random, vocabulary: Vocabulary) -> str:
    pool = vocabulary.words[vocabulary.first_content : vocabulary.first_content + 5000]
    return " ".join(w[:1].upper() + w[1:] for w in rng.sample(pool, rng.randint(2, 5)))


def block_passages(block: Block) -> int:
    """How many passages the engine will cut this paragraph into."""
    if len(block.text.split()) <= MAX_WORDS:
        return 1
    return len(make_passages(Document("probe", "probe", blocks=[block])))


def generate_documents(target: int, seed: int, dense_topic: bool = False) -> list[Document]:
    """Documents of paragraphs under short headings, about ``target`` passages in all."""
    rng = random.Random(seed)
    vocabulary = build_vocabulary(rng, dense_topic)
    stream = WordStream(vocabulary, seed)
    documents: list[Document] = []
    passages = 0
    while passages < target:
        doc = Document(id=f"gen-{len(documents) + 1:05d}", title=f"Generated document {len(documents) + 1}")
        section = ""
        until_heading = rng.randint(1, 3)
        for _ in range(rng.randint(30, 80)):
            if until_heading == 0:
                section = make_heading(rng, vocabulary)
                doc.sections.append(section)
                until_heading = rng.randint(3, 7)
            until_heading -= 1
            text = " ".join(make_sentence(rng, stream) for _ in range(rng.randint(2, 6)))
            block = Block(section, text)
            doc.blocks.append(block)
            passages += block_passages(block)
            if passages >= target:
                break
        documents.append(doc)
    return documents


# --------------------------------------------------------------------------------------------------
# Questions
# --------------------------------------------------------------------------------------------------


def eval_questions() -> list[str]:
    questions: list[str] = []
    for path in EVAL_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(str(json.loads(line)["question"]))
    return questions


def vocabulary_question(rng: random.Random, documents: Sequence[Document]) -> str:
    """A question made of words from one random passage, so it matches at least that passage."""
    while True:
        doc = rng.choice(documents)
        block = rng.choice(doc.blocks)
        words = {w.strip(",.?$") for w in (block.section + " " + block.text).split()}
        content = sorted(w for w in words if len(w) >= 4 and w.isalpha())
        if len(content) >= 3:
            a, b, c = rng.sample(content, 3)
            return rng.choice(_QUESTION_TEMPLATES).format(a=a, b=b, c=c)


def question_mix(count: int, seed: int, documents: Sequence[Document] | None) -> list[str]:
    """``count`` questions, seeded: eval questions, plus (generated corpora) vocabulary questions."""
    rng = random.Random(seed + 1)
    evals = eval_questions()
    if documents is None:
        mix: list[str] = []
        while len(mix) < count:
            cycle = evals[:]
            rng.shuffle(cycle)
            mix.extend(cycle)
        return mix[:count]
    return [
        rng.choice(evals) if rng.random() < 0.5 else vocabulary_question(rng, documents) for _ in range(count)
    ]


# --------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------


def proc_status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss_kb() -> int:
    hwm = proc_status_kb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KB on Linux


class CpuWatch:
    """How much CPU other processes used since creation, from /proc/stat minus our own CPU time."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        """(wall s, whole-machine busy CPU s, this process's CPU s), or None off Linux."""
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / ticks  # all but idle and iowait
        own = os.times()
        return time.perf_counter(), busy, own.user + own.system

    def others(self) -> float:
        """Average cores' worth of CPU used by other processes since creation."""
        end = self._sample()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return math.nan
        wall, busy, own = (e - s for e, s in zip(end, self.start, strict=True))
        return max(0.0, (busy - own) / wall)


def timed_ms(fn: Callable[[T], R], items: Sequence[T], passes: int = 1) -> tuple[list[float], list[R]]:
    """Wall time of every call in milliseconds (``passes`` times over ``items``); first pass's results."""
    times: list[float] = []
    results: list[R] = []
    clock = time.perf_counter_ns
    for n in range(passes):
        for item in items:
            started = clock()
            result = fn(item)
            times.append((clock() - started) / 1e6)
            if n == 0:
                results.append(result)
    return times, results


@dataclass(slots=True)
class Latency:
    n: int = 0
    p50: float = math.nan
    p99: float = math.nan
    mean: float = math.nan
    max: float = math.nan

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> Latency:
        if not times_ms:
            return cls()
        a = np.asarray(times_ms)
        return cls(
            len(a),
            float(np.percentile(a, 50)),
            float(np.percentile(a, 99)),
            float(a.mean()),
            float(a.max()),
        )


@dataclass(slots=True)
class Result:
    label: str
    target: int | None  # requested passages (None: the article)
    dense: bool = False  # generated with --dense-sizes (stress case)
    documents: int = 0
    passages: int = 0
    sentences: int = 0
    vocabulary: int = 0
    generate_s: float = 0.0
    build_s: float = 0.0
    rss_before_mb: float = 0.0
    rss_build_peak_mb: float = 0.0  # peak RSS growth during the build
    rss_retained_mb: float = 0.0  # RSS growth still there after the build
    rss_method: str = ""
    tracemalloc_peak_mb: float = math.nan
    tracemalloc_retained_mb: float = math.nan
    answered_share: float = 0.0
    ask: Latency = field(default_factory=Latency)
    score: Latency = field(default_factory=Latency)  # main-field BM25Index.score alone
    plain: Latency = field(default_factory=Latency)  # BM25Okapi.get_scores
    score_on_plain_set: Latency = field(default_factory=Latency)  # the same questions as ``plain``
    plain_build_s: float = 0.0
    plain_limited: bool = False
    max_abs_diff: float = math.nan
    diff_queries: int = 0
    others_cpu: float = math.nan  # CPU other processes used while this corpus was timed, in cores

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        fields = dict(data)
        for name in ("ask", "score", "plain", "score_on_plain_set"):
            fields[name] = Latency(**fields[name])
        return cls(**fields)

    @property
    def speedup(self) -> float:
        """Plain get_scores p99 / engine ask p99."""
        return self.plain.p99 / self.ask.p99 if self.ask.p99 > 0 else math.nan

    @property
    def like_for_like(self) -> float:
        """Plain get_scores p99 / main-field score p99, on the same questions."""
        s = self.score_on_plain_set.p99
        return self.plain.p99 / s if s > 0 else math.nan


def run_worker(
    spec: str,
    queries: int,
    plain_large_queries: int,
    seed: int,
    trace: bool = True,
    passes: int = 1,
) -> Result:
    """Measure one corpus in this (fresh) process: "article", "N" or "N:dense" passages."""
    size, _, variant = spec.partition(":")
    target = None if size == "article" else int(size)
    dense_topic = variant == "dense"
    trace = trace and not dense_topic
    label = "article" if target is None else f"generated {target:,}" + (" dense" if dense_topic else "")
    result = Result(label=label, target=target, dense=dense_topic)

    started = time.perf_counter()
    if target is None:
        documents, _ = load_corpus(CORPUS)
        generated = None
    else:
        documents = generate_documents(target, seed, dense_topic)
        generated = documents
    result.generate_s = time.perf_counter() - started
    questions = question_mix(queries, seed, generated)
    log(f"{result.label}: {len(documents)} documents ready in {result.generate_s:.1f} s")

    # Build 1: wall time and RSS (no tracemalloc: it slows allocation down).
    gc.collect()
    watch = CpuWatch()
    result.rss_method = "VmHWM reset" if reset_peak_rss() else "VmHWM (not reset)"
    rss_before = proc_status_kb("VmRSS") or peak_rss_kb()
    hwm_before = peak_rss_kb()
    started = time.perf_counter()
    engine = Engine(documents)
    result.build_s = time.perf_counter() - started
    hwm_after = peak_rss_kb()
    rss_after = proc_status_kb("VmRSS") or hwm_after
    base = rss_before if result.rss_method == "VmHWM reset" else hwm_before
    result.rss_before_mb = rss_before / 1024
    result.rss_build_peak_mb = max(0, hwm_after - base) / 1024
    result.rss_retained_mb = (rss_after - rss_before) / 1024
    stats = engine.stats()
    result.documents, result.passages, result.vocabulary = stats.documents, stats.passages, stats.vocabulary
    result.sentences = engine.ranker.sentences.size
    log(f"{result.label}: {result.passages:,} passages built in {result.build_s:.1f} s")

    # Ask latency over the whole mix, after one warm-up pass over part of it.
    for q in questions[: min(50, len(questions))]:
        engine.ask(q, k=3)
    ask_times, answers = timed_ms(lambda q: engine.ask(q, k=3), questions, passes)
    result.ask = Latency.of(ask_times)
    result.answered_share = sum(a.answered for a in answers) / len(answers)

    # Scoring alone: the main field, and plain rank-bm25 over the same terms.
    term_lists = [t for t in (analyze(q) for q in questions) if t]
    score_times, _ = timed_ms(engine.index.score, term_lists, passes)
    result.score = Latency.of(score_times)

    started = time.perf_counter()
    tokenised = [(analyze(p.section) + analyze(p.text)) or [""] for p in engine.passages]
    params = engine.params  # rank-bm25's defaults differ (k1=1.5): use the engine's, as it does
    plain = rank_bm25.BM25Okapi(tokenised, k1=params.k1, b=params.b, epsilon=params.epsilon)
    result.plain_build_s = time.perf_counter() - started
    plain_terms, plain_passes = term_lists, passes
    if result.passages > PLAIN_LARGE and len(term_lists) > plain_large_queries:
        plain_terms = term_lists[:plain_large_queries]
        result.plain_limited, plain_passes = True, 1
    log(f"{result.label}: plain BM25Okapi built in {result.plain_build_s:.1f} s; {len(plain_terms)} queries")
    plain.get_scores(plain_terms[0])  # warm-up
    plain_times, plain_scores = timed_ms(plain.get_scores, plain_terms, plain_passes)
    result.plain = Latency.of(plain_times)
    same_times, engine_scores = timed_ms(engine.index.score, plain_terms, plain_passes)
    result.score_on_plain_set = Latency.of(same_times)
    worst = 0.0
    for (ids, scores), expected in zip(engine_scores, plain_scores, strict=True):
        full = np.zeros(len(expected))
        full[ids] = scores
        worst = max(worst, float(np.max(np.abs(full - expected))))
    result.max_abs_diff, result.diff_queries = worst, len(plain_terms)
    result.others_cpu = watch.others()
    del plain, tokenised, plain_scores, engine_scores, engine, answers

    # Build 2: tracemalloc peak, from the same cold start (stemmer cache emptied).
    if trace:
        gc.collect()
        stem.cache_clear()
        tracemalloc.start()
        engine = Engine(documents)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result.tracemalloc_peak_mb, result.tracemalloc_retained_mb = peak / MB, current / MB
        log(f"{result.label}: tracemalloc peak {peak / MB:.0f} MB")
    return result


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def engine_revision() -> str:
    return machine.last_commit("bot/engine")


def machine_facts(revision: str) -> dict[str, str]:
    versions = {"numpy / rank-bm25": f"{np.__version__} / {metadata.version('rank-bm25')}"}
    return machine.facts(versions, ("engine (last commit to bot/engine/)", revision))


def fmt(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def tables(results: Sequence[Result]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    build_head = [
        "corpus",
        "docs",
        "passages",
        "sentences",
        "vocab",
        "build s",
        "RSS peak +MB",
        "RSS kept +MB",
        "tracemalloc peak MB",
        "tracemalloc kept MB",
    ]
    build_rows = [
        [
            r.label,
            f"{r.documents:,}",
            f"{r.passages:,}",
            f"{r.sentences:,}",
            f"{r.vocabulary:,}",
            fmt(r.build_s),
            fmt(r.rss_build_peak_mb, 0),
            fmt(r.rss_retained_mb, 0),
            fmt(r.tracemalloc_peak_mb, 0),
            fmt(r.tracemalloc_retained_mb, 0),
        ]
        for r in results
    ]
    query_head = [
        "corpus",
        "ask n",
        "ask p50 ms",
        "ask p99 ms",
        "answered",
        "score p50 ms",
        "score p99 ms",
        "plain n",
        "plain p50 ms",
        "plain p99 ms",
        "plain/ask p99",
        "plain/score p99",
        "max abs diff",
        "others' CPU",
    ]
    query_rows = [
        [
            r.label,
            str(r.ask.n),
            fmt(r.ask.p50, 3),
            fmt(r.ask.p99, 3),
            f"{r.answered_share:.0%}",
            fmt(r.score.p50, 3),
            fmt(r.score.p99, 3),
            f"{r.plain.n}{'*' if r.plain_limited else ''}",
            fmt(r.plain.p50, 2),
            fmt(r.plain.p99, 2),
            f"{fmt(r.speedup, 1)}×",
            f"{fmt(r.like_for_like, 1)}×",
            f"{r.max_abs_diff:.1e}",
            fmt(r.others_cpu, 2),
        ]
        for r in results
    ]
    return build_head, build_rows, query_head, query_rows


def text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(head, *rows, strict=True)]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([" --- "] + [" ---: "] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(slots=True)
class Target:
    name: str
    measured: str
    met: bool | None  # None: not measured (or only reported)


def targets(results: Sequence[Result]) -> list[Target]:
    article = next((r for r in results if r.target is None), None)
    large = next((r for r in results if r.target == TARGET_LARGE_PASSAGES and not r.dense), None)
    out = [
        Target(
            f"article: ask p99 ≤ {TARGET_ARTICLE_P99_MS:g} ms in-process",
            f"{article.ask.p99:.3f} ms" if article else "not run",
            article.ask.p99 <= TARGET_ARTICLE_P99_MS if article else None,
        ),
        Target(
            f"100k passages: ask p99 ≤ {TARGET_LARGE_P99_MS:g} ms",
            f"{large.ask.p99:.2f} ms" if large else "not run",
            large.ask.p99 <= TARGET_LARGE_P99_MS if large else None,
        ),
        Target(
            f"100k passages: ≥ {TARGET_LARGE_SPEEDUP:g}× faster than plain get_scores (p99)",
            f"{large.speedup:.1f}× ({large.plain.p99:.1f} / {large.ask.p99:.2f} ms)" if large else "not run",
            large.speedup >= TARGET_LARGE_SPEEDUP if large else None,
        ),
        Target(
            "100k passages: memory reported",
            (
                f"build RSS peak +{large.rss_build_peak_mb:.0f} MB (kept +{large.rss_retained_mb:.0f} MB); "
                f"tracemalloc peak {large.tracemalloc_peak_mb:.0f} MB "
                f"(kept {large.tracemalloc_retained_mb:.0f} MB)"
            )
            if large
            else "not run",
            None,
        ),
    ]
    return out


def verdict(t: Target) -> str:
    if t.met is True:
        return "met"
    if t.met is False:
        return "MISSED"
    return "not measured" if t.measured == "not run" else "reported"


def contention(results: Sequence[Result]) -> str:
    """A warning naming the corpora timed while other processes competed for the CPU, or ""."""
    busy = [f"{r.label} ({r.others_cpu:.2f})" for r in results if r.others_cpu > BUSY_OTHERS]
    if not busy:
        return ""
    return (
        "Warning: other processes used more than "
        f"{BUSY_OTHERS:g} of a core (average, in cores) while these corpora were timed: "
        f"{', '.join(busy)}. Their times may be inflated; measure again on a quiet machine."
    )


def summary(results: Sequence[Result], checks: Sequence[Target]) -> str:
    """One paragraph of what the figures show, written from the figures."""
    parts: list[str] = []
    article = next((r for r in results if r.target is None), None)
    generated = [r for r in results if r.target is not None and not r.dense]
    dense = [r for r in results if r.dense]
    if article:
        parts.append(
            f"On the article ({article.passages} passages) a full `ask` takes {article.ask.p50:.2f} ms "
            f"at the median and {article.ask.p99:.2f} ms at p99."
        )
    if len(generated) > 1:
        first, last = generated[0], generated[-1]
        parts.append(
            f"From {first.passages:,} to {last.passages:,} generated passages ask p99 goes from "
            f"{first.ask.p99:.2f} to {last.ask.p99:.2f} ms and the build from {first.build_s:.1f} to "
            f"{last.build_s:.0f} s, while plain `get_scores` p99 goes from {first.plain.p99:.2f} to "
            f"{last.plain.p99:.0f} ms: it walks every passage for every query term, where the engine "
            f"reads only the terms' postings (main field alone: {last.score.p99:.2f} ms p99 at "
            f"{last.passages:,}, {last.like_for_like:.0f}× faster than `get_scores` on the same "
            "questions)."
        )
    for r in generated if len(generated) == 1 else []:
        parts.append(
            f"On {r.passages:,} generated passages ask p99 is {r.ask.p99:.2f} ms and plain "
            f"`get_scores` p99 {r.plain.p99:.2f} ms (plain/ask {r.speedup:.1f}×)."
        )
    for r in dense:
        parts.append(
            f"In the stress case ({r.label}) ask p99 is {r.ask.p99:.1f} ms, and plain `get_scores` "
            f"p99 / ask p99 only {r.speedup:.1f}× ({r.plain.p99:.0f} ms); the main field alone takes "
            f"{r.score.p99:.1f} ms at p99: long postings cost the engine in proportion."
        )
    worst = max((r.max_abs_diff for r in results), default=math.nan)
    checked = sum(r.diff_queries for r in results)
    if worst <= 1e-9:
        parts.append(
            f"The engine's main-field scores equal rank-bm25's at every passage (largest absolute "
            f"difference {worst:.1e} over {checked} questions)."
        )
    else:
        parts.append(
            f"The engine's main-field scores DIFFER from rank-bm25's: largest absolute difference "
            f"{worst:.2e} over {checked} questions."
        )
    missed = [t.name for t in checks if t.met is False]
    unmeasured = [t.name for t in checks if t.measured == "not run"]
    if missed:
        parts.append("Missed targets: " + "; ".join(missed) + ".")
    else:
        parts.append("Every measured target is met." if unmeasured else "Every target is met.")
    if unmeasured:
        parts.append("Not measured in this run: " + "; ".join(unmeasured) + ".")
    return " ".join(parts)


def render_markdown(
    results: Sequence[Result],
    command: str,
    queries: int,
    plain_cap: int,
    seed: int,
    revision: str,
    passes: int,
) -> str:
    facts = machine_facts(revision)
    build_head, build_rows, query_head, query_rows = tables(results)
    checks = targets(results)
    lines = [
        "# Engine benchmarks",
        "",
        "Measured by `benchmarks/bench_engine.py` (the script's docstring says what each figure is).",
        "",
        "## Machine",
        "",
        *machine.facts_and_command(facts, command),
        "## Corpora",
        "",
        "- **article**: `corpus/` as the bot loads it.",
        f"- **generated N**: seeded (`--seed {seed}`) documents of 30–80 paragraphs; a paragraph is "
        "2–6 sentences of 8–25 words, a short heading every 3–7 paragraphs; words drawn from a "
        f"Zipf–Mandelbrot law (s = {ZIPF_S}, q = {ZIPF_Q}) over the article's words plus "
        f"{SYNTHETIC_WORDS:,} synthetic ones: the article's function words rank first, its content "
        f"words follow one every {CONTENT_STRIDE} ranks among synthetic words (so *Musk*, the "
        "commonest term, is in about 9% of passages). About one sentence in eight carries a year or "
        "a number. Paragraphs over 120 words become several passages, as in the engine; generation "
        "stops at N passages.",
        "- **generated N dense** (stress case, `--dense-sizes`): the same, but the article's "
        f"{HEAD_WORDS} most frequent words, names included, rank first, so *Musk* and *Trump* are in "
        "about 60% of passages and most eval questions hit postings that long.",
        "",
        "## Build and memory",
        "",
        markdown_table(build_head, build_rows),
        "",
        "RSS figures are per corpus in a fresh subprocess: *peak* is the high-water mark during "
        "`Engine(documents)` minus RSS just before it; *kept* is RSS after minus before. tracemalloc "
        "counts Python allocations only, in a second, identical build.",
        "",
        "## Query latency (in-process, one thread)",
        "",
        markdown_table(query_head, query_rows),
        "",
        f"*ask*: `engine.ask(question, k=3)`, {passes} timed passes over a seeded mix of {queries} "
        "questions (eval "
        "questions; on generated corpora half are questions made of a random passage's words), "
        "after a warm-up pass; *answered*: the share it answered rather than declined. *score*: the "
        "engine's main field alone (`engine.index.score(terms)`). *plain*: "
        "`rank_bm25.BM25Okapi(...).get_scores(terms)` (the engine's k1, b and epsilon) on the same "
        "passages, tokenised with `bot.engine.analyzer.analyze`, over the questions with at least one "
        f"term; \\* above {PLAIN_LARGE:,} passages only the first {plain_cap} of them, one pass (each call "
        "walks every passage). *plain/ask p99*: plain p99 over the engine's ask p99. *plain/score "
        "p99*: like for like, the main field alone on the same questions as plain. *max abs diff*: "
        "largest |engine main-field score − get_scores| over every passage, for every plain question. "
        "*others' CPU*: cores' worth of CPU that other processes used while the corpus was built and "
        "timed (from `/proc/stat`); near 0 means the figures were taken on a quiet machine.",
        "",
        "## Targets",
        "",
        "| target | measured | result |",
        "| --- | --- | --- |",
        *[f"| {t.name} | {t.measured} | {verdict(t)} |" for t in checks],
        "",
        "## What the figures show",
        "",
        summary(results, checks),
        "",
        *([contention(results), ""] if contention(results) else []),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def run_all(args: argparse.Namespace) -> Iterator[Result]:
    specs = (["article"] if not args.no_article else []) + [str(s) for s in args.sizes]
    specs += [f"{s}:dense" for s in args.dense_sizes]
    for spec in specs:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            spec,
            "--queries",
            str(args.queries),
            "--passes",
            str(args.passes),
            "--plain-queries-large",
            str(args.plain_queries_large),
            "--seed",
            str(args.seed),
            *(["--no-tracemalloc"] if args.no_tracemalloc else []),
        ]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
        line = next(ln for ln in reversed(done.stdout.splitlines()) if ln.startswith(RESULT_PREFIX))
        yield Result.from_dict(json.loads(line[len(RESULT_PREFIX) :]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES), help="passages")
    parser.add_argument("--queries", type=int, default=400, help="questions in the mix (default 400)")
    parser.add_argument(
        "--passes",
        type=int,
        default=5,
        help="timed passes over the mix (default 5; plain get_scores: one pass above "
        f"{PLAIN_LARGE:,} passages)",
    )
    parser.add_argument(
        "--plain-queries-large",
        type=int,
        default=30,
        help=f"questions for plain get_scores above {PLAIN_LARGE:,} passages (default 30)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-article", action="store_true", help="skip the article corpus")
    parser.add_argument(
        "--dense-sizes",
        type=parse_sizes,
        default=[],
        help="also these sizes as a stress case: the article's names head the generated vocabulary, "
        "so the eval questions' names are in most passages (no tracemalloc build)",
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the (slow) tracemalloc build")
    parser.add_argument("--out", type=Path, help="write the report as Markdown here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = run_worker(
            args.worker,
            args.queries,
            args.plain_queries_large,
            args.seed,
            trace=not args.no_tracemalloc,
            passes=args.passes,
        )
        print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)
        return 0

    raw = list(argv) if argv is not None else sys.argv[1:]
    command = "python benchmarks/bench_engine.py" + "".join(" " + shlex.quote(a) for a in raw)
    revision = engine_revision()
    results = list(run_all(args))
    if engine_revision() != revision:
        revision += " (the engine changed during the run: measure again)"
    print(f"engine at {revision}")
    build_head, build_rows, query_head, query_rows = tables(results)
    checks = targets(results)
    print(text_table(build_head, build_rows))
    print()
    print(text_table(query_head, query_rows))
    if any(r.plain_limited for r in results):
        print(
            f"* plain get_scores limited to {args.plain_queries_large} questions "
            f"above {PLAIN_LARGE:,} passages"
        )
    print()
    for t in checks:
        print(f"{verdict(t):>12}  {t.name}: {t.measured}")
    print()
    print(summary(results, checks))
    if contention(results):
        print(contention(results))
    if args.out:
        out = args.out if args.out.is_absolute() else Path.cwd() / args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            render_markdown(
                results, command, args.queries, args.plain_queries_large, args.seed, revision, args.passes
            ),
            encoding="utf-8",
        )
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
