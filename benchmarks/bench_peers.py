"""The engine beside its peers (rank-bm25, bm25s, tantivy) on the same tokens and questions.

Run by hand from the repository root, after ``pip install -e '.[bench]'`` (the peers are a
benchmark-only extra, never imported by the bot)::

    python benchmarks/bench_peers.py --passages 1000,10000,100000 [--out docs/BENCHMARKS.md]
    python benchmarks/bench_peers.py --passages 1000000 --results R.json --out docs/BENCHMARKS.md

Corpus: ``bench_engine.generate_documents(N, seed)``, cut into passages by the engine's own
``make_passages``. Tokens: every peer gets each passage's ``analyze(heading) + analyze(text)``, the
terms of the engine's main BM25 field, so only indexing and scoring differ. That analysis is timed
once per size (``analysis s``) and each peer's build is reported as its own indexing time beside it;
the engine's build (``Engine(documents, semantic=False)``, its on-disk index cache off, so each
build is a build) includes its own analysis.

Per size, in separate processes:

1. **prepare**: generate the corpus, analyse it, cache documents, terms and the two question mixes
   (under ``--cache``).
2. **memory**, one process per system: RSS before the build, the build's peak (``VmHWM``, reset
   through ``/proc/self/clear_refs``) and what stays after it (after ``gc`` and ``malloc_trim``, the
   inputs handed to the peer dropped). The parent watches the process's RSS and stops it past
   ``--rss-limit-gb``: the figure is then "stopped at X GB".
3. **latency**, one process holding every system: each question goes through every system in turn
   (so load on the machine hits them alike), top-10, ``--passes`` passes after a warm-up. rank-bm25
   scores every passage for every term, so above ``RANK_BM25_FULL`` passages it gets only the first
   ``--rank-bm25-questions`` questions of each mix, one pass.

Systems timed per question (terms are analysed beforehand, except for ``engine ask``):

- ``engine ask``: ``engine.ask(question, k=10)``, the whole lexical answer.
- ``engine BM25``: ``engine.index.score(terms)`` then ``top_k(ids, scores, 10)``: the main field.
- ``rank-bm25``: ``BM25Okapi(terms).get_scores(terms)`` (the engine's k1, b, epsilon), then
  ``argpartition`` for the top 10.
- ``bm25s``: ``BM25(k1, b, method="robertson", backend="numba").retrieve([terms], k=10)``.
  Robertson is bm25s's Okapi: the same IDF, floored at 0 where rank-bm25 floors at epsilon × the
  mean IDF (only terms in half the passages or more), and a term-frequency part without the constant
  (k1 + 1) factor, so the ranking is rank-bm25's but for those floored terms.
- ``tantivy``: a text field with the whitespace tokenizer over the terms joined by spaces, one
  ``TermQuery`` per question term in a ``BooleanQuery`` of SHOULD clauses, ``search(q, 10,
  count=False)``. Its BM25 is Lucene's: IDF ``ln(1 + (N - n + 0.5) / (n + 0.5))`` (never negative)
  and lengths quantised to one byte, so scores and near-ties differ a little; built with one writer
  thread and merged into one segment.

Question mixes (only questions with at least one term in the corpus):

- **light**: ``bench_engine.question_mix``: half the eval questions, half three words of a random
  passage in a short template.
- **dense**: 10 to 20 of the corpus's 150 most frequent content words (in a sample of passages),
  in one long question, so every term has long postings.

Each peer's top 10 is compared with the engine's main field (``top-10 agree``: the share of the
engine's top 10 it also returns), rank-bm25's scores with the engine's at every passage.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import itertools
import json
import math
import os
import pickle
import random
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import machine  # noqa: E402
from bench_engine import CpuWatch, generate_documents, question_mix  # noqa: E402

from bot.engine.analyzer import analyze  # noqa: E402

SYSTEMS = ("engine", "rank-bm25", "bm25s", "tantivy")
DEFAULT_SIZES = "1000,10000,100000"
DEFAULT_SEED = 20240607
K = 10
K1, B, EPSILON = 1.2, 0.75, 0.25  # the engine's BM25Params defaults
RANK_BM25_FULL = 20_000  # above this, rank-bm25 gets a few questions, one pass
AGREE_QUESTIONS = 50  # top 10s compared with the engine's main field
DIFF_QUESTIONS = 5  # above RANK_BM25_FULL: rank-bm25's full scores compared on these
DENSE_POOL = 150
DENSE_SAMPLE_PASSAGES = 20_000
RESULT = "RESULT "
MB = 1024 * 1024
SECTION_TITLE = "## Beside its peers: rank-bm25, bm25s, tantivy"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Memory of this process
# --------------------------------------------------------------------------------------------------


def status_kb(key: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": VmHWM back to the current RSS
        f.write("5")


def settle() -> None:
    """Free what can be freed, so RSS shows what is kept rather than what the allocator holds."""
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --------------------------------------------------------------------------------------------------
# Prepare: corpus, terms and questions, cached per size
# --------------------------------------------------------------------------------------------------


def cache_dir(cache: Path, passages: int, seed: int, questions: int) -> Path:
    return cache / f"{passages}-{seed}-{questions}q"


_WORD = re.compile(r"[A-Za-z][A-Za-z']+")


def dense_questions(count: int, seed: int, texts: Sequence[str]) -> list[str]:
    """Long questions of the corpus's most frequent content words (every term a long posting)."""
    counts: Counter[str] = Counter()
    for text in texts[:DENSE_SAMPLE_PASSAGES]:
        counts.update(w.lower() for w in _WORD.findall(text))
    pool = [w for w, _ in counts.most_common() if analyze(w)][:DENSE_POOL]
    rng = random.Random(seed + 2)
    return [
        "What does the article say about " + " ".join(rng.sample(pool, rng.randint(10, 20))) + "?"
        for _ in range(count)
    ]


