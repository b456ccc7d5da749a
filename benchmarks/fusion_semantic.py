"""Measurement only: BM25 fused with the cosine of the question against passages and sentences.

    python benchmarks/fusion_semantic.py [--squad ../shared/eval/squad2-public.json]

Ranking only, no declining (as benchmarks/ablation_engine.py): hit@1 of the top passage on the
answerable questions. For each question, the engine's BM25 score of every passage (as shipped:
passage + 0.5 best sentence + answer-type boost) is divided by the question's best score, so it
lies in [0, 1]; then

    fused = bm25 / max(bm25) + w * cosine

where cosine is the question's against the passage (``passage``), against the passage's best
sentence (``sentence``) or their mean (``mean``). w = 0 is the engine as shipped; "cosine only" ranks
by the cosine alone. SQuAD 2.0 (the shared public file, never committed) is scored as
../shared/eval/README.md says: one article at a time as the whole corpus, a hit when the top passage
lies in the question's paragraph and holds one of its answers. Vectors are cached under
ARTICLEBOT_VECTOR_CACHE (default data/vectors), so a second run encodes only the questions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import Engine, parse_text  # noqa: E402
from bot.engine.analyzer import analyze  # noqa: E402
from bot.engine.answers import expected_answer  # noqa: E402
from bot.engine.evaluate import contains_evidence, load_questions, normalise_for_match  # noqa: E402
from bot.engine.passages import split_sentences  # noqa: E402
from bot.engine.semantic import Embedder, VectorCache, default_cache_dir  # noqa: E402

WEIGHTS = (0.5, 1.0, 2.0, 4.0)
FEATURES = ("passage", "sentence", "mean")


@dataclass
class Case:
    question: str
    is_hit: Any  # passage index -> bool


def features(engine: Engine, cache: VectorCache, name: str, questions: list[str]) -> dict[str, Any]:
    texts = [p.text for p in engine.passages]
    sentences = [(i, s) for i, p in enumerate(engine.passages) for s in split_sentences(p.text)]
    passage_vectors = cache.vectors(f"fusion-{name}-passages", texts)
    sentence_vectors = cache.vectors(f"fusion-{name}-sentences", [s for _, s in sentences])
    asked = cache.embedder.encode(questions)
    cos_passage = asked @ passage_vectors.T
    cos_sentence_all = asked @ sentence_vectors.T
    owner = np.array([i for i, _ in sentences])
    cos_sentence = np.full_like(cos_passage, -1.0)
    for j, i in enumerate(owner):
        np.maximum(cos_sentence[:, i], cos_sentence_all[:, j], out=cos_sentence[:, i])
    bm25 = np.zeros_like(cos_passage)
    for row, question in enumerate(questions):
        ids, scores = engine.ranker.score(analyze(question), expected_answer(question.lower()))
        if len(scores) and scores.max() > 0:
            bm25[row, ids] = scores / scores.max()
    return {
        "bm25": bm25,
        "passage": cos_passage,
        "sentence": cos_sentence,
        "mean": (cos_passage + cos_sentence) / 2,
    }


def hits(cases: list[Case], f: dict[str, Any]) -> dict[str, int]:
    def count(scores: Any) -> int:
        return sum(bool(case.is_hit(int(np.argmax(row)))) for case, row in zip(cases, scores, strict=True))

    out = {"BM25 as shipped (w = 0)": count(f["bm25"])}
    for feature in FEATURES:
        out[f"cosine only, {feature}"] = count(f[feature])
    for feature in FEATURES:
        for w in WEIGHTS:
            out[f"BM25 + {w:g} x {feature}"] = count(f["bm25"] + w * f[feature])
    return out


def dev(cache: VectorCache) -> tuple[int, dict[str, int]]:
    engine = Engine.from_path(ROOT / "corpus")
    questions = [q for q in load_questions(ROOT / "evals" / "dev.jsonl") if q["answerable"]]
    cases = [
        Case(q["question"], lambda i, q=q: contains_evidence(engine.passages[i].text, q["evidence"]))
        for q in questions
    ]
    return len(cases), hits(cases, features(engine, cache, "dev", [c.question for c in cases]))


def squad(cache: VectorCache, path: Path) -> tuple[int, dict[str, int], list[tuple[int, dict[str, int]]]]:
    total: dict[str, int] = {}
    n = 0
    per_article: list[tuple[int, dict[str, int]]] = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        text = f"---\ntitle: {article['title']}\n---\n" + "\n".join(" ".join(p.split()) for p in paragraphs)
        engine = Engine([parse_text(text, doc_id="squad", default_title=article["title"], markdown=False)])
        folded = [normalise_for_match(p) for p in paragraphs]
        home = [
            next((k for k, p in enumerate(folded) if normalise_for_match(x.text) in p), -1)
            for x in engine.passages
        ]
        cases = []
        for k, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                if qa["is_impossible"]:
                    continue
                answers = [a["text"] for a in qa["answers"]]
                cases.append(
                    Case(
                        qa["question"],
                        lambda i, k=k, answers=answers, home=home, engine=engine: (
                            home[i] == k and contains_evidence(engine.passages[i].text, answers)
                        ),
                    )
                )
        n += len(cases)
        name = "squad-" + "".join(c if c.isalnum() else "_" for c in article["title"])
        counts = hits(cases, features(engine, cache, name, [c.question for c in cases]))
        per_article.append((len(cases), counts))
        for label, count in counts.items():
            total[label] = total.get(label, 0) + count
    return n, total, per_article


def halves(per_article: list[tuple[int, dict[str, int]]]) -> list[str]:
    """Pick the fusion on half of the SQuAD articles, score it on the other half, both ways."""
    lines = []
    for fit, score in ((0, 1), (1, 0)):
        fitted = per_article[fit::2]
        scored = per_article[score::2]

        def share(group: list[tuple[int, dict[str, int]]], label: str) -> float:
            return sum(c[label] for _, c in group) / sum(n for n, _ in group)

        fused = [label for label in fitted[0][1] if label.startswith("BM25 + ")]
        best = max(fused, key=lambda label: share(fitted, label))
        baseline = "BM25 as shipped (w = 0)"
        lines.append(
            f"chosen on articles {fit + 1},{fit + 3},{fit + 5},{fit + 7}: {best} "
            f"({share(fitted, best):.3f} there); on the other four {share(scored, best):.3f} "
            f"against BM25's {share(scored, baseline):.3f}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "eval" / "squad2-public.json")
    args = parser.parse_args()
    started = time.perf_counter()
    cache = VectorCache(Embedder(), default_cache_dir())
    sets = [("dev", *dev(cache))]
    split: list[str] = []
    if args.squad.exists():
        n, total, per_article = squad(cache, args.squad)
        sets.append(("SQuAD public", n, total))
        split = halves(per_article)
    print("| ranking | " + " | ".join(f"{name} hit@1 ({n})" for name, n, _ in sets) + " |")
    print("| --- | " + " | ".join("---:" for _ in sets) + " |")
    for label in sets[0][2]:
        print(f"| {label} | " + " | ".join(f"{res[label] / n:.3f}" for _, n, res in sets) + " |")
    print("\n" + "\n".join(split))
    print(f"\n{cache.embedder.texts_encoded} texts encoded in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
