"""Semantic mode on a large corpus: what a question costs when BM25's best candidates are reranked,
against scoring every passage and sentence (benchmark, not a test).

    python benchmarks/bench_rerank.py [--passages 10000 100000] [--questions 300]

The corpus is bench_engine.py's synthetic one. Encoding it would take about 0.03 s a text on two
cores (an hour at 100k passages), and a dot product costs the same whatever the numbers are, so
the passage and sentence vectors here are random unit vectors of the model's width: the figures
are the *cost* of the semantic stage per question and per 1,000 passages, not its quality. Each
question is encoded by the real model, as in use.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import generate_documents, question_mix  # noqa: E402

from bot.engine import Engine  # noqa: E402
from bot.engine.fusion import RERANK_CANDIDATES, PassageVectors  # noqa: E402
from bot.engine.semantic import DIMENSION, shared_embedder  # noqa: E402


def random_unit(rng: np.random.Generator, rows: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--questions", type=int, default=300)
    args = parser.parse_args()
    embedder = shared_embedder()
    rng = np.random.default_rng(7)
    print(f"reranking BM25's best {RERANK_CANDIDATES} candidates; vectors: random, {DIMENSION} float32")
    print("| passages | sentences | vectors (MB) | MB per 1,000 passages | mode | ask p50 (ms) | p99 (ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for target in args.passages:
        documents = generate_documents(target, seed=11)
        questions = question_mix(args.questions, seed=5, documents=documents)
        for rerank in (True, False):
            engine = Engine(documents, semantic=False, rerank_above=0 if rerank else 10**9)
            counts = [len(group) for group in engine.ranker.sentence_texts]
            passages, sentences = random_unit(rng, len(counts)), random_unit(rng, sum(counts))
            engine.vectors = PassageVectors.of(embedder, passages, sentences, counts)
            megabytes = (passages.nbytes + sentences.nbytes) / 2**20
            for question in questions[:20]:  # warm up
                engine.ask(question)
            timings = []
            for question in questions:
                embedder._recent.clear()  # each timing includes the question's encoding
                started = time.perf_counter()
                engine.ask(question)
                timings.append((time.perf_counter() - started) * 1000)
            per_thousand = megabytes / len(counts) * 1000
            print(
                f"| {len(counts):,} | {sum(counts):,} | {megabytes:.0f} | {per_thousand:.1f} "
                f"| {'rerank' if rerank else 'every passage'} | {percentile(timings, 0.5):.1f} "
                f"| {percentile(timings, 0.99):.1f} |",
                flush=True,
            )
            del engine, passages, sentences
            gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