def prepare(passages: int, seed: int, questions: int, cache: Path) -> dict[str, Any]:
    from bot.engine.passages import make_passages

    out = cache_dir(cache, passages, seed, questions)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    documents = generate_documents(passages, seed)
    generate_s = time.perf_counter() - started
    cut = [p for d in documents for p in make_passages(d)]
    log(f"{passages:,}: {len(documents)} documents, {len(cut):,} passages in {generate_s:.0f} s")

    started = time.perf_counter()
    terms = [analyze(p.section) + analyze(p.text) for p in cut]
    analysis_s = time.perf_counter() - started
    log(f"{passages:,}: analysed in {analysis_s:.1f} s")

    vocabulary: dict[str, int] = {}
    ids = np.fromiter((vocabulary.setdefault(t, len(vocabulary)) for ts in terms for t in ts), dtype=np.int32)
    offsets = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum([len(ts) for ts in terms], out=offsets[1:])
    np.savez(out / "terms.npz", ids=ids, offsets=offsets)
    (out / "vocabulary.json").write_text(json.dumps(list(vocabulary)), encoding="utf-8")
    with open(out / "documents.pickle", "wb") as f:
        pickle.dump(documents, f, protocol=pickle.HIGHEST_PROTOCOL)

    mixes = {
        "light": question_mix(questions, seed, documents),
        "dense": dense_questions(questions, seed, [p.text for p in cut]),
    }
    kept = {name: [q for q in mix if any(t in vocabulary for t in analyze(q))] for name, mix in mixes.items()}
    (out / "questions.json").write_text(json.dumps(kept), encoding="utf-8")
    info = {
        "passages": len(cut),
        "documents": len(documents),
        "vocabulary": len(vocabulary),
        "tokens": len(ids),
        "generate_s": generate_s,
        "analysis_s": analysis_s,
        "questions": {name: len(qs) for name, qs in kept.items()},
        "question_terms": {
            name: float(np.mean([len(analyze(q)) for q in qs])) if qs else 0.0 for name, qs in kept.items()
        },
    }
    (out / "info.json").write_text(json.dumps(info), encoding="utf-8")
    return info


def load_compact(where: Path) -> tuple[Any, list[int], list[str]]:
    """The cached terms as arrays: every token's term id, passage offsets, the vocabulary."""
    arrays = np.load(where / "terms.npz")
    vocabulary = json.loads((where / "vocabulary.json").read_text(encoding="utf-8"))
    return arrays["ids"], arrays["offsets"].tolist(), vocabulary


def term_lists(compact: tuple[Any, list[int], list[str]]) -> list[list[str]]:
    """Each passage's terms as a list of strings (the vocabulary's strings, shared)."""
    ids, offsets, vocabulary = compact
    words = np.asarray(vocabulary, dtype=object)[ids].tolist()
    return [words[a:b] for a, b in itertools.pairwise(offsets)]


def load_terms(where: Path) -> list[list[str]]:
    return term_lists(load_compact(where))


def load_documents(where: Path) -> Any:
    with open(where / "documents.pickle", "rb") as f:
        return pickle.load(f)


# --------------------------------------------------------------------------------------------------
# The systems: build, and one question's top 10
# --------------------------------------------------------------------------------------------------

Search = Callable[[Any], Any]


