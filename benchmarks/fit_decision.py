"""Fit the decision (``bot/engine/decision.py``) on public data and write ``bot/engine/decision.json``.

    python benchmarks/fit_decision.py [--squad ../shared/eval/squad2-public.json] [--write]

1. Every question of the public sets is asked of the engine at strictness 0 (so nothing is declined
   but questions with no known word) in both modes, lexical and semantic; each top hit gives its
   ``Signals`` and whether it is correct. The sets: ``evals/dev.jsonl`` and our own
   ``evals/heldout*.jsonl`` (the article), the eight SQuAD 2.0 articles of ``squad2-public.json``
   (their own questions, answerable and not, and as off-topic questions the answerable ones of the
   seven other articles).
2. A logistic model per mode (L2-regularised, fitted by Newton's method on standardised features)
   predicts "the top hit answers". Samples are weighted so each set counts by its questions, the
   article's three small sets together as much as one SQuAD article's own questions, and the
   other-article questions as much as the article's own (they are 7x as many).
3. The threshold at the default strictness is the highest probability line that declines at most
   ``--max-wrongly-declined`` of the answerable questions it was fitted on.
4. Two-fold check first, to report honestly: fitted on SQuAD articles 1, 3, 5, 7 + dev, scored on
   2, 4, 6, 8 + the held-out sets, and the other way round. Then the model is fitted on everything
   and (with ``--write``) saved.

The data never leaves ``../shared``: only coefficients are written.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import Engine  # noqa: E402
from bot.engine.decision import MODEL_FILE, DecisionModel, LogisticModel, Signals  # noqa: E402
from bot.engine.evaluate import (  # noqa: E402
    OTHER_ARTICLE,
    QuestionResult,
    calibration_error,
    evaluate,
    evaluate_squad,
    load_questions,
    parse_squad,
    reliability_table,
)

LEXICAL = [
    "coverage",
    "subject_coverage",
    "missing_max",
    "sentence_coverage",
    "unknown",
    "unknown_name",
    "type_found",
    "type_missing",
    "margin",
    "terms",
]
# Products let the line bend: a high cosine means more when the words are there too.
LEXICAL += ["coverage*coverage", "coverage*sentence_coverage"]
SEMANTIC = [
    *LEXICAL,
    "passage_cosine",
    "sentence_cosine",
    "coverage*sentence_cosine",
    "sentence_coverage*sentence_cosine",
    "sentence_cosine*sentence_cosine",
    "passage_cosine*passage_cosine",
    "type_missing*sentence_cosine",
    "subject_coverage*sentence_cosine",
]
ARTICLE_SETS = ("dev", "heldout", "heldout2")
L2 = 1.0


@dataclass(slots=True)
class Sample:
    set: str
    kind: str
    x: dict[str, float]
    correct: bool
    has_hit: bool  # False: declined by the one fact rule (no known word), never by the model


# Signals do not depend on the model: engines asked for them answer everything (no line at all),
# so a fit never reads the decision.json it is about to replace.
UNFITTED = DecisionModel(LogisticModel([], [], 0.0, 0.0), LogisticModel([], [], 0.0, 0.0), 0.0)


def collect(semantic: bool, squad: Path) -> list[Sample]:
    out: list[Sample] = []

    def add(name: str, results: list[QuestionResult]) -> None:
        for r in results:
            signals, correct = r.hits[0] if r.hits else (None, False)
            x = _as_dict(signals) if signals else {}
            out.append(Sample(name, r.kind, x, bool(correct), signals is not None))

    engine = Engine.from_path(ROOT / "corpus", semantic=semantic, decision=UNFITTED)
    for name in ARTICLE_SETS:
        add(name, evaluate(engine, load_questions(ROOT / "evals" / f"{name}.jsonl"), strictness=0.0).results)
    articles = parse_squad(squad.read_text(encoding="utf-8"), squad)
    squad_report = evaluate_squad(articles, strictness=0.0, semantic=semantic, decision=UNFITTED)
    for a, (_, report) in enumerate(squad_report.articles):
        add(f"squad{a + 1}", report.results)
    return out


def _as_dict(signals: Signals) -> dict[str, float]:
    return {name: float(getattr(signals, name)) for name in Signals.__dataclass_fields__}


def row(sample: Sample, features: list[str]) -> list[float]:
    """A sample's feature values: a signal, or a product of signals (``a*b``), as decision.py reads them."""
    return [math.prod(sample.x[name] for name in feature.split("*")) for feature in features]


