"""From ranked passages to an answer: the statistics and signals the decision reads.

``Decider`` holds one index's statistics (document frequencies, prefixes, names) and turns a
(question, passage) pair into :class:`~bot.engine.decision.Signals`; ``decision.py`` turns those into
the probability that the passage answers. ``best_sentence`` picks the answer sentence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from .analyzer import analyze_pairs, normalize, tokenize
from .decision import Signals
from .passages import Passage, split_sentences

# "when" counts only where it opens the question: mid-question it is usually a conjunction
# ("What did Trump post when he returned?").
_TIME_QUESTION = re.compile(
    r"^\W*(?:(?:so|and|but|ok|okay|hey|then)\W+)?when\b"
    r"|\b(?:what|which) (?:year|date|day|month|decade)\b|\bsince when\b|\bhow long ago\b"
)
_NAME_QUESTION = re.compile(r"\b(?:who|whom|whose)\b")
_QUANTITY_QUESTION = re.compile(
    r"\bhow (?:many|much|big|large|old|far)\b|\bwhat (?:percentage|percent|proportion|amount|number of)\b"
)
# A date in any document: a year (911, 1066, the 1340s), a day of the month, an ordinal century,
# a month or weekday, a relative day, a numeric date.
DATE = re.compile(
    r"\b\d{3,4}s?\b|\b\d{1,2}(?:st|nd|rd|th)\b|\b(?:first|second|third|fourth|fifth|sixth|seventh"
    r"|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth"
    r"|eighteenth|nineteenth|twentieth|twenty-first) centur(?:y|ies)\b|\bcenturies\b"
    r"|\b(january|february|march|april|may|june|july|august|september|october"
    r"|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today"
    r"|tomorrow)\b|\b\d{1,2}/\d{1,2}(/\d{2,4})?\b",
    re.IGNORECASE,
)
QUANTITY = re.compile(
    r"[$€£¥%]|\b(?!(1[5-9]|20)\d\d\b)\d[\d,.]*\b|\b(two|three|four|five|six|seven|eight|nine|ten|eleven"
    r"|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?|billions?"
    r"|trillions?|dozens?|half|percent)\b",
    re.IGNORECASE,
)
PREFIX_MATCH_CREDIT = 0.5  # a word matched only by its prefix counts this much toward confidence
UNKNOWN_WEIGHT = 0.5  # an unknown word weighs this share of the rarest word's IDF


@dataclass(frozen=True, slots=True)
class Hit:
    passage: Passage
    score: float
    confidence: float  # the probability that this passage answers the question (decision.py)
    signals: Signals | None = field(default=None, compare=False)  # what that probability was read from

    def to_dict(self) -> dict[str, Any]:
        p = self.passage
        return {
            "passage_id": p.id,
            "document": p.document_title,
            "section": p.section,
            "position": p.position,
            "text": p.text,
            "score": round(self.score, 4),
            "confidence": round(self.confidence, 3),
        }


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    answered: bool
    reason: str | None  # why it was declined, for people; None when answered
    sentence: str | None  # the direct answer: the best sentence of the top passage
    hits: list[Hit]  # when declined: the closest passages, if any, for a "closest match" reply
    terms: frozenset[str] = field(default_factory=frozenset)  # the question's terms, to highlight

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    def to_dict(self) -> dict[str, Any]:
        top = self.top
        return {
            "question": self.question,
            "answered": self.answered,
            "reason": self.reason,
            "answer": (
                {"sentence": self.sentence, "passage_id": top.passage.id}
                if self.answered and top and self.sentence
                else None
            ),
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass(frozen=True, slots=True)
class PassageWords:
    """A passage's terms and five-letter prefixes, for "does it hold this word?"."""

    terms: frozenset[str]
    prefixes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Match:
    """Which of a question's words a passage or a sentence holds: for each of ``QuestionView.terms``,
    in order, ``EXACT`` (the term itself), ``PREFIX`` (only a word with its prefix) or 0. The
    decision reads nothing else of a hit's words but, for a who-question, its ``terms``."""

    held: list[int]
    terms: AbstractSet[str] = frozenset()

    @classmethod
    def of(cls, q: QuestionView, words: PassageWords) -> Match:
        held = [
            EXACT if t in words.terms else PREFIX if q.prefixes[t] in words.prefixes else 0 for t in q.terms
        ]
        return cls(held, words.terms)

    def first(self, n: int) -> Match:
        """For the question's first ``n`` terms only (a follow-up's own, before its context's)."""
        return Match(self.held[:n], self.terms)