def build_engine(documents: Any) -> Any:
    import inspect

    from bot.engine import Engine

    # An engine that saves its index on disk would read it back in the next process: every build
    # here is a build, nothing written.
    no_disk = {"index_cache_above": sys.maxsize}
    if "index_cache_above" not in inspect.signature(Engine).parameters:
        no_disk = {}
    return Engine(documents, semantic=False, **no_disk)


def build_rank_bm25(terms: list[list[str]]) -> Any:
    import rank_bm25

    return rank_bm25.BM25Okapi([ts or [""] for ts in terms], k1=K1, b=B, epsilon=EPSILON)


def build_bm25s(terms: list[list[str]]) -> Any:
    import bm25s

    model = bm25s.BM25(k1=K1, b=B, method="robertson", backend="numba")
    model.index(terms, show_progress=False)
    return model


def build_tantivy(terms: list[list[str]]) -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("body", tokenizer_name="terms", index_option="freq")
    builder.add_unsigned_field("pid", stored=True)  # to check agreement, never read while timed
    schema = builder.build()
    index = tantivy.Index(schema)  # in memory
    index.register_tokenizer("terms", tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())
    writer = index.writer(heap_size=256 * MB, num_threads=1)
    for pid, ts in enumerate(terms):
        doc = tantivy.Document()
        doc.add_text("body", " ".join(ts))
        doc.add_unsigned("pid", pid)
        writer.add_document(doc)
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return index


def import_system(system: str) -> None:
    modules = {
        "engine": ["bot.engine"],
        "rank-bm25": ["rank_bm25"],
        "bm25s": ["bm25s", "numba"],
        "tantivy": ["tantivy"],
    }
    for name in modules[system]:
        __import__(name)


def peer_builder(system: str) -> Callable[[list[list[str]]], Any]:
    return {"rank-bm25": build_rank_bm25, "bm25s": build_bm25s, "tantivy": build_tantivy}[system]


def searchers(built: dict[str, Any]) -> dict[str, Callable[[str, list[str]], Any]]:
    """Per timed system: (question, its terms) -> its top 10 passage ids."""
    out: dict[str, Callable[[str, list[str]], Any]] = {}
    if "engine" in built:
        from bot.engine.index import top_k

        engine = built["engine"]
        out["engine ask"] = lambda q, terms: engine.ask(q, k=K)
        out["engine BM25"] = lambda q, terms: [i for i, _ in top_k(*engine.index.score(terms), K)]
    if "rank-bm25" in built:
        model = built["rank-bm25"]

        def rank(q: str, terms: list[str]) -> Any:
            scores = model.get_scores(terms)
            best = np.argpartition(-scores, K - 1)[:K]
            return best[np.argsort(-scores[best], kind="stable")]

        out["rank-bm25"] = rank
    if "bm25s" in built:
        retriever = built["bm25s"]
        out["bm25s"] = lambda q, terms: retriever.retrieve(
            [terms], k=K, show_progress=False, n_threads=0, return_as="documents"
        )[0]
    if "tantivy" in built:
        import tantivy

        index = built["tantivy"]
        searcher, schema = index.searcher(), index.schema
        should = tantivy.Occur.Should

        def tantivy_search(q: str, terms: list[str]) -> Any:
            query = tantivy.Query.boolean_query(
                [(should, tantivy.Query.term_query(schema, "body", t)) for t in terms]
            )
            return searcher.search(query, K, count=False).hits

        out["tantivy"] = tantivy_search
    return out


def tantivy_ids(index: Any, hits: Any) -> list[int]:
    searcher = index.searcher()
    return [int(searcher.doc(address)["pid"][0]) for _, address in hits]


# --------------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------------


def memory_worker(system: str, where: Path) -> dict[str, Any]:
    """Build one system in this fresh process: build time, peak and kept RSS.

    The baseline is RSS with the inputs that stay: the documents for the engine (it keeps them),
    the compact term arrays for a peer. A peer's term lists (what analysis hands it) are made after
    the baseline, so its peak includes them, and dropped before *kept* is read.
    """
    inputs: Any = load_documents(where) if system == "engine" else load_compact(where)
    import_system(system)  # code is not index: numba alone is some 60 MB of RSS
    settle()
    reset_peak()
    before = status_kb("VmRSS")
    if system == "engine":
        started = time.perf_counter()
        built = build_engine(inputs)
    else:
        lists = term_lists(inputs)
        started = time.perf_counter()
        built = peer_builder(system)(lists)
    build_s = time.perf_counter() - started
    peak = status_kb("VmHWM")
    if system != "engine":
        del lists  # a peer keeps its own index, not the term lists it was handed
    settle()
    after = status_kb("VmRSS")
    del built
    return {
        "system": system,
        "build_s": build_s,
        "rss_before_mb": before / 1024,
        "peak_mb": (peak - before) / 1024,
        "kept_mb": (after - before) / 1024,
    }