def weights(samples: list[Sample]) -> np.ndarray:
    """Each SQuAD article's own questions weigh as much as its question count; the article's sets
    together weigh as much as one SQuAD article; other-article questions as much as own ones."""
    counts: dict[tuple[str, bool], int] = {}
    for s in samples:
        key = (s.set, s.kind == OTHER_ARTICLE)
        counts[key] = counts.get(key, 0) + 1
    squad_own = [n for (name, other), n in counts.items() if name.startswith("squad") and not other]
    article_total = sum(n for (name, _), n in counts.items() if name in ARTICLE_SETS)
    per_article = (sum(squad_own) / len(squad_own)) if squad_own else 1.0
    w = []
    for s in samples:
        other = s.kind == OTHER_ARTICLE
        if s.set in ARTICLE_SETS:
            w.append(per_article / max(article_total, 1))
        elif other:
            w.append(counts[(s.set, False)] / counts[(s.set, True)])
        else:
            w.append(1.0)
    return np.asarray(w)


def fit(samples: list[Sample], features: list[str]) -> tuple[list[float], float]:
    """L2 logistic regression by Newton's method, on standardised features; returns the
    coefficients and intercept in the original units."""
    rows = [s for s in samples if s.has_hit]
    X = np.asarray([row(s, features) for s in rows])
    y = np.asarray([float(s.correct) for s in rows])
    w = weights(samples)[[i for i, s in enumerate(samples) if s.has_hit]]
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    Z = np.hstack([np.ones((len(X), 1)), (X - mean) / std])
    beta = np.zeros(Z.shape[1])
    penalty = np.full(Z.shape[1], L2)
    penalty[0] = 0.0  # the intercept is not shrunk
    for _ in range(100):
        p = 1 / (1 + np.exp(-(Z @ beta)))
        gradient = Z.T @ (w * (p - y)) + penalty * beta
        hessian = (Z * (w * p * (1 - p))[:, None]).T @ Z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    coefficients = beta[1:] / std
    intercept = beta[0] - float(coefficients @ mean)
    return [float(c) for c in coefficients], float(intercept)


def probabilities(samples: list[Sample], features: list[str], model: tuple[list[float], float]) -> np.ndarray:
    coefficients, intercept = model
    z = np.asarray(
        [
            intercept + float(np.dot(coefficients, row(s, features))) if s.has_hit else -math.inf
            for s in samples
        ]
    )
    return 1 / (1 + np.exp(-z))


def pick_threshold(samples: list[Sample], p: np.ndarray, max_declined: float) -> float:
    """The highest line that declines at most ``max_declined`` of the answerable questions."""
    answerable = np.sort(p[[i for i, s in enumerate(samples) if s.kind == "answerable" and s.has_hit]])
    n = sum(1 for s in samples if s.kind == "answerable")
    already = n - len(answerable)  # declined by the fact rule whatever the line
    allowed = max(int(max_declined * n) - already, 0)
    return float(answerable[allowed]) if allowed < len(answerable) else 1.0