EXACT, PREFIX = 2, 1


@dataclass(frozen=True, slots=True)
class QuestionView:
    """What the decision needs to know about the question, computed once."""

    terms: list[str]  # distinct terms, in order
    query: list[str]  # every term, repeats kept: what BM25 scores (analyze(question))
    prefixes: dict[str, str]  # term -> its five-letter prefix, to meet variants the stemmer misses
    unknown_names: list[str]  # capitalised words / numbers no document uses, as typed
    expects: str | None  # "date", "quantity" or None
    expects_name: bool = False  # a who / whom / whose question: the answer is a name
    # Per decider, each term's (document frequency, IDF): a question's ten hits and their
    # sentences ask for the same few terms' weights hundreds of times.
    weights: dict[Decider, dict[str, tuple[int, float]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    term_weights: dict[Decider, list[float]] = field(default_factory=dict, compare=False, repr=False)
    unknown_shares: dict[Decider, float] = field(default_factory=dict, compare=False, repr=False)
    subjects: dict[Decider, list[bool]] = field(default_factory=dict, compare=False, repr=False)
    # Per ranker (a layer has its own vocabularies), the ids of ``terms`` and of their prefixes.
    ids: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, question: str, decider: Decider | None = None) -> QuestionView:
        text = normalize(question)
        terms: list[str] = []
        query: list[str] = []
        prefixes: dict[str, str] = {}
        names: list[tuple[str, str]] = []
        for i, token in enumerate(tokenize(text)):
            for term, prefix in token.terms:
                query.append(term)
                if term not in prefixes:
                    terms.append(term)
                    prefixes[term] = prefix
                first = token.surface[0]
                if first.isdigit() or (first.isupper() and i > 0):
                    names.append((term, token.surface))
        lowered = text.lower()
        view = cls(terms, query, prefixes, [], expected_answer(lowered), bool(_NAME_QUESTION.search(lowered)))
        if decider:
            for term, surface in names:
                if not decider.known(view, term) and surface not in view.unknown_names:
                    view.unknown_names.append(surface)
        return view


def expected_answer(question: str) -> str | None:
    """ "quantity" for how many / how much / what percentage, "date" for when / what year, else None."""
    if _QUANTITY_QUESTION.search(question):
        return "quantity"
    if _TIME_QUESTION.search(question):
        return "date"
    return None


class Decider:
    """Confidence and the answer-or-decline decision, over one index's statistics."""

    def __init__(
        self,
        doc_freq: Mapping[str, int],
        prefix_doc_freq: Mapping[str, int],
        passages: int,
        names: AbstractSet[str],
    ) -> None:
        self.doc_freq = doc_freq
        self.prefix_doc_freq = prefix_doc_freq
        self.passages = passages
        self.names = names  # terms the documents mostly write capitalised: Musk, Bluesky, SpaceX
        self.unknown_idf = UNKNOWN_WEIGHT * math.log((passages + 1) / 0.5)

    def df(self, q: QuestionView, term: str) -> int:
        """Passages holding ``term``, or failing that a word with its prefix (0: unknown)."""
        return self._weight(q, term)[0]

    def known(self, q: QuestionView, term: str) -> bool:
        return self.df(q, term) > 0

    def idf(self, q: QuestionView, term: str) -> float:
        return self._weight(q, term)[1]

    def weights(self, q: QuestionView) -> list[float]:
        """The IDF of each of ``q.terms``, in order (computed once per question)."""
        found = q.term_weights.get(self)
        if found is None:
            found = q.term_weights[self] = [self.idf(q, t) for t in q.terms]
        return found

    def _weight(self, q: QuestionView, term: str) -> tuple[int, float]:
        """(df, IDF) of a question's term, computed once per question (kept in the view)."""
        known = q.weights.get(self)
        if known is None:
            known = q.weights[self] = {}
        found = known.get(term)
        if found is None:
            df = self.doc_freq.get(term) or self.prefix_doc_freq.get(q.prefixes[term], 0)
            idf = math.log((self.passages + 1) / (df + 0.5)) if df else self.unknown_idf
            found = known[term] = (df, idf)
        return found

    def passage_signals(self, q: QuestionView, match: Match) -> tuple[float, float, float]:
        """(coverage, subject coverage, missing max) of what a passage holds, in one pass over the
        question's words (a dense question has fifteen, and a question ten hits):

        - coverage: the share of the question's weight the passage holds, a word met only by its
          prefix counting ``PREFIX_MATCH_CREDIT`` ("response" for "respond": likely, not certain);
        - subject coverage: the same over the words that are not names, any match counting whole
          (1 when all are names): a passage that holds "Bluesky" but not "founded" names the
          subject without saying what was asked;
        - missing max: the heaviest question word the passage lacks, as a share of the weight: a
          question whose one rare word is missing asks about something else."""
        total = held = subject_total = subject_held = heaviest = 0.0
        for found, weight, subject in zip(match.held, self.weights(q), self.subjects(q), strict=True):
            total += weight
            if found == EXACT:
                held += weight
            elif found:
                held += PREFIX_MATCH_CREDIT * weight
            elif weight > heaviest:
                heaviest = weight
            if subject:
                subject_total += weight
                if found:
                    subject_held += weight
        return (
            held / total if total else 0.0,
            subject_held / subject_total if subject_total else 1.0,
            heaviest / total if total else 0.0,
        )

    def subjects(self, q: QuestionView) -> list[bool]:
        """For each of ``q.terms``, whether it is not a name (once per question)."""
        found = q.subjects.get(self)
        if found is None:
            found = q.subjects[self] = [t not in self.names for t in q.terms]
        return found

    def coverage(self, q: QuestionView, match: Match) -> float:
        """The share of the question's weight that ``match`` holds (``passage_signals``)."""
        total = held = 0.0
        for found, weight in zip(match.held, self.weights(q), strict=True):
            total += weight
            if found == EXACT:
                held += weight
            elif found:
                held += PREFIX_MATCH_CREDIT * weight
        return held / total if total else 0.0

    def knows_any(self, q: QuestionView) -> bool:
        """Whether one of the question's words occurs in the documents (exactly: a prefix match
        alone does not count, since the ranking needs one word the index holds)."""
        return any(t in self.doc_freq for t in q.terms)

    def unknown_share(self, q: QuestionView) -> float:
        """The share of the question's weight in words no document uses (once per question)."""
        found = q.unknown_shares.get(self)
        if found is None:
            weights = [(w, self.known(q, t)) for t, w in zip(q.terms, self.weights(q), strict=True)]
            total = sum(w for w, _ in weights)
            found = sum(w for w, known in weights if not known) / total if total else 0.0
            q.unknown_shares[self] = found
        return found

    def holds_expected(
        self, q: QuestionView, match: Match, has_date: bool, has_quantity: bool
    ) -> bool | None:
        """Whether the passage holds what the question asks for (a date, a quantity, a name):
        None when the question expects nothing in particular. Whether it holds a date or a
        quantity the index already knows (``Ranker.has_date``: DATE / QUANTITY over its text)."""
        if q.expects == "date":
            return has_date
        if q.expects == "quantity":
            return has_quantity
        if q.expects_name:
            asked = set(q.terms)
            return any(t in self.names and t not in asked for t in match.terms)
        return None

    def signals(
        self,
        q: QuestionView,
        match: Match,
        sentence: str | Match,
        margin: float,
        cosines: tuple[float, float] = (0.0, 0.0),
        *,
        has_date: bool,
        has_quantity: bool,
    ) -> Signals:
        """The decision's view of a passage (what it holds of the question, its answer ``sentence``
        or what that holds, whether it holds a date or a quantity) for the question."""
        expected = self.holds_expected(q, match, has_date, has_quantity)
        sentence_match = Match.of(q, words_of(sentence)) if isinstance(sentence, str) else sentence
        coverage, subject_coverage, missing_max = self.passage_signals(q, match)
        return Signals(
            coverage=coverage,
            subject_coverage=subject_coverage,
            missing_max=missing_max,
            sentence_coverage=self.coverage(q, sentence_match),
            unknown=self.unknown_share(q),
            unknown_name=float(bool(q.unknown_names)),
            type_found=float(expected is True),
            type_missing=float(expected is False),
            margin=margin,
            terms=math.log1p(len(q.terms)),
            passage_cosine=cosines[0],
            sentence_cosine=cosines[1],
        )

    def decline_reason(self, q: QuestionView, signals: Signals) -> str:
        """Why a hit below the line was declined, in words, from the signals that weighed most."""
        if q.unknown_names:
            shown = ", ".join(f"“{n}”" for n in q.unknown_names[:3])
            return f"The documents never mention {shown}."
        if signals.type_missing:
            wanted = {"date": "date", "quantity": "number"}.get(q.expects or "", "name")
            return f"The closest passage gives no {wanted} for this."
        return "The closest passage does not seem to answer this."


def words_of(text: str) -> PassageWords:
    return words_of_pairs(analyze_pairs(text))


def words_of_pairs(pairs: list[tuple[str, str]]) -> PassageWords:
    return PassageWords(frozenset(t for t, _ in pairs), frozenset(p for _, p in pairs))


def best_sentence(
    passage: Passage,
    q: QuestionView,
    decider: Decider,
    cosines: Sequence[float] | None = None,
    cosine_weight: float = 0.0,
) -> str:
    """The sentence of ``passage`` that holds most of the question's weight (the direct answer).

    With ``cosines`` (each sentence's, in order), the choice blends that weight, as a share of the
    best sentence's, with ``cosine_weight`` times the cosine."""
    return best_sentence_words(passage, q, decider, cosines, cosine_weight)[0]


def best_sentence_words(
    passage: Passage,
    q: QuestionView,
    decider: Decider,
    cosines: Sequence[float] | None = None,
    cosine_weight: float = 0.0,
    read: Sequence[tuple[str, Match]] | None = None,
) -> tuple[str, Match]:
    """``best_sentence`` and what it holds of the question (the decision reads it again).
    ``read``: the passage's sentences and what each holds, already known (``Ranker.matches``)."""
    if read is None:
        read = [(sentence, Match.of(q, words_of(sentence))) for sentence in split_sentences(passage.text)]
    sentences = [sentence for sentence, _ in read]
    scores = []
    weights = decider.weights(q)
    for sentence, match in read:
        score = sum(compress(weights, match.held))  # the weights of the words it holds, in order
        if (q.expects == "date" and DATE.search(sentence)) or (
            q.expects == "quantity" and QUANTITY.search(sentence)
        ):
            score += decider.unknown_idf
        scores.append(score)
    if cosines is not None and len(cosines) == len(sentences):
        top = max(scores, default=0.0)
        scores = [
            (s / top if top > 0 else 0.0) + cosine_weight * c for s, c in zip(scores, cosines, strict=True)
        ]
    best, best_match, best_score = passage.text, None, -math.inf
    for (sentence, match), score in zip(read, scores, strict=True):
        if score > best_score:
            best, best_match, best_score = sentence, match, score
    return best, best_match if best_match is not None else Match.of(q, words_of(best))
