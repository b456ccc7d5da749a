"""Which stemmer, whether to fold accents, whether to add an exact-word field: measured on every set.

    python benchmarks/stemming_ablation.py [--squad ../shared/eval/squad2-public.json] [--lexical-only]

Ranking only: the engine asked with ``strictness=0`` (so only the off-topic rules 1-2 decline: a
question word the documents never use, "Herve" against "Hervé", is such a decline), and for SQuAD
also the bare rankings with no decline at all (the lexical ranker, the fused ranking of semantic
mode, and plain BM25 over the main field). Each row swaps one piece of the analyzer or adds one
field; the passages, the weights and the decision stay as shipped. Sets: the three article sets
(``evals/``), the bike-shop FAQ asked of the article plus the FAQ (``tests/corpora/``), and SQuAD 2.0
public (eight articles, each alone the corpus, pooled over 1,299 answerable questions, scored by
``../shared/eval/README.md``: the top passage lies in the question's paragraph and holds an answer).

The variants are swapped in by replacing ``analyzer.stem`` / ``analyzer.fold_accents`` (every path
to a term goes through them) and, for the exact-word field, the ranker's ``score``. Semantic mode
reads passage vectors from the vector cache (they depend on the text, not on the analyzer).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import snowballstemmer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import Engine, analyzer  # noqa: E402
from bot.engine.answers import QuestionView  # noqa: E402
from bot.engine.documents import load_corpus, load_file  # noqa: E402
from bot.engine.evaluate import (  # noqa: E402
    contains_evidence,
    evaluate,
    load_questions,
    paragraph_of_passages,
    parse_squad,
    squad_document,
)
from bot.engine.fusion import fused_top  # noqa: E402
from bot.engine.index import BM25Index, FloatArray, IntArray  # noqa: E402

ARTICLE_SETS = {"dev": "dev.jsonl", "held-out": "heldout.jsonl", "held-out 2": "heldout2.jsonl"}
FAQ = ROOT / "tests" / "corpora" / "faq_bikeshop.md"
FAQ_QUESTIONS = ROOT / "tests" / "corpora" / "faq_bikeshop.jsonl"


# --- stemmers -------------------------------------------------------------------------------------


def snowball(algorithm: str) -> Callable[[str], str]:
    stemmer = snowballstemmer.stemmer(algorithm)  # one thread here, so one instance is safe
    return stemmer.stemWord


def s_stem(word: str) -> str:
    """Harman's S-stemmer (1991): plurals only. "bikes" -> "bike", "served" stays "served"."""
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def no_stem(word: str) -> str:
    return word


@dataclass(frozen=True)
class Variant:
    name: str
    stem: Callable[[str], str]
    fold: bool = True
    surface_weight: float = 0.0  # an extra BM25 field of unstemmed words, added at this weight


VARIANTS = [
    Variant("**Snowball english + accent folding (shipped)**", snowball("english")),
    Variant("Snowball english, no accent folding (before)", snowball("english"), fold=False),
    Variant("Porter (original) + folding", snowball("porter")),
    Variant("S-stemmer (plurals only) + folding", s_stem),
    Variant("no stemming + folding", no_stem),
    Variant("Snowball + folding + exact-word field × 0.25", snowball("english"), surface_weight=0.25),
    Variant("Snowball + folding + exact-word field × 0.5", snowball("english"), surface_weight=0.5),
    Variant("Snowball + folding + exact-word field × 1", snowball("english"), surface_weight=1.0),
]


@contextmanager
def analyzer_as(variant: Variant) -> Iterator[None]:
    saved = analyzer.stem, analyzer.fold_accents
    analyzer.stem = variant.stem  # type: ignore[assignment]
    if not variant.fold:
        analyzer.fold_accents = lambda word: word
    try:
        yield
    finally:
        analyzer.stem, analyzer.fold_accents = saved


# --- the exact-word field -------------------------------------------------------------------------


def surface_words(text: str) -> list[str]:
    """The question's or passage's indexable words, lowercased and folded but not stemmed."""
    return [w.replace("'", "") for w in analyzer._words(analyzer.normalize(text)) if analyzer.term_of(w)]


def add_surface_field(engine: Engine, weight: float) -> None:
    """Each passage (heading + text) also indexed by its unstemmed words; the ranker's score gains
    ``weight`` × that field's score, so "serve" in a question outranks a passage with only "served".
    The ranker's ``score`` takes terms, not text: the question's surface words are set per ask."""
    if not weight:
        return
    ranker = engine.ranker
    field = BM25Index([surface_words(f"{p.section}\n{p.text}") for p in engine.passages], engine.params)
    stemmed_score = ranker.score
    asked: dict[str, list[str]] = {"words": []}

    def score(terms: Any, expects: str | None = None) -> tuple[IntArray, FloatArray]:
        ids, scores = stemmed_score(terms, expects)
        extra_ids, extra = field.score(asked["words"])
        # Every passage with a surface match also has a stem match, so extra_ids ⊆ ids (both sorted).
        scores = scores.copy()
        scores[np.searchsorted(ids, extra_ids)] += weight * extra
        return ids, scores

    ranker.score = score  # type: ignore[method-assign]
    ask = engine.ask

    def ask_with_words(question: str, *args: Any, **kwargs: Any) -> Any:
        asked["words"] = surface_words(question)
        return ask(question, *args, **kwargs)

    engine.ask = ask_with_words  # type: ignore[method-assign]


