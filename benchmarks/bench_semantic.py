"""What the semantic stage costs: load time, encode time, memory; and cosine-only quality.

    python benchmarks/bench_semantic.py [--squad ../shared/eval/squad2-public.json]

Each cost is measured in a fresh subprocess (so imports and the model load are cold for the
process, warm for the disk cache, as on a bot restart):
- load: importing bot.engine.semantic, onnxruntime and tokenizers, checking the model's sha256,
  building the session; RSS before and after;
- question: one question at a time (the way `ask` would encode it), each of evals/dev.jsonl's 52
  questions 5 times; median and p99;
- 1,000 passages: one `encode` call on 1,000 passages (the article's 23 and SQuAD paragraphs cut
  into passages by the engine; 56 words on average), the batch size as shipped; RSS after.
Quality: hit@1 / hit@3 of the cosine-best passage on the answerable questions of the eval sets,
against the engine's ranking as shipped (BM25, no declining).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, statistics, sys, time
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
from bot.engine import Engine
from bot.engine.evaluate import load_questions
texts = json.loads(sys.stdin.read())
before = rss_mb()
started = time.perf_counter()
from bot.engine.semantic import Embedder
embedder = Embedder()
load = time.perf_counter() - started
after_load = rss_mb()
questions = [q["question"] for q in load_questions("evals/dev.jsonl")]
embedder.encode(questions[:3])  # first runs allocate
times = []
for _ in range(5):
    for q in questions:
        t = time.perf_counter(); embedder.encode([q]); times.append(time.perf_counter() - t)
times.sort()
t = time.perf_counter(); embedder.encode(texts); batch = time.perf_counter() - t
print(json.dumps({
    "load_s": load, "rss_before_mb": before, "rss_after_load_mb": after_load,
    "rss_after_1000_mb": rss_mb(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "question_median_ms": statistics.median(times) * 1000,
    "question_p99_ms": times[int(0.99 * (len(times) - 1))] * 1000,
    "passages": len(texts), "words": sum(len(x.split()) for x in texts) / len(texts),
    "batch_1000_s": batch,
}))
"""


def thousand_passages(squad: Path | None) -> list[str]:
    from bot.engine import Engine, parse_text

    texts = [p.text for p in Engine.from_path(ROOT / "corpus").passages]
    if squad and squad.exists():
        for article in json.loads(squad.read_text(encoding="utf-8"))["data"]:
            doc = parse_text(
                "\n".join(p["context"] for p in article["paragraphs"]),
                doc_id="s",
                default_title="s",
                markdown=False,
            )
            texts += [p.text for p in Engine([doc]).passages]
    while len(texts) < 1000:  # without SQuAD, the article's passages again, each made distinct
        texts += [f"{t} ({len(texts)})" for t in texts[:23]]
    return texts[:1000]


def score(engine: Any, ranks: Any, questions: list[dict[str, Any]]) -> str:
    from bot.engine.evaluate import contains_evidence

    hit1 = hit3 = 0
    for ranked, q in zip(ranks, questions, strict=True):
        found = [contains_evidence(engine.passages[int(i)].text, q["evidence"]) for i in ranked]
        hit1 += bool(found) and found[0]
        hit3 += any(found)
    return f"{hit1 / len(questions):.3f} / {hit3 / len(questions):.3f}"


def quality() -> list[str]:
    import numpy as np

    from bot.engine import Engine
    from bot.engine.analyzer import analyze
    from bot.engine.answers import expected_answer
    from bot.engine.evaluate import load_questions
    from bot.engine.semantic import Embedder

    engine = Engine.from_path(ROOT / "corpus")
    embedder = Embedder()
    vectors = embedder.encode([p.text for p in engine.passages])
    rows = []
    for name in ("dev", "heldout", "heldout2"):
        questions = [q for q in load_questions(ROOT / "evals" / f"{name}.jsonl") if q["answerable"]]
        asked = embedder.encode([q["question"] for q in questions])
        cos_rank = np.argsort(-(asked @ vectors.T), axis=1)[:, :3]
        bm25_rank = [
            [
                i
                for i, _ in engine.ranker.top(
                    analyze(q["question"]), 3, expected_answer(q["question"].lower())
                )
            ]
            for q in questions
        ]

        cosine, bm25 = score(engine, cos_rank, questions), score(engine, bm25_rank, questions)
        rows.append(f"| {name} ({len(questions)}) | {cosine} | {bm25} |")
    return rows


def article_cache() -> str:
    """The article's passages and sentences: encoded cold, then read back by a new cache."""
    import tempfile
    import time

    from bot.engine import Engine
    from bot.engine.passages import split_sentences
    from bot.engine.semantic import Embedder, VectorCache

    engine = Engine.from_path(ROOT / "corpus")
    passages = [p.text for p in engine.passages]
    sentences = [s for p in engine.passages for s in split_sentences(p.text)]
    embedder = Embedder()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        VectorCache(embedder, folder).vectors("article-passages", passages)
        VectorCache(embedder, folder).vectors("article-sentences", sentences)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        VectorCache(embedder, folder).vectors("article-passages", passages)
        VectorCache(embedder, folder).vectors("article-sentences", sentences)
        warm = time.perf_counter() - started
    return (
        f"article: {len(passages)} passages + {len(sentences)} sentences encoded and cached in {cold:.2f} s; "
        f"read back from the cache in {warm * 1000:.1f} ms ({embedder.texts_encoded} texts encoded in all)"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "eval" / "squad2-public.json")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    texts = thousand_passages(args.squad)
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        print(
            f"{key}: median {values[len(values) // 2]:.3f}  (runs: {', '.join(f'{v:.3f}' for v in values)})"
        )
    print(article_cache())
    print("\n| set (answerable) | cosine only hit@1 / hit@3 | engine ranking (BM25) hit@1 / hit@3 |")
    print("| --- | --- | --- |")
    print("\n".join(quality()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
