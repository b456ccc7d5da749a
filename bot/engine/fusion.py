"""BM25 fused with the semantic stage's cosines, for ranking and for the answer sentence.

For a question, each passage's BM25 score (the ranker's: passage + best sentence + answer type) is
divided by the question's best, so it lies in [0, 1], and gains ``cosine_weight`` times the mean of
two cosines: the question against the passage, and against the passage's best sentence. Every
passage is scored, so one that shares no word with the question ("Which companies does Musk run?"
against "CEO of Tesla and SpaceX") can still come first. Within the top passage, the answer sentence
is the one with the best sum of its share of the best sentence's question weight (the lexical
choice's score, divided by the best) and ``sentence_cosine_weight`` times its cosine. The weights
were picked by measurement (``benchmarks/fusion_pick.py``, ``docs/ENGINE.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .index import FloatArray, IntArray, top_k
from .semantic import Embedder, Vectors


@dataclass(frozen=True, slots=True)
class PassageVectors:
    """An engine's vectors: one row per passage, one per sentence (passages' sentences in order)."""

    embedder: Embedder
    passages: Vectors
    sentences: Vectors
    start: IntArray  # first sentence row of each passage; start[i + 1] ends it

    @classmethod
    def of(
        cls, embedder: Embedder, passages: Vectors, sentences: Vectors, counts: list[int]
    ) -> PassageVectors:
        start = np.zeros(len(counts) + 1, dtype=np.int32)
        np.cumsum(counts, out=start[1:])
        return cls(embedder, passages, sentences, start)

    def cosines(self, question: Vectors) -> QuestionCosines:
        """The question's cosine against every passage, every sentence, and each passage's best."""
        passage = (self.passages @ question).astype(np.float64)
        sentence = (self.sentences @ question).astype(np.float64)
        best = passage.copy()  # a passage without sentences stands for its own best sentence
        has_sentences = np.diff(self.start) > 0
        if len(sentence):
            best[has_sentences] = np.maximum.reduceat(sentence, self.start[:-1][has_sentences])
        return QuestionCosines(passage, best, sentence)


@dataclass(frozen=True, slots=True)
class QuestionCosines:
    passage: FloatArray  # per passage
    best_sentence: FloatArray  # per passage: its best sentence's
    sentence: FloatArray  # per sentence, in PassageVectors.sentences order

    @property
    def fused(self) -> FloatArray:
        """What ranking adds: the mean of the passage's and its best sentence's cosine."""
        return (self.passage + self.best_sentence) / 2


def fused_top(
    ids: IntArray, bm25: FloatArray, cosine: FloatArray, weight: float, k: int
) -> list[tuple[int, float]]:
    """The ``k`` best passages by BM25 / its best + ``weight`` × cosine, over every passage."""
    fused = weight * cosine
    if len(bm25) and bm25.max() > 0:
        fused[ids] += bm25 / bm25.max()
    return top_k(np.arange(len(fused), dtype=np.int32), fused, k)