def figures(samples: list[Sample], p: np.ndarray, threshold: float) -> dict[str, float]:
    answered = p >= threshold

    def share(kind: str, test: np.ndarray) -> float:
        idx = [i for i, s in enumerate(samples) if s.kind == kind]
        return float(test[idx].mean()) if idx else float("nan")

    correct = np.asarray([s.correct for s in samples])
    own = [i for i, s in enumerate(samples) if s.kind != OTHER_ARTICLE]
    table = reliability_table((float(p[i]), bool(correct[i])) for i in own)
    out = {
        "hit@1": share("answerable", answered & correct),
        "wrongly_declined": share("answerable", ~answered),
        "rank_hit@1": share("answerable", correct),
    }
    for kind in ("unanswerable", OTHER_ARTICLE, "near_miss", "off_topic"):
        value = share(kind, ~answered)
        if not math.isnan(value):
            out[f"declined_{kind}"] = value
    out["calibration_error"] = calibration_error(table)
    return out


def show(title: str, f: dict[str, float]) -> None:
    print(f"  {title:<34} " + "  ".join(f"{k} {v:.3f}" for k, v in f.items()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--squad", type=Path, default=ROOT.parent / "shared" / "eval" / "squad2-public.json")
    parser.add_argument("--max-wrongly-declined", type=float, default=0.03)
    parser.add_argument("--strict-threshold", type=float, default=0.5)
    parser.add_argument("--cache", type=Path, help="keep the asked signals here between runs (pickle)")
    parser.add_argument("--write", action="store_true", help=f"save the fit to {MODEL_FILE.name}")
    args = parser.parse_args()
    fold_a = {"dev", *(f"squad{i}" for i in (1, 3, 5, 7))}
    result: dict[str, object] = {}
    for mode, features in (("lexical", LEXICAL), ("semantic", SEMANTIC)):
        started = time.perf_counter()
        cached = args.cache.with_suffix(f".{mode}.pickle") if args.cache else None
        if cached and cached.exists():
            samples = pickle.loads(cached.read_bytes())
        else:
            samples = collect(mode == "semantic", args.squad)
            if cached:
                cached.write_bytes(pickle.dumps(samples))
        print(f"{mode}: {len(samples)} questions asked in {time.perf_counter() - started:.0f} s")
        for train_sets, name in ((fold_a, "A"), (None, "B")):
            train = [s for s in samples if (s.set in fold_a) == (train_sets is not None)]
            test = [s for s in samples if (s.set in fold_a) != (train_sets is not None)]
            model = fit(train, features)
            line = pick_threshold(train, probabilities(train, features, model), args.max_wrongly_declined)
            print(f"  fitted on fold {name} (threshold {line:.3f}), scored on the other fold:")
            for group in sorted({s.set for s in test}):
                rows = [s for s in test if s.set == group]
                show(group, figures(rows, probabilities(rows, features, model), line))
            squad_rows = [s for s in test if s.set.startswith("squad")]
            show("SQuAD pooled", figures(squad_rows, probabilities(squad_rows, features, model), line))
        model = fit(samples, features)
        p = probabilities(samples, features, model)
        line = pick_threshold(samples, p, args.max_wrongly_declined)
        print(f"  fitted on everything (threshold {line:.3f}), scored on what it saw:")
        for group in ("dev", "heldout", "heldout2"):
            rows = [i for i, s in enumerate(samples) if s.set == group]
            show(group, figures([samples[i] for i in rows], p[rows], line))
        rows = [i for i, s in enumerate(samples) if s.set.startswith("squad")]
        show("SQuAD pooled", figures([samples[i] for i in rows], p[rows], line))
        result[mode] = {
            "features": features,
            "coefficients": [round(c, 6) for c in model[0]],
            "intercept": round(model[1], 6),
            "threshold": round(line, 4),
        }
        print(
            "  coefficients: " + ", ".join(f"{f} {c:+.3f}" for f, c in zip(features, model[0], strict=True))
        )
    result = {
        "about": "Fitted by benchmarks/fit_decision.py on evals/*.jsonl and squad2-public.json; "
        "see docs/ENGINE.md. Each mode's threshold: its answer line at strictness 0.5; "
        "strict_threshold: the line at strictness 1.",
        "strict_threshold": args.strict_threshold,
        **result,
    }
    if args.write:
        MODEL_FILE.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written {MODEL_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
