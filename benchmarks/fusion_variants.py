"""Other ways to fuse BM25 with the cosines, measured on every public set (the answer to "why is
dev's d05 ranked 9th, and would another fusion fix it?").

    python benchmarks/fusion_variants.py [--squad ../shared/eval/squad2-public.json]

Each answerable question of ``evals/*.jsonl`` and of the eight SQuAD articles is asked once: its
BM25 scores (the ranker's: passage + best sentence + answer type) and its cosines against every
passage and every passage's best sentence are kept. Each variant then re-ranks those numbers, so
the rows differ only in the fusion. A correct passage is what ``python -m bot eval`` counts
(the evidence, and for SQuAD the question's own paragraph). Figures are rank hit@1 / hit@3 (no
decision), SQuAD pooled over articles 1, 3, 5, 7 and 2, 4, 6, 8; ``d05`` is the rank of "How did
Musk respond to Trump's insult?"'s passage. The shipped fusion is ``3 × cosine + BM25 / max``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import Engine  # noqa: E402
from bot.engine.answers import QuestionView  # noqa: E402
from bot.engine.evaluate import (  # noqa: E402
    contains_evidence,
    load_questions,
    paragraph_of_passages,
    parse_squad,
    squad_document,
)
from bot.engine.fusion import PassageVectors  # noqa: E402

D05 = "How did Musk respond to Trump's insult?"


@dataclass(slots=True)
class Asked:
    question: str
    bm25: np.ndarray  # per passage, 0 where no term matches
    passage: np.ndarray  # cosine against each passage
    sentence: np.ndarray  # cosine against each passage's best sentence
    correct: np.ndarray  # per passage


def ask_all(engine: Engine, cases: list[tuple[str, np.ndarray]]) -> list[Asked]:
    vectors = engine.vectors
    assert isinstance(vectors, PassageVectors), "the semantic model is needed"
    out = []
    for question, correct in cases:
        view = QuestionView.of(question, engine.decider)
        ids, scores = engine.ranker.score(view.query, view.expects)
        bm25 = np.zeros(len(engine.passages))
        bm25[ids] = scores
        cosines = vectors.cosines(vectors.embedder.encode_question(question))
        out.append(Asked(question, bm25, cosines.passage, cosines.best_sentence, correct))
    return out


def collect(squad: Path) -> dict[str, list[Asked]]:
    sets = {}
    engine = Engine.from_path(ROOT / "corpus", semantic=True)
    for name in ("dev", "heldout", "heldout2"):
        questions = [q for q in load_questions(ROOT / "evals" / f"{name}.jsonl") if q["answerable"]]
        cases = [
            (q["question"], np.asarray([contains_evidence(p.text, q["evidence"]) for p in engine.passages]))
            for q in questions
        ]
        sets[name] = ask_all(engine, cases)
    for a, article in enumerate(parse_squad(squad.read_text(encoding="utf-8"), squad), start=1):
        document = squad_document(article)
        engine = Engine([document], semantic=True)
        owner = paragraph_of_passages(article, document, engine)
        cases = []
        for n, paragraph in enumerate(article.paragraphs):
            for q in paragraph.questions:
                if not q.impossible:
                    flags = [
                        o == n and contains_evidence(p.text, q.answers)
                        for o, p in zip(owner, engine.passages, strict=True)
                    ]
                    cases.append((q.question, np.asarray(flags)))
        sets[f"squad{a}"] = ask_all(engine, cases)
    return sets


Fusion = Callable[[Asked], np.ndarray]


def rank_of_correct(asked: Asked, fusion: Fusion) -> int | None:
    order = np.argsort(-fusion(asked), kind="stable")
    found = np.flatnonzero(asked.correct[order])
    return int(found[0]) + 1 if len(found) else None


def share(rows: list[Asked], fusion: Fusion, within: int) -> float:
    ranks = [rank_of_correct(r, fusion) for r in rows]
    return sum(1 for r in ranks if r is not None and r <= within) / len(rows)


def by_max(bm25: np.ndarray) -> np.ndarray:
    return bm25 / bm25.max() if bm25.max() > 0 else bm25


def linear(w: float, passage_share: float = 0.5) -> Fusion:
    return lambda a: w * (passage_share * a.passage + (1 - passage_share) * a.sentence) + by_max(a.bm25)


def standardised(w: float) -> Fusion:
    def fusion(a: Asked) -> np.ndarray:
        c = (a.passage + a.sentence) / 2
        return w * (c - c.mean()) / (c.std() + 1e-9) + by_max(a.bm25)

    return fusion


def reciprocal_rank(k: float) -> Fusion:
    def fusion(a: Asked) -> np.ndarray:
        out = np.zeros(len(a.bm25))
        for scores in (a.bm25, (a.passage + a.sentence) / 2):
            rank = np.empty(len(scores))
            rank[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
            out += 1 / (k + rank)
        return out

    return fusion


VARIANTS: list[tuple[str, Fusion]] = [
    *(
        (f"cosine weight {w:g}" + (" (shipped)" if w == 3.0 else ""), linear(w))
        for w in (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
    ),
    *((f"passage/sentence cosine {p:g}/{1 - p:g}", linear(3.0, p)) for p in (0.0, 0.25, 0.75, 1.0)),
    *((f"standardised cosine × {w:g}", standardised(w)) for w in (0.1, 0.3, 0.5)),
    *((f"reciprocal rank, k {k:g}", reciprocal_rank(k)) for k in (5.0, 60.0)),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "eval" / "squad2-public.json")
    args = parser.parse_args()
    sets = collect(args.squad)
    halves = {
        "SQuAD 1,3,5,7": [r for i in (1, 3, 5, 7) for r in sets[f"squad{i}"]],
        "SQuAD 2,4,6,8": [r for i in (2, 4, 6, 8) for r in sets[f"squad{i}"]],
    }
    groups = {name: sets[name] for name in ("dev", "heldout", "heldout2")} | halves
    d05 = next(r for r in sets["dev"] if r.question == D05)
    print("| fusion | " + " | ".join(f"{g} hit@1 / @3" for g in groups) + " | d05 rank |")
    print("| --- " * (len(groups) + 2) + "|")
    for name, fusion in VARIANTS:
        cells = [f"{share(rows, fusion, 1):.3f} / {share(rows, fusion, 3):.3f}" for rows in groups.values()]
        print(f"| {name} | " + " | ".join(cells) + f" | {rank_of_correct(d05, fusion)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
