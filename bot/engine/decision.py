"""One calibrated decision: the probability that a hit answers the question, and one threshold.

BM25 always ranks *something* first, so the engine needs a second opinion on whether the best
passage answers at all. It is a logistic model over signals any question and document have (no
word lists, no per-question rules), fitted by ``benchmarks/fit_decision.py`` on public data only and
stored as data in ``decision.json``, one set of coefficients per mode (lexical, semantic):

- **coverage**: the IDF-weighted share of the question's words the passage holds (a word met only
  by its five-letter prefix counts half), and the same for the passage's answer sentence;
- **unknown**: the share of the question's weight in words no document uses, and whether a name
  or number of the question is unknown ("Tokyo", "2018");
- **answer type**: a *when* question expects a date, *how many* a quantity, *who* a name: found in
  the passage, or missing from it;
- **margin**: how far this hit's score stands above the best other hit, as a share of the top score;
- **cosines** (semantic mode): the question against the passage and against its best sentence.

A hit's ``confidence`` is that probability. The engine answers when the top hit's probability
reaches the threshold that ``strictness`` sets (:func:`threshold`); the one rule kept by hand is a
fact, not a guess: a question none of whose words occurs in the documents is declined.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import Any

MODEL_FILE = Path(__file__).with_name("decision.json")
# An answered hit below this probability is shown as "closest match (low confidence)": on SQuAD
# such hits are right less than one time in four (the reliability table in docs/ENGINE.md).
LOW_CONFIDENCE = 0.25


@dataclass(frozen=True, slots=True)
class Signals:
    """What the decision reads about one (question, hit) pair. Plain numbers, so the fitting
    script and the engine compute them the same way: the engine is the only place they come from."""

    coverage: float  # share of the question's IDF weight the passage holds
    subject_coverage: float  # the same over the words that are not names: what is asked about them
    missing_max: float  # the heaviest question word the passage lacks, as a share of the weight
    sentence_coverage: float  # the same for the hit's answer sentence
    unknown: float  # share of the question's weight in words no document uses
    unknown_name: float  # 1 when a capitalised word or number of the question is unknown
    type_found: float  # 1 when the question expects a date / quantity / name and the passage has one
    type_missing: float  # 1 when it expects one and the passage has none
    margin: float  # (this hit's score - best other hit's) / top score
    terms: float  # log(1 + distinct question terms)
    passage_cosine: float = 0.0  # semantic mode only
    sentence_cosine: float = 0.0  # semantic mode only: the passage's best sentence

    def vector(self, features: list[str]) -> list[float]:
        """The values of ``features``: a signal's name, or a product of names (``a*b``)."""
        return self.values(tuple(tuple(feature.split("*")) for feature in features))

    def values(self, parts: tuple[tuple[str, ...], ...]) -> list[float]:
        """``vector`` for features already split into the names they multiply."""
        every = _every_signal(self)  # one C call, not a getattr per name
        return [
            every[_SIGNAL_AT[names[0]]] if len(names) == 1 else math.prod(every[_SIGNAL_AT[n]] for n in names)
            for names in parts
        ]


_SIGNAL_NAMES = tuple(Signals.__dataclass_fields__)
_SIGNAL_AT = {name: i for i, name in enumerate(_SIGNAL_NAMES)}
_every_signal = attrgetter(*_SIGNAL_NAMES)


@dataclass(frozen=True, slots=True)
class LogisticModel:
    features: list[str]
    coefficients: list[float]
    intercept: float
    threshold: float  # the answer line at the default strictness (0.5), fitted with the model
    parts: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)  # names per feature

    def __post_init__(self) -> None:  # split once, not at every hit
        object.__setattr__(self, "parts", tuple(tuple(feature.split("*")) for feature in self.features))

    def threshold_for(self, strictness: float, strict_threshold: float) -> float:
        """Strictness 0 answers anything with a known word; 0.5 is the fitted line; 1 the strict
        line. Linear in between: one threshold on the probability, moved by one setting."""
        s = min(max(strictness, 0.0), 1.0)
        if s <= 0.5:
            return self.threshold * s / 0.5
        return self.threshold + (max(strict_threshold, self.threshold) - self.threshold) * (s - 0.5) / 0.5

    def probability(self, signals: Signals) -> float:
        z = self.intercept + sum(
            c * x for c, x in zip(self.coefficients, signals.values(self.parts), strict=True)
        )
        return 1 / (1 + math.exp(-z)) if z > -700 else 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogisticModel:
        features = [str(f) for f in data["features"]]
        coefficients = [float(c) for c in data["coefficients"]]
        if len(features) != len(coefficients):
            raise ValueError("decision model: one coefficient per feature")
        unknown = {n for f in features for n in f.split("*")} - set(Signals.__dataclass_fields__)
        if unknown:
            raise ValueError(f"decision model: unknown features {sorted(unknown)}")
        return cls(features, coefficients, float(data["intercept"]), float(data["threshold"]))


@dataclass(frozen=True, slots=True)
class DecisionModel:
    lexical: LogisticModel
    semantic: LogisticModel
    strict_threshold: float  # the line at strictness 1, in either mode

    def model(self, semantic: bool) -> LogisticModel:
        return self.semantic if semantic else self.lexical

    def threshold_for(self, strictness: float, semantic: bool) -> float:
        return self.model(semantic).threshold_for(strictness, self.strict_threshold)


def load_model(path: Path = MODEL_FILE) -> DecisionModel:
    data = json.loads(path.read_text(encoding="utf-8"))
    return DecisionModel(
        LogisticModel.from_dict(data["lexical"]),
        LogisticModel.from_dict(data["semantic"]),
        float(data["strict_threshold"]),
    )


@cache
def shipped_model() -> DecisionModel:
    return load_model()
