"""The lexical engine's query path alone: wall and CPU time per question, on bench_peers' corpora.

Run by hand from the repository root, after ``bench_peers.py`` has prepared a size (its cache holds
the documents and the two question mixes)::

    python benchmarks/bench_peers.py --prepare --passages 100000 --cache /tmp/bench-query
    python benchmarks/bench_query.py /tmp/bench-query/100000-20240607-400q [--mix dense] [--passes 3]

To compare two versions of the engine, run it from each checkout back to back (the script imports
``bot`` from the current directory): on a shared machine wall times move with the load, so the
CPU time per question (``time.process_time``) and the load average are printed beside them.

Timed per question, ``--passes`` passes after a warm-up of 20 questions:

- ``BM25``: ``top_k(*engine.index.score(terms), 10)``: the main field, terms analysed beforehand;
- ``ranker``: ``engine.ranker.top(terms, 10)``: both fields and the answer-type boost;
- ``ask``: ``engine.ask(question, k=10)``: the whole lexical answer from the question's text.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, os.getcwd())

from bot.engine import Engine
from bot.engine.analyzer import analyze
from bot.engine.index import top_k


def timed(
    questions: Sequence[str], terms: Sequence[list[str]], passes: int, fn: Callable[[str, list[str]], object]
) -> str:
    wall: list[float] = []
    cpu = time.process_time()
    for _ in range(passes):
        for q, ts in zip(questions, terms, strict=True):
            started = time.perf_counter_ns()
            fn(q, ts)
            wall.append((time.perf_counter_ns() - started) / 1e6)
    cpu_ms = (time.process_time() - cpu) / len(wall) * 1e3
    return (
        f"p50 {np.percentile(wall, 50):.3f}  p99 {np.percentile(wall, 99):.3f}  "
        f"mean {np.mean(wall):.3f}  CPU/question {cpu_ms:.3f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("where", type=Path, help="a bench_peers cache folder (documents, questions)")
    parser.add_argument("--mix", default="dense", choices=("dense", "light"))
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--what", default="bm25,ranker,ask", help="comma-separated: bm25, ranker, ask")
    args = parser.parse_args(argv)
    with open(args.where / "documents.pickle", "rb") as f:
        documents = pickle.load(f)
    started = time.perf_counter()
    engine = Engine(documents, semantic=False, index_cache_above=sys.maxsize)  # every run builds
    print(f"built {len(engine.passages):,} passages in {time.perf_counter() - started:.1f} s", flush=True)
    questions: list[str] = json.loads((args.where / "questions.json").read_text())[args.mix]
    terms = [analyze(q) for q in questions]
    for q, ts in zip(questions[:20], terms[:20], strict=True):
        engine.ask(q, k=10)
        top_k(*engine.index.score(ts), 10)
    systems: dict[str, Callable[[str, list[str]], object]] = {
        "bm25": lambda q, ts: top_k(*engine.index.score(ts), 10),
        "ranker": lambda q, ts: engine.ranker.top(ts, 10),
        "ask": lambda q, ts: engine.ask(q, k=10),
    }
    print(f"load average before: {os.getloadavg()}")
    for name in args.what.split(","):
        print(f"{name:7} {timed(questions, terms, args.passes, systems[name])}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
