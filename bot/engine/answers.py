"""From ranked passages to an answer, or to an honest "the article doesn't say".

BM25 always ranks *something* first, so the score alone cannot tell a real answer from the least
bad passage. The decision combines signals a careful reader would use:

1. **Known words.** A question none of whose words the documents use is off-topic.
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
from dataclasses import dataclass, field
from typing import Any

from .analyzer import _TOKEN, _words, normalize, term_of
from .passages import Passage, split_sentences

_TIME_QUESTION = re.compile(
    r"\W*(?:so|and|but|ok|okay|hey)?\W*(when|what year|which year|what date|what day|how long ago)\b"
)
_QUANTITY_QUESTION = re.compile(r"\W*(?:so|and|but|ok|okay|hey)?\W*how (many|much)\b")
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
class QuestionView:
    """What the decision needs to know about the question, computed once."""

    terms: list[str]  # distinct terms, in order
    unknown_names: list[str]  # capitalised words / numbers no document uses, as typed
    expects: str | None  # "date", "quantity" or None

    @classmethod
    def of(cls, question: str, known: set[str] | dict[str, int]) -> QuestionView:
        text = normalize(question)
        terms: list[str] = []
        unknown_names: list[str] = []
        for i, match in enumerate(_TOKEN.finditer(text)):
            token = match.group()
            for word in _words(token):
                term = term_of(word)
                if not term:
                    continue
                if term not in terms:
                    terms.append(term)
                looks_like_name = token[0].isdigit() or (token[0].isupper() and i > 0)
                if looks_like_name and term not in known and token not in unknown_names:
                    unknown_names.append(token)
        lowered = text.lower()
        expects = (
            "quantity"
            if _QUANTITY_QUESTION.match(lowered)
            else "date"
            if _TIME_QUESTION.match(lowered)
            else None
        )
        return cls(terms, unknown_names, expects)


class Decider:
    """Confidence and the answer-or-decline decision, over one index's statistics."""

    def __init__(self, doc_freq: dict[str, int], passages: int, names: set[str]) -> None:
        self.doc_freq = doc_freq
        self.passages = passages
        self.names = names  # terms the documents mostly write capitalised: Musk, Bluesky, SpaceX
        self.unknown_idf = UNKNOWN_WEIGHT * math.log((passages + 1) / 0.5)

    def idf(self, term: str) -> float:
        df = self.doc_freq.get(term)
        return math.log((self.passages + 1) / (df + 0.5)) if df else self.unknown_idf

    def coverage(self, q: QuestionView, passage_terms: set[str]) -> float:
        total = sum(self.idf(t) for t in q.terms)
        held = sum(self.idf(t) for t in q.terms if t in passage_terms)
        return held / total if total else 0.0

    def off_topic_reason(self, q: QuestionView) -> str | None:
        """Rules 1 and 2: the question is about something the documents never mention."""
        if not any(t in self.doc_freq for t in q.terms):
            return "Nothing in the documents matches these words."
        if q.unknown_names:
            shown = ", ".join(f"“{n}”" for n in q.unknown_names[:3])
            return f"The documents never mention {shown}."
        return None

    def decline_reason(
        self, q: QuestionView, top: Passage, top_terms: set[str], strictness: float
    ) -> str | None:
        """Why the best passage does not answer the question, or None when it does."""
        off_topic = self.off_topic_reason(q)
        if off_topic or strictness < 0.25:
            return off_topic
        if q.expects == "quantity" and not QUANTITY.search(top.text):
            return "The closest passage gives no number for this."
        if q.expects == "date" and not DATE.search(top.text):
            return "The closest passage gives no date for this."
        subject = [t for t in q.terms if t not in self.names]
        unknown = [t for t in subject if t not in self.doc_freq]
        type_met = q.expects is not None  # reaching here means the expected date/number is there
        specific_names = [
            t for t in q.terms if t in self.names and t in top_terms and self.doc_freq[t] <= self.passages / 2
        ]
        if specific_names and unknown and not type_met and not any(t in top_terms for t in subject):
            return "The closest passage matches the names in the question but not what it asks."
        missing = [
            t
            for t in q.terms
            if t in self.names and t not in top_terms and self.doc_freq.get(t, 0) <= RARE_NAME_MAX_PASSAGES
        ]
        if missing:
            return "The closest passage is about something else."
        matched = [t for t in q.terms if t in top_terms]
        unknown_count = sum(1 for t in q.terms if t not in self.doc_freq)
        if len(matched) == 1 and unknown_count >= 2:
            return "The closest passage shares only one word with the question."
        return None


def best_sentence(passage: Passage, q: QuestionView, decider: Decider) -> str:
    """The sentence of ``passage`` that holds most of the question's weight (the direct answer)."""
    wanted = set(q.terms)
    best, best_score = passage.text, -1.0
    for sentence in split_sentences(passage.text):
        terms = {term_of(w) for w in _words(normalize(sentence))}
        score = sum(decider.idf(t) for t in wanted if t in terms)
        if (q.expects == "date" and DATE.search(sentence)) or (
            q.expects == "quantity" and QUANTITY.search(sentence)
        ):
            score += decider.unknown_idf
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
