"""Pick the semantic mode's two weights on public data, then score the pick on data it did not see.

    python benchmarks/fusion_pick.py [--squad ../shared/eval/squad2-public.json]

The engine itself is asked (semantic mode, ``strictness=0``, so nothing is declined but a question
with no known word: ranking and sentence choice, not the decision). First ``cosine_weight``
(ranking: BM25 / its best + w × mean cosine, ``fusion.py``), then, with it,
``sentence_cosine_weight`` (the answer sentence).
The pick maximises the mean of two shares: dev's hit@1 (sentence hit@1) and the pooled hit@1
(sentence hit@1) of SQuAD articles 1, 3, 5, 7; the figures of articles 2, 4, 6, 8 are the report.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import Engine  # noqa: E402
from bot.engine.evaluate import (  # noqa: E402
    contains_evidence,
    load_questions,
    paragraph_of_passages,
    parse_squad,
    squad_document,
)

RANK_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
SENTENCE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)

Case = tuple[str, object]  # (question, passage -> (passage correct, sentence correct))


def dev_set() -> tuple[Engine, list[tuple[str, list[str], object]]]:
    engine = Engine.from_path(ROOT / "corpus")
    qs = [q for q in load_questions(ROOT / "evals" / "dev.jsonl") if q["answerable"]]
    return engine, [(q["question"], q["evidence"], None) for q in qs]


def squad_sets(path: Path) -> list[tuple[Engine, list[tuple[str, list[str], object]]]]:
    out = []
    for article in parse_squad(path.read_text(encoding="utf-8"), path):
        document = squad_document(article)
        engine = Engine([document])
        owner = paragraph_of_passages(article, document, engine)
        home = {p.id: owner[i] for i, p in enumerate(engine.passages)}
        cases = [
            (q.question, q.answers, (home, number))
            for number, paragraph in enumerate(article.paragraphs)
            for q in paragraph.questions
            if not q.impossible
        ]
        out.append((engine, cases))
    return out


def score(engine: Engine, cases: list[tuple[str, list[str], object]], w: float, s: float) -> tuple[int, int]:
    engine.weights = replace(engine.weights, cosine_weight=w, sentence_cosine_weight=s)
    hits = sentences = 0
    for question, evidence, where in cases:
        answer = engine.ask(question, k=1, strictness=0.0)
        if not answer.hits:
            continue
        top = answer.hits[0].passage
        ok = contains_evidence(top.text, evidence)
        if where is not None:
            home, number = where  # type: ignore[misc]
            ok = ok and home[top.id] == number
        hits += ok
        sentences += bool(ok and answer.sentence and contains_evidence(answer.sentence, evidence))
    return hits, sentences


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "eval" / "squad2-public.json")
    args = parser.parse_args()
    dev = dev_set()
    squad = squad_sets(args.squad)
    pick, report = squad[0::2], squad[1::2]
    n_pick = sum(len(c) for _, c in pick)
    n_report = sum(len(c) for _, c in report)

    def shares(w: float, s: float) -> tuple[float, float, float, float, float, float]:
        d = score(*dev, w, s)
        p = [score(e, c, w, s) for e, c in pick]
        r = [score(e, c, w, s) for e, c in report]
        n = len(dev[1])
        return (
            d[0] / n,
            sum(h for h, _ in p) / n_pick,
            sum(h for h, _ in r) / n_report,
            d[1] / n,
            sum(x for _, x in p) / n_pick,
            sum(x for _, x in r) / n_report,
        )

    print(
        f"dev {len(dev[1])}, pick half (SQuAD 1,3,5,7) {n_pick}, report half (2,4,6,8) {n_report} answerable"
    )
    print(
        "| cosine_weight | s | dev hit@1 | pick hit@1 | report hit@1 | dev sent | pick sent | report sent |"
    )
    rows = {}
    for w in RANK_WEIGHTS:
        rows[w] = shares(w, 0.0)
        print(f"| {w:g} | 0 | " + " | ".join(f"{x:.3f}" for x in rows[w]) + " |")
    best_w = max((w for w in RANK_WEIGHTS if w), key=lambda w: (rows[w][0] + rows[w][1]) / 2)
    sentence_rows = {}
    for s in SENTENCE_WEIGHTS:
        sentence_rows[s] = shares(best_w, s)
        print(f"| {best_w:g} | {s:g} | " + " | ".join(f"{x:.3f}" for x in sentence_rows[s]) + " |")
    best_s = max(SENTENCE_WEIGHTS, key=lambda s: (sentence_rows[s][3] + sentence_rows[s][4]) / 2)
    chosen = sentence_rows[best_s]
    print(
        f"\nchosen: cosine_weight {best_w:g}, sentence_cosine_weight {best_s:g}; on the report half "
        f"hit@1 {chosen[2]:.3f} (lexical {rows[0.0][2]:.3f}), sentence {chosen[5]:.3f} "
        f"(lexical choice {sentence_rows[0.0][5]:.3f} with the fused ranking)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
