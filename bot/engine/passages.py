"""Passages: the units the index ranks and the bot quotes.

A paragraph is one passage unless it is longer than ``max_words``; then it is cut at sentence
boundaries into windows that overlap by one sentence, so a fact split across the cut is still whole
in one of them. Headings are never passages: they are indexed with the passages under them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .documents import Document

MAX_WORDS = 120

# Words that end with a period without ending a sentence. Single capitals ("F.") and dotted
# acronyms ("U.S.") are handled by shape, not listed.
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof sr jr st mt ft gen gov sen rep col lt sgt capt cmdr pres rev hon inc ltd co
    corp bros no nos vs etc al approx dept est fig jan feb mar apr jun jul aug sep sept oct nov dec
    e.g i.e a.m p.m
    """.split()
)
_INITIALS = re.compile(r"(?:[a-z]\.)*[a-z]")  # "f", "u.s": a dotted initial or acronym, lowercased
# A sentence ends at . ! or ? (plus closing quotes/brackets), before whitespace and a capital,
# a digit or an opening quote. ("[.!?][.!?]*" is "[.!?]+" spelt so that the regex engine scans for
# the first character's set: half the time.)
_BOUNDARY = re.compile(r"[.!?][.!?]*[\"'”’)\]]*(?=\s+[\"“‘'(\[]?[A-Z0-9#@])")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, whitespace trimmed: ``split_sentences`` as
    offsets, so an index can keep two integers a sentence instead of its text."""
    cuts: list[int] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        cut = match.start()
        if text[cut] == ".":
            # The last word before the period (its tail is enough: abbreviations are short).
            word = text[max(start, cut - 24) : cut].rsplit(None, 1)[-1:] or [""]
            last = word[0].lstrip("\"'“‘(").lower()
            if last in _ABBREVIATIONS or _INITIALS.fullmatch(last):
                continue  # "Jr.", "F.", "U.S." do not end the sentence
        start = match.end()
        cuts.append(start)
    cuts.append(len(text))
    spans: list[tuple[int, int]] = []
    start = 0
    for end in cuts:  # no helper call per sentence: every passage of a build comes through here
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            a = start + len(piece) - len(piece.lstrip())
            spans.append((a, a + len(stripped)))
        start = end
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


@dataclass(frozen=True, slots=True)
class Passage:
    id: str  # "article:3f2a9c1b0d", stable while the document's text is unchanged
    document_id: str
    document_title: str
    section: str
    position: int  # 1-based within its document
    total: int  # passages in the document
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())

    @property
    def place(self) -> str:
        """Where it sits, for citations: 'The Rift Begins · passage 7 of 23'."""
        where = f"passage {self.position} of {self.total}"
        return f"{self.section} · {where}" if self.section else where


def _windows(sentences: list[str], max_words: int) -> Iterable[str]:
    """Greedy windows of whole sentences, each under ``max_words``, overlapping by one sentence."""
    lengths = [len(s.split()) for s in sentences]
    start = 0
    while start < len(sentences):
        end, words = start, 0
        while end < len(sentences) and (end == start or words + lengths[end] <= max_words):
            words += lengths[end]
            end += 1
        if end - start == 1 and words > max_words:
            # One sentence longer than the limit: cut it by words (rare: lists, run-ons).
            tokens = sentences[start].split()
            for i in range(0, len(tokens), max_words):
                yield " ".join(tokens[i : i + max_words])
        else:
            yield " ".join(sentences[start:end])
        if end >= len(sentences):
            return
        start = end - 1 if end - 1 > start else end  # one sentence of overlap


def make_passages(document: Document, max_words: int = MAX_WORDS) -> list[Passage]:
    pieces: list[tuple[str, str]] = []
    for block in document.blocks:
        if len(block.text.split()) <= max_words:
            pieces.append((block.section, block.text))
        else:
            pieces.extend((block.section, w) for w in _windows(split_sentences(block.text), max_words))
    passages: list[Passage] = []
    seen: set[str] = set()
    for position, (section, text) in enumerate(pieces, start=1):
        digest = hashlib.sha1(f"{section}\n{text}".encode()).hexdigest()[:10]
        pid = f"{document.id}:{digest}"
        while pid in seen:  # the same paragraph twice in one document
            pid += "+"
        seen.add(pid)
        passages.append(Passage(pid, document.id, document.title, section, position, len(pieces), text))
    return passages