def latency_worker(where: Path, systems: Sequence[str], passes: int, rank_questions: int) -> dict[str, Any]:
    info = json.loads((where / "info.json").read_text())
    mixes: dict[str, list[str]] = json.loads((where / "questions.json").read_text())
    terms = load_terms(where)
    built: dict[str, Any] = {}
    for system in systems:
        log(f"latency: building {system}")
        built[system] = (
            build_engine(load_documents(where)) if system == "engine" else peer_builder(system)(terms)
        )
    del terms
    settle()
    timed = searchers(built)
    few = info["passages"] > RANK_BM25_FULL
    watch = CpuWatch()
    load_before = os.getloadavg()
    out: dict[str, Any] = {"mixes": {}, "rank_bm25_questions": None}
    for mix, questions in mixes.items():
        analysed = [analyze(q) for q in questions]
        times: dict[str, list[float]] = {name: [] for name in timed}
        for q, ts in zip(questions[:20], analysed[:20], strict=True):  # warm-up (numba compiles here)
            for fn in timed.values():
                fn(q, ts)
        clock = time.perf_counter_ns
        first: dict[str, list[Any]] = {name: [] for name in timed}  # pass 0's top 10s, to compare
        for n in range(passes):
            for i, (q, ts) in enumerate(zip(questions, analysed, strict=True)):
                for name, fn in timed.items():
                    if name == "rank-bm25" and few and (n > 0 or i >= rank_questions):
                        continue
                    started = clock()
                    found = fn(q, ts)
                    times[name].append((clock() - started) / 1e6)
                    if n == 0 and i < AGREE_QUESTIONS:
                        first[name].append(found)
        # Agreement with the engine's main field (untimed), on the first questions.
        agree: dict[str, float] = {}
        max_diff = math.nan
        if "engine" in built:
            engine = built["engine"]
            reference = [set(ids) for ids in first["engine BM25"]]
            for name in ("rank-bm25", "bm25s", "tantivy"):
                if name not in timed:
                    continue
                got = first[name]
                if name == "tantivy":
                    got = [tantivy_ids(built["tantivy"], hits) for hits in got]
                shares = [
                    len(ref & {int(i) for i in g}) / max(1, len(ref))
                    for ref, g in zip(reference, got, strict=False)
                ]
                agree[name] = float(np.mean(shares)) if shares else math.nan
            if "rank-bm25" in built:
                max_diff = 0.0
                for ts in analysed[: DIFF_QUESTIONS if few else AGREE_QUESTIONS]:
                    ids, scores = engine.index.score(ts)
                    full = np.zeros(info["passages"])
                    full[ids] = scores
                    max_diff = max(max_diff, float(np.max(np.abs(full - built["rank-bm25"].get_scores(ts)))))
        out["mixes"][mix] = {
            "questions": len(questions),
            "latency": {
                name: {
                    "n": len(t),
                    "p50": float(np.percentile(t, 50)),
                    "p99": float(np.percentile(t, 99)),
                    "mean": float(np.mean(t)),
                }
                for name, t in times.items()
                if t
            },
            "top10_agree": agree,
            "rank_bm25_max_abs_diff": max_diff,
        }
        if few and "rank-bm25" in timed:
            out["rank_bm25_questions"] = min(rank_questions, len(questions))
    out["others_cpu"] = watch.others()
    out["loadavg_before"] = load_before
    out["loadavg_after"] = os.getloadavg()
    return out


# --------------------------------------------------------------------------------------------------
# Parent: one process per step, a watchdog on memory, results kept as JSON
# --------------------------------------------------------------------------------------------------


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    """Every process's name and CPU ticks so far (user + system), from /proc."""
    out: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def others_top(seconds: float = 2.0) -> list[str]:
    """The processes other than this one using the most CPU over the next ``seconds``."""
    first = _cpu_ticks()
    time.sleep(seconds)
    second = _cpu_ticks()
    ticks = os.sysconf("SC_CLK_TCK") * seconds
    busy = sorted(
        ((second[pid][1] - first[pid][1], name) for pid, (name, _) in second.items() if pid in first),
        reverse=True,
    )
    return [f"{name} {used / ticks:.0%}" for used, name in busy if used > 0 and name][:4]