# --- the figures ------------------------------------------------------------------------------------


def build(documents: list[Any], variant: Variant, semantic: bool) -> Engine:
    engine = Engine(documents, semantic=semantic)
    add_surface_field(engine, variant.surface_weight)
    return engine


def jsonl_figures(engine: Engine, path: Path) -> str:
    f = evaluate(engine, load_questions(path), strictness=0.0).figures()
    return f"{f['hit@1']:.3f} / {f['hit@3']:.3f} / {f['mrr@5']:.3f}"


def ranked_ids(engine: Engine, question: str, how: str) -> list[int]:
    """The top five passages with no decline at all: the lexical ranker, the fused ranking, or
    plain BM25 over the main field."""
    view = QuestionView.of(question, engine.decider)
    if how == "main":
        return [i for i, _ in engine.index.top(view.query, 5)]
    if how == "lexical" or engine.vectors is None:
        return [i for i, _ in engine.ranker.top(view.query, 5, view.expects)]
    vectors = engine.vectors
    cosine, _ = vectors.cosines(vectors.embedder.encode_question(question))
    ids, bm25 = engine.ranker.score(view.query, view.expects)
    return [i for i, _ in fused_top(ids, bm25, cosine, engine.weights.cosine_weight, 5)]


def squad_figures(path: Path, variant: Variant, semantic: bool) -> tuple[dict[str, float], set[str]]:
    """The pooled shares, and the ids of the questions the ranking (no decline) puts right first."""
    counts = dict.fromkeys(("ask hit@1", "ask sentence hit@1", "ranking hit@1", "main field hit@1"), 0)
    ranked_right: set[str] = set()
    total = 0
    for article in parse_squad(path.read_text(encoding="utf-8"), path):
        document = squad_document(article)
        engine = build([document], variant, semantic)
        owner_of = paragraph_of_passages(article, document, engine)
        how = "fused" if engine.vectors is not None else "lexical"
        for number, paragraph in enumerate(article.paragraphs):
            # The passages cut from this paragraph: a hit is one of them holding an answer.
            home = {i for i, owner in enumerate(owner_of) if owner == number}
            for q in (q for q in paragraph.questions if not q.impossible):
                total += 1
                right = {i for i in home if contains_evidence(engine.passages[i].text, q.answers)}
                answer = engine.ask(q.question, k=1, strictness=0.0)
                if answer.answered and engine._by_id[answer.hits[0].passage.id] in right:
                    counts["ask hit@1"] += 1
                    counts["ask sentence hit@1"] += bool(
                        answer.sentence and contains_evidence(answer.sentence, q.answers)
                    )
                first = ranked_ids(engine, q.question, how)[:1]
                if first and first[0] in right:
                    counts["ranking hit@1"] += 1
                    ranked_right.add(q.id)
                first = ranked_ids(engine, q.question, "main")[:1]
                counts["main field hit@1"] += bool(first and first[0] in right)
    return {name: n / total for name, n in counts.items()}, ranked_right


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "eval" / "squad2-public.json")
    parser.add_argument("--lexical-only", action="store_true", help="skip semantic mode")
    args = parser.parse_args()
    article, _ = load_corpus(ROOT / "corpus")
    faq = load_file(FAQ, "faq")
    modes = [False] if args.lexical_only else [False, True]
    for semantic in modes:
        print(f"\n### {'semantic' if semantic else 'lexical'} mode (strictness 0)\n")
        print(
            "| analyzer | dev | held-out | held-out 2 | FAQ + article | SQuAD hit@1 | SQuAD sentence hit@1 "
            "| SQuAD ranking hit@1, no decline | SQuAD main field hit@1 | ranking vs shipped: gained / lost |"
        )
        print("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
        shipped: set[str] | None = None
        for variant in VARIANTS:
            started = time.perf_counter()
            with analyzer_as(variant):
                engine = build(article, variant, semantic)
                cells = [jsonl_figures(engine, ROOT / "evals" / name) for name in ARTICLE_SETS.values()]
                cells.append(jsonl_figures(build([*article, faq], variant, semantic), FAQ_QUESTIONS))
                squad, right = squad_figures(args.squad, variant, semantic)
            shipped = right if shipped is None else shipped
            cells += [f"{x:.3f}" for x in squad.values()]
            cells.append(f"+{len(right - shipped)} / −{len(shipped - right)}")
            print(f"| {variant.name} | " + " | ".join(cells) + " |", flush=True)
            print(f"  ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(
        "\ncells: hit@1 / hit@3 / MRR@5 of the answerable questions (a declined one is a miss); "
        "gained / lost: SQuAD questions this row's ranking puts right first and the shipped one does not, "
        "and the reverse"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
