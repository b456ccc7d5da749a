"""From ranked passages to an answer, or to an honest "the article doesn't say".

BM25 always ranks *something* first, so the score alone cannot tell a real answer from the least
bad passage. The decision combines signals a careful reader would use:

1. **Known words.** A question none of whose words the documents use is off-topic (a prefix
   match alone does not count here: the ranking needs one word the index holds).
2. **Unknown names.** A capitalised word or a number in the question that no document uses
   ("Tokyo", "2018") means the question is about something the documents never mention.
3. **Answer type.** *How many / how much* needs a quantity in the passage; *when / what year* a date.
4. **The question's subject, not just its names.** Names ("Bluesky", "SpaceX") are in many
   questions the article cannot answer; when the passage matches only the names and the rest of the
   question is words the documents never use, the article is not answering it. Names found in most
   passages (the article's protagonists) say nothing about where an answer is, so they do not
   trigger this rule: such questions get the closest passage, with a low confidence.
5. **Rare names stay together.** A rarely mentioned name in the question that is missing from the
   best passage (asked about SpaceX, the passage never says SpaceX) means the match is elsewhere.
6. **One stray word.** A passage that shares a single word with a question made mostly of unknown
   words ("best time to visit japan") matched by accident.

A passage's *confidence* is the share of the question's weight (IDF, with words the documents never
use counted at half the rarest word's weight) that the passage holds, scaled down when a rule
above declines it. ``strictness`` (0..1) moves the line: 0 keeps only rules 1 and 2; the default
0.5 applies them all; higher values also decline answers below a confidence floor.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .analyzer import _TOKEN, _words, analyze_pairs, normalize, prefix_of, term_of
from .passages import Passage, split_sentences

# "when" counts only where it opens the question: mid-question it is usually a conjunction
# ("What did Trump post when he returned?").
_TIME_QUESTION = re.compile(
    r"^\W*(?:(?:so|and|but|ok|okay|hey|then)\W+)?when\b"
    r"|\b(?:what|which) (?:year|date|day|month|decade)\b|\bsince when\b|\bhow long ago\b"
)
_QUANTITY_QUESTION = re.compile(
    r"\bhow (?:many|much|big|large|old|far)\b|\bwhat (?:percentage|percent|proportion|amount|number of)\b"
)
DATE = re.compile(
    r"\b(1[5-9]\d\d|20\d\d)s?\b|\b(january|february|march|april|may|june|july|august|september|october"
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
RARE_NAME_MAX_PASSAGES = 2  # a name in at most this many passages is "rare" (rule 5)
RULE_PENALTY = 0.4  # confidence kept by a passage that a rule declines
PREFIX_MATCH_CREDIT = 0.5  # a word matched only by its prefix counts this much toward confidence
UNKNOWN_WEIGHT = 0.5  # an unknown word weighs this share of the rarest word's IDF


@dataclass(frozen=True, slots=True)
class Hit:
    passage: Passage
    score: float
    confidence: float

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
class QuestionView:
    """What the decision needs to know about the question, computed once."""

    terms: list[str]  # distinct terms, in order
    query: list[str]  # every term, repeats kept: what BM25 scores (analyze(question))
    prefixes: dict[str, str]  # term -> its five-letter prefix, to meet variants the stemmer misses
    unknown_names: list[str]  # capitalised words / numbers no document uses, as typed
    expects: str | None  # "date", "quantity" or None

    @classmethod
    def of(cls, question: str, decider: Decider | None = None) -> QuestionView:
        text = normalize(question)
        terms: list[str] = []
        query: list[str] = []
        prefixes: dict[str, str] = {}
        names: list[tuple[str, str]] = []
        for i, match in enumerate(_TOKEN.finditer(text)):
            token = match.group()
            for word in _words(token):
                term = term_of(word)
                if not term:
                    continue
                query.append(term)
                if term not in prefixes:
                    terms.append(term)
                    prefixes[term] = prefix_of(word, term)
                if token[0].isdigit() or (token[0].isupper() and i > 0):
                    names.append((term, token))
        view = cls(terms, query, prefixes, [], expected_answer(text.lower()))
        if decider:
            for term, token in names:
                if not decider.known(view, term) and token not in view.unknown_names:
                    view.unknown_names.append(token)
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
        self, doc_freq: dict[str, int], prefix_doc_freq: dict[str, int], passages: int, names: set[str]
    ) -> None:
        self.doc_freq = doc_freq
        self.prefix_doc_freq = prefix_doc_freq
        self.passages = passages
        self.names = names  # terms the documents mostly write capitalised: Musk, Bluesky, SpaceX
        self.unknown_idf = UNKNOWN_WEIGHT * math.log((passages + 1) / 0.5)

    def df(self, q: QuestionView, term: str) -> int:
        """Passages holding ``term``, or failing that a word with its prefix (0: unknown)."""
        return self.doc_freq.get(term) or self.prefix_doc_freq.get(q.prefixes[term], 0)

    def known(self, q: QuestionView, term: str) -> bool:
        return self.df(q, term) > 0

    def idf(self, q: QuestionView, term: str) -> float:
        df = self.df(q, term)
        return math.log((self.passages + 1) / (df + 0.5)) if df else self.unknown_idf

    @staticmethod
    def holds(q: QuestionView, words: PassageWords, term: str) -> bool:
        return term in words.terms or q.prefixes[term] in words.prefixes

    def coverage(self, q: QuestionView, words: PassageWords) -> float:
        """The share of the question's weight that the passage holds: the passage's confidence."""
        total = held = 0.0
        for t in q.terms:
            weight = self.idf(q, t)
            total += weight
            if t in words.terms:
                held += weight
            elif q.prefixes[t] in words.prefixes:
                held += PREFIX_MATCH_CREDIT * weight  # "response" for "respond": likely, not certain
        return held / total if total else 0.0

    def off_topic_reason(self, q: QuestionView) -> str | None:
        """Rules 1 and 2: the question is about something the documents never mention."""
        if not any(t in self.doc_freq for t in q.terms):  # ranking needs at least one exact term
            return "Nothing in the documents matches these words."
        if q.unknown_names:
            shown = ", ".join(f"“{n}”" for n in q.unknown_names[:3])
            return f"The documents never mention {shown}."
        return None

    def decline_reason(
        self, q: QuestionView, top: Passage, words: PassageWords, strictness: float
    ) -> str | None:
        """Why the best passage does not answer the question, or None when it does."""
        off_topic = self.off_topic_reason(q)
        if off_topic or strictness < 0.25:
            return off_topic
        if q.expects == "quantity" and not QUANTITY.search(top.text):
            return "The closest passage gives no number for this."
        if q.expects == "date" and not DATE.search(top.text):
            return "The closest passage gives no date for this."
        held = {t for t in q.terms if self.holds(q, words, t)}
        subject = [t for t in q.terms if t not in self.names]
        unknown = [t for t in q.terms if not self.known(q, t)]
        specific_names = [t for t in held if t in self.names and self.df(q, t) <= self.passages / 2]
        # Rule 4 (an expected date or number found counts as answering what was asked).
        if specific_names and unknown and not q.expects and not held.intersection(subject):
            return "The closest passage matches the names in the question but not what it asks."
        # Rule 5.
        if any(
            t in self.names and t not in held and self.df(q, t) <= RARE_NAME_MAX_PASSAGES for t in q.terms
        ):
            return "The closest passage is about something else."
        # Rule 6: one shared word that is not a name, in a question of mostly unknown words.
        if len(held) == 1 and not held & self.names and len(unknown) >= 2:
            return "The closest passage shares only one word with the question."
        return None


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
    sentences = split_sentences(passage.text)
    scores = []
    for sentence in sentences:
        pairs = analyze_pairs(sentence)
        words = PassageWords(frozenset(t for t, _ in pairs), frozenset(p for _, p in pairs))
        score = sum(decider.idf(q, t) for t in q.terms if decider.holds(q, words, t))
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
    best, best_score = passage.text, -math.inf
    for sentence, score in zip(sentences, scores, strict=True):
        if score > best_score:
            best, best_score = sentence, score
    return best


def find_names(passages: list[Passage]) -> set[str]:
    """Terms the documents mostly write capitalised mid-sentence, or digits: names and numbers."""
    upper: Counter[str] = Counter()
    lower: Counter[str] = Counter()
    for passage in passages:
        for sentence in split_sentences(normalize(passage.text)):
            for i, match in enumerate(_TOKEN.finditer(sentence)):
                token = match.group()
                for word in _words(token):
                    term = term_of(word)
                    if not term:
                        continue
                    if token[0].isdigit() or (i > 0 and token[0].isupper()):
                        upper[term] += 1
                    elif token[0].islower():
                        lower[term] += 1
    return {t for t, n in upper.items() if n > lower[t]}