def run_child(args: list[str], rss_limit_kb: int | None) -> dict[str, Any]:
    """Run this script as a worker; past ``rss_limit_kb`` of RSS, stop it and say so."""
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    stopped: dict[str, float] = {}
    highest = [0]

    def watch() -> None:
        started = time.perf_counter()
        while child.poll() is None:
            try:
                rss = status_kb("VmRSS", child.pid)
            except (OSError, ValueError):
                break
            highest[0] = max(highest[0], rss)
            if rss_limit_kb is not None and rss > rss_limit_kb:
                stopped.update(rss_gb=rss / MB, after_s=time.perf_counter() - started)
                child.kill()
                break
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output, _ = child.communicate()
    watcher.join()
    if stopped:
        return {"stopped": stopped}
    if child.returncode != 0:
        raise SystemExit(f"worker {args} failed ({child.returncode})")
    line = next(ln for ln in reversed(output.splitlines()) if ln.startswith(RESULT))
    result: dict[str, Any] = json.loads(line[len(RESULT) :])
    result["child_peak_rss_mb"] = highest[0] / 1024
    return result


def run_size(args: argparse.Namespace, passages: int, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Measure one size into ``previous``; with --memory-only, only the given systems' memory."""
    common = [
        *("--seed", str(args.seed), "--cache", str(args.cache), "--passages", str(passages)),
        *("--questions", str(args.questions)),
    ]
    where = cache_dir(args.cache, passages, args.seed, args.questions)
    started = datetime.now(UTC)
    if not (where / "info.json").exists() or args.fresh:
        log(f"{passages:,}: preparing")
        run_child(["--prepare", *common], None)
    info = json.loads((where / "info.json").read_text())
    record: dict[str, Any] = previous or {"memory": {}}
    record["info"] = info
    if not args.memory_only:
        record["load"] = {"before": os.getloadavg(), "top_before": others_top()}
    limit = int(args.rss_limit_gb * MB)
    for system in args.systems:
        if system == "rank-bm25" and passages > args.rank_bm25_max:
            record["memory"][system] = {"skipped": f"above {args.rank_bm25_max:,} passages"}
            continue
        log(f"{passages:,}: memory of {system}")
        load = os.getloadavg()[0]
        record["memory"][system] = entry = run_child(["--only", system, *common], limit)
        entry["loadavg"] = load
        log(f"{passages:,}: {system}: {entry}")
    if args.memory_only:
        return record
    usable = [
        s
        for s in args.systems
        if "stopped" not in record["memory"][s] and "skipped" not in record["memory"][s]
    ]
    log(f"{passages:,}: latency of {', '.join(usable)}")
    record["latency"] = run_child(
        [
            "--latency",
            "--systems",
            ",".join(usable),
            "--passes",
            str(args.passes),
            "--rank-bm25-questions",
            str(args.rank_bm25_questions),
            *common,
        ],
        limit * 2,
    )
    record["load"].update(after=os.getloadavg(), top_after=others_top())
    record["engine_revision"] = machine.last_commit("bot/engine")
    record["started"] = started.strftime("%Y-%m-%d %H:%M UTC")
    record["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return record


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def memory_cell(entry: dict[str, Any], key: str, digits: int) -> str:
    if "stopped" in entry:
        return f"stopped at {entry['stopped']['rss_gb']:.1f} GB" if key == "peak_mb" else "—"
    if "skipped" in entry:
        return "skipped"
    return fmt(entry.get(key), digits)


def render(results: dict[str, Any], command: str, earlier: dict[str, Any] | None = None) -> str:
    sizes = sorted(results, key=int)
    versions = {
        "numpy / rank-bm25 / bm25s / numba / tantivy": " / ".join(
            metadata.version(p) for p in ("numpy", "rank-bm25", "bm25s", "numba", "tantivy")
        )
    }
    facts = machine.facts(
        versions, ("engine (last commit to bot/engine/)", machine.last_commit("bot/engine"))
    )
    lines = [
        SECTION_TITLE,
        "",
        "Measured by `benchmarks/bench_peers.py` (its docstring says what each figure is): the "
        "engine beside rank-bm25, bm25s and tantivy, every peer fed the engine's own main-field "
        "terms (`analyze(heading) + analyze(text)` per passage) and the same questions.",
        "",
        *machine.facts_and_command(facts, command),
        "Where a size has two commands, the second measured again the systems it names (build, "
        "memory and latency) and the others keep the first's figures; `--render-only --results "
        "R.json --out docs/BENCHMARKS.md` wrote this section from the saved results.",
        "",
        "### Corpora",
        "",
        "| passages | documents | tokens | vocabulary | generate s | analysis s | light questions (terms) "
        "| dense questions (terms) | measured (UTC) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for size in sizes:
        info = results[size]["info"]
        lines.append(
            f"| {info['passages']:,} | {info['documents']:,} | {info['tokens']:,} | {info['vocabulary']:,} "
            f"| {fmt(info['generate_s'], 1)} | {fmt(info['analysis_s'], 2)} "
            f"| {info['questions']['light']} ({info['question_terms']['light']:.1f}) "
            f"| {info['questions']['dense']} ({info['question_terms']['dense']:.1f}) "
            f"| {results[size]['started']} – {results[size]['finished'][11:]} |"
        )
    lines += [
        "",
        "*analysis s*: `analyze` over every passage's heading and text, once; the peers' builds below "
        "are their indexing alone, so a peer's build from text is *analysis s* + its *build s*. "
        "The engine's build includes its own analysis (headings, passages and sentences).",
        "",
        "### Build and memory (one process per system)",
        "",
        "| passages | system | build s | build + analysis s | RSS peak +MB | RSS kept +MB | load (1 min) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in sizes:
        info = results[size]["info"]
        for system, entry in results[size]["memory"].items():
            total = "—"
            if "build_s" in entry:
                total = fmt(entry["build_s"] + (0 if system == "engine" else info["analysis_s"]), 2)
            build = memory_cell(entry, "build_s", 2)
            if "stopped" in entry:
                build = f"> {entry['stopped']['after_s']:.0f} (stopped)"
            lines.append(
                f"| {info['passages']:,} | {system} | {build} | {total} "
                f"| {memory_cell(entry, 'peak_mb', 0)} | {memory_cell(entry, 'kept_mb', 0)} "
                f"| {fmt(entry.get('loadavg'), 1)} |"
            )
    lines += [
        "",
        "*RSS peak*: the high-water mark during the build minus RSS just before it, with the "
        "documents loaded for the engine, the term ids as compact arrays for a peer (its peak "
        "includes the term lists it is handed). *kept*: RSS after the build (a peer's term lists "
        "dropped, `gc` and `malloc_trim` run) minus before. The engine keeps its passages' texts "
        "too; the peers return passage numbers only. *load*: the 1-minute load average as the "
        "process started. "
        "*stopped*: the process passed the RSS limit and was killed.",
        "",
        "### Latency of one question, top 10 (one process holding every system)",
        "",
    ]
    names = ["engine ask", "engine BM25", "rank-bm25", "bm25s", "tantivy"]
    for mix in ("dense", "light"):
        lines += [
            f"**{mix} mix** (p50 / p99 ms; ratio: p50 over `engine BM25`'s p50)",
            "",
            "| passages | " + " | ".join(names) + " | top-10 agree rank-bm25 / bm25s / tantivy |",
            "| ---: | " + " | ".join("---:" for _ in names) + " | ---: |",
        ]
        for size in sizes:
            data = results[size]["latency"]
            if "stopped" in data:
                lines.append(
                    f"| {int(size):,} | latency process stopped at {data['stopped']['rss_gb']:.1f} GB |"
                )
                continue
            m = data["mixes"][mix]
            lat = m["latency"]
            base = lat.get("engine BM25", {}).get("p50")
            cells = []
            for name in names:
                if name not in lat:
                    cells.append("—")
                    continue
                ratio = f" ({lat[name]['p50'] / base:.1f}×)" if base else ""
                star = "\\*" if name == "rank-bm25" and data.get("rank_bm25_questions") else ""
                cells.append(f"{fmt(lat[name]['p50'])} / {fmt(lat[name]['p99'])}{ratio}{star}")
            agree = " / ".join(fmt(m["top10_agree"].get(n), 2) for n in ("rank-bm25", "bm25s", "tantivy"))
            if not m["top10_agree"]:
                agree = "no engine to compare with"
            lines.append(f"| {results[size]['info']['passages']:,} | " + " | ".join(cells) + f" | {agree} |")
        lines.append("")
    diffs = [
        results[s]["latency"]["mixes"][mix]["rank_bm25_max_abs_diff"]
        for s in sizes
        for mix in ("dense", "light")
        if "mixes" in results[s]["latency"]
    ]
    diffs = [d for d in diffs if not math.isnan(d)]
    lines += [
        f"Each question went through every system in turn, {results[sizes[0]]['latency'].get('passes', '?')} "
        "timed passes after a warm-up; `engine ask` is the whole lexical answer from the question's "
        "text, the others start from its analysed terms. \\* rank-bm25 walks every passage: above "
        f"{RANK_BM25_FULL:,} passages only the first questions of each mix, one pass. *top-10 agree*: the "
        f"share of the engine main field's top 10 that the peer also returns (first {AGREE_QUESTIONS} "
        "questions; near-ties at the tenth place differ from one system to another). "
        + (
            f"rank-bm25's scores, compared with the engine main field's at every passage: largest "
            f"difference {max(diffs):.1e}" + agreement(max(diffs))
            if diffs
            else ""
        ),
        "",
        "### Load on the machine",
        "",
        "| passages | load average before → after | other processes' CPU while timing (cores) "
        "| busiest other processes (2 s before, share of a core) |",
        "| ---: | --- | ---: | --- |",
    ]
    for size in sizes:
        r = results[size]
        before = " ".join(f"{x:.2f}" for x in r["load"]["before"])
        after = " ".join(f"{x:.2f}" for x in r["load"]["after"])
        others = r["latency"].get("others_cpu", math.nan)
        lines.append(
            f"| {r['info']['passages']:,} | {before} → {after} | {fmt(others, 2)} "
            f"| {'; '.join(r['load']['top_before'])} |"
        )
    lines += [
        "",
        "The machine has two cores shared with other work: with a load average above 2, every "
        "figure here is slower than on a quiet machine, the ratios (taken in one process, question "
        "by question) less so.",
        "",
        "### What the figures show",
        "",
        summary(results),
        "",
        *(engine_before(earlier) if earlier else []),
    ]
    return "\n".join(lines)


def agreement(difference: float) -> str:
    if difference < 1e-9:
        return " (equal)."
    if difference < 1e-5:
        return " (equal but for float32 rounding)."
    return " (they DIFFER)."


def engine_before(before: dict[str, Any]) -> list[str]:
    """The engine's rows from an earlier run (``--before``): what a change to the engine did."""
    revision = next((r.get("engine_revision") for r in before.values() if r.get("engine_revision")), "?")
    lines = [
        f"### The engine before (at {revision})",
        "",
        "The same benchmark, same corpora and questions, on the engine before the current one "
        "(peers' figures as above, within the machine's noise):",
        "",
        "| passages | build s | RSS peak +MB | RSS kept +MB | dense: ask p50 / p99 | BM25 p50 / p99 "
        "| light: ask p50 / p99 | BM25 p50 / p99 | load (1 min) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in sorted(before, key=int):
        entry = before[size]["memory"].get("engine", {})
        if "stopped" in entry:
            lines.append(
                f"| {int(size):,} | > {entry['stopped']['after_s']:.0f} (stopped at "
                f"{entry['stopped']['rss_gb']:.1f} GB) | | | | | | | {fmt(entry.get('loadavg'), 1)} |"
            )
            continue
        cells = [fmt(entry.get("build_s"), 2), fmt(entry.get("peak_mb"), 0), fmt(entry.get("kept_mb"), 0)]
        for mix in ("dense", "light"):
            lat = before[size]["latency"].get("mixes", {}).get(mix, {}).get("latency", {})
            for name in ("engine ask", "engine BM25"):
                cells.append(f"{fmt(lat[name]['p50'])} / {fmt(lat[name]['p99'])}" if name in lat else "—")
        lines.append(f"| {int(size):,} | " + " | ".join(cells) + f" | {fmt(entry.get('loadavg'), 1)} |")
    return [*lines, ""]


def summary(results: dict[str, Any]) -> str:
    """A paragraph written from the figures: the engine against the best peer, at each end."""
    parts: list[str] = []
    measured = [s for s in sorted(results, key=int) if "mixes" in results[s]["latency"]]
    with_engine = [s for s in measured if "engine BM25" in results[s]["latency"]["mixes"]["dense"]["latency"]]
    at_least_100k = [s for s in with_engine if int(s) >= 100_000]
    for size in dict.fromkeys(at_least_100k[:1] + at_least_100k[-1:]):
        memory = results[size]["memory"]
        for mix in ("dense", "light"):
            lat = results[size]["latency"]["mixes"][mix]["latency"]
            ours, ask = lat["engine BM25"], lat["engine ask"]
            peers = {n: lat[n] for n in ("bm25s", "tantivy") if n in lat}
            if not peers:
                continue
            best = min(peers, key=lambda n: peers[n]["p50"])
            parts.append(
                f"At {int(size):,} passages on the {mix} mix the engine's BM25 field takes "
                f"{ours['p50']:.2f} ms at the median ({ours['p50'] / peers[best]['p50']:.1f}× {best}'s "
                f"{peers[best]['p50']:.2f} ms) and {ours['p99']:.2f} ms at p99 ({best}: "
                f"{peers[best]['p99']:.2f}); a whole `ask` takes {ask['p50']:.2f} / {ask['p99']:.2f} ms."
            )
        kept = {n: e["kept_mb"] for n, e in memory.items() if "kept_mb" in e}
        builds = {n: e["build_s"] for n, e in memory.items() if "build_s" in e}
        if "engine" in kept and len(kept) > 1:
            lightest = min((n for n in kept if n != "engine"), key=lambda n: kept[n])
            analysis = results[size]["info"]["analysis_s"]
            parts.append(
                f"The engine keeps {kept['engine']:,.0f} MB after its build ({lightest}: "
                f"{kept[lightest]:,.0f} MB) and builds in {builds['engine']:.1f} s, where the peers "
                f"take {analysis:.1f} s of the same analysis plus "
                + ", ".join(f"{builds[n]:.1f} s ({n})" for n in builds if n != "engine")
                + "."
            )
    for size in sorted(results, key=int):
        entry = results[size]["memory"].get("engine", {})
        if "stopped" in entry:
            parts.append(
                f"At {int(size):,} passages the engine's build passed the RSS limit and was stopped at "
                f"{entry['stopped']['rss_gb']:.1f} GB, {entry['stopped']['after_s']:.0f} s after its "
                "process started (loading the documents included)."
            )
        if "skipped" in results[size]["memory"].get("rank-bm25", {}):
            parts.append(f"rank-bm25 was not run at {int(size):,} passages.")
    return " ".join(parts)


def write_section(doc: Path, section: str) -> None:
    """Replace this benchmark's section of ``doc`` (or append it), keeping the rest as it is."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    start = text.find(SECTION_TITLE)
    if start < 0:
        doc.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")
        return
    rest = text[start + len(SECTION_TITLE) :]
    following = re.search(r"^## ", rest, flags=re.MULTILINE)
    end = start + len(SECTION_TITLE) + following.start() if following else len(text)
    doc.write_text(text[:start] + section + ("\n" + text[end:] if following else ""), encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--passages", default=DEFAULT_SIZES, help="sizes, comma-separated")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="of " + ", ".join(SYSTEMS))
    parser.add_argument("--questions", type=int, default=400, help="questions per mix (default 400)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes (default 3)")
    parser.add_argument("--rank-bm25-questions", type=int, default=30, help="above 20k passages")
    parser.add_argument("--rank-bm25-max", type=int, default=1_000_000, help="skip rank-bm25 above this")
    parser.add_argument("--rss-limit-gb", type=float, default=8.0, help="stop a build past this RSS")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/articlebot-bench-peers"))
    parser.add_argument("--fresh", action="store_true", help="generate the corpora again")
    parser.add_argument("--results", type=Path, help="JSON file of results, merged by size")
    parser.add_argument("--out", type=Path, help="write (or replace) the section in this Markdown file")
    parser.add_argument(
        "--memory-only", action="store_true", help="measure --systems' memory again into --results"
    )
    parser.add_argument("--before", type=Path, help="results of an earlier engine, shown beside (--out)")
    parser.add_argument("--render-only", action="store_true", help="only write --out from --results")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))} (choose from {', '.join(SYSTEMS)})")
    sizes = [int(s.replace("_", "")) for s in args.passages.split(",") if s.strip()]

    if args.prepare or args.only or args.latency:
        where = cache_dir(args.cache, sizes[0], args.seed, args.questions)
        if args.prepare:
            result = prepare(sizes[0], args.seed, args.questions, args.cache)
        elif args.only:
            result = memory_worker(args.only, where)
        else:
            result = latency_worker(where, args.systems, args.passes, args.rank_bm25_questions)
            result["passes"] = args.passes
        print(RESULT + json.dumps(result), flush=True)
        return 0

    results: dict[str, Any] = {}
    if args.results and args.results.exists():
        results = json.loads(args.results.read_text())
    raw = list(argv) if argv is not None else sys.argv[1:]
    command = "python benchmarks/bench_peers.py" + "".join(" " + shlex.quote(a) for a in raw)
    if not args.render_only:
        for size in sizes:
            previous = results.get(str(size))  # systems not measured again keep their figures
            if args.memory_only and previous is None:
                parser.error(f"--memory-only: no results for {size} passages in --results yet")
            results[str(size)] = record = run_size(args, size, previous)
            if not args.memory_only and set(args.systems) == set(SYSTEMS):
                record["commands"] = [command]  # every figure of this size is from this run
            elif command not in record.setdefault("commands", []):
                record["commands"].append(command)
            record.pop("command", None)
            if args.results:
                args.results.write_text(json.dumps(results, indent=1))
            print(json.dumps(record, indent=1))
    if args.out and results:
        commands = list(
            dict.fromkeys(c for r in results.values() for c in r.get("commands", [r.get("command")]) if c)
        )
        before = json.loads(args.before.read_text()) if args.before else None
        write_section(args.out, render(results, "\n".join(commands) or command, before))
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
