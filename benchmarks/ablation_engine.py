"""Which part of the ranking earns what: hit@1 / hit@3 / MRR@5 on each question set.

    python benchmarks/ablation_engine.py

Rows add one idea at a time, from rank-bm25 with ``str.lower().split()`` to the engine as shipped.
Ranking only (no declining), so every row is scored on the same answerable questions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import rank_bm25

from bot.engine import BM25Params, Engine
from bot.engine.analyzer import analyze
from bot.engine.answers import expected_answer
from bot.engine.evaluate import contains_evidence, load_questions
from bot.engine.ranking import RankingWeights

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "dev": ROOT / "evals" / "dev.jsonl",
    "held-out": ROOT / "evals" / "heldout.jsonl",
    "held-out 2": ROOT / "evals" / "heldout2.jsonl",
}

Ranker = Callable[[str], list[int]]


def figures(engine: Engine, rank: Ranker, path: Path) -> str:
    questions = [q for q in load_questions(path) if q["answerable"]]
    hit1 = hit3 = mrr = 0.0
    for q in questions:
        ranked = rank(q["question"])[:5]
        first = next(
            (n for n, i in enumerate(ranked, 1) if contains_evidence(engine.passages[i].text, q["evidence"])),
            None,
        )
        hit1 += first == 1
        hit3 += bool(first and first <= 3)
        mrr += 1 / first if first else 0
    n = len(questions)
    return f"{hit1 / n:.3f} / {hit3 / n:.3f} / {mrr / n:.3f}"


def engine_ranker(engine: Engine, use_type: bool = True) -> Ranker:
    def rank(question: str) -> list[int]:
        expects = expected_answer(question.lower()) if use_type else None
        return [i for i, _ in engine.ranker.top(analyze(question), 5, expects)]

    return rank


def main() -> None:
    base = Engine.from_path(ROOT / "corpus")
    plain = rank_bm25.BM25Okapi([p.text.lower().split() for p in base.passages])

    def plain_rank(question: str) -> list[int]:
        scores = plain.get_scores(question.lower().split())
        return sorted(range(len(scores)), key=lambda i: -scores[i])

    okapi = BM25Params()
    rows: list[tuple[str, Engine, Ranker]] = [("rank-bm25, lower().split()", base, plain_rank)]
    steps = [
        ("+ analyzer (stopwords, Snowball, quotes, hashtags)", RankingWeights(0, 0), False),
        ("+ best sentence (weight 0.5)", RankingWeights(0.5, 0), False),
        ("+ date / quantity boost for when / how many (shipped)", RankingWeights(0.5, 0.25), True),
        ("shipped, best sentence at weight 1", RankingWeights(1.0, 0.25), True),
    ]
    for label, weights, use_type in steps:
        engine = Engine(base.documents, params=okapi, weights=weights)
        rows.append((label, engine, engine_ranker(engine, use_type)))
    for variant in ("plus", "l"):
        engine = Engine(base.documents, params=BM25Params(variant=variant))  # type: ignore[arg-type]
        rows.append((f"shipped, but BM25 variant {variant}", engine, engine_ranker(engine)))

    print("| ranking | " + " | ".join(f"{name}: hit@1 / hit@3 / MRR@5" for name in SETS) + " |")
    print("| --- | " + " | ".join("---" for _ in SETS) + " |")
    for label, engine, rank in rows:
        print(f"| {label} | " + " | ".join(figures(engine, rank, path) for path in SETS.values()) + " |")


if __name__ == "__main__":
    main()
