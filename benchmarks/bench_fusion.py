"""The fused engine's costs on the article, in both modes (benchmark, not a test).

    python benchmarks/bench_fusion.py [--rounds 5]

- build: the article's engine with an empty vector cache (cold: every passage and sentence
  encoded), then again from the cache; the model is loaded once before, its load timed apart;
- ask: every question of dev, heldout and heldout2, one at a time, in-process, ``k=3``; the
  question vectors kept in memory are dropped before each ask, so each timing includes the
  question's encoding. p50 / p99 over all rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import Engine  # noqa: E402
from bot.engine.evaluate import load_questions  # noqa: E402
from bot.engine.semantic import shared_embedder  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    questions = [
        q["question"]
        for name in ("dev", "heldout", "heldout2")
        for q in load_questions(ROOT / "evals" / f"{name}.jsonl")
    ]
    started = time.perf_counter()
    embedder = shared_embedder()
    print(f"model load (in this process): {time.perf_counter() - started:.3f} s")
    lexical_builds, cold, warm = [], [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        lexical = Engine.from_path(ROOT / "corpus", semantic=False)
        lexical_builds.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as cache:
            t = time.perf_counter()
            semantic = Engine.from_path(ROOT / "corpus", vector_cache=cache)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            semantic = Engine.from_path(ROOT / "corpus", vector_cache=cache)
            warm.append(time.perf_counter() - t)
    print(f"build, lexical: median {statistics.median(lexical_builds):.3f} s")
    print(
        f"build, semantic, cold cache: median {statistics.median(cold):.3f} s "
        f"(min {min(cold):.3f}, max {max(cold):.3f})"
    )
    print(f"build, semantic, from the cache: median {statistics.median(warm):.3f} s (max {max(warm):.3f})")
    for label, engine in (("lexical", lexical), ("semantic", semantic)):
        timings = []
        for _ in range(args.rounds):
            for question in questions:
                embedder._recent.clear()  # time the question's encoding too
                t = time.perf_counter()
                engine.ask(question, k=3)
                timings.append((time.perf_counter() - t) * 1000)
        print(
            f"ask, {label}: p50 {percentile(timings, 0.5):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms "
            f"({len(timings)} asks)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
