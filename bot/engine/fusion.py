"""BM25 fused with the semantic stage's cosines, for ranking and for the answer sentence.

For a question, each passage's BM25 score (the ranker's: passage + best sentence + answer type) is
divided by the question's best, so it lies in [0, 1], and gains ``cosine_weight`` times the mean of
two cosines: the question against the passage, and against the passage's best sentence. Up to
``RERANK_ABOVE`` passages every passage is scored, so one that shares no word with the question
("Which companies does Musk run?" against "CEO of Tesla and SpaceX") can still come first; a larger
corpus reranks BM25's best ``RERANK_CANDIDATES``, so a question's cost does not grow with the
corpus. Within the top passage, the answer sentence
is the one with the best sum of its share of the best sentence's question weight (the lexical
choice's score, divided by the best) and ``sentence_cosine_weight`` times its cosine. The weights
were picked by measurement (``benchmarks/fusion_pick.py``, ``docs/ENGINE.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .index import FloatArray, IndexArray, IntArray, top_k
from .semantic import Embedder, Vectors

RERANK_ABOVE = 2000  # passages: past this, only BM25's best candidates are scored by cosine
RERANK_CANDIDATES = 200


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

    def cosines(self, question: Vectors, among: IntArray | None = None) -> QuestionCosines:
        """The question's cosine against every passage and sentence, and each passage's best
        sentence; with ``among``, against those passages and their sentences only (the rest stay 0):
        what a large corpus reranks, so a question costs its candidates, not the corpus."""
        n = len(self.start) - 1
        if among is None:
            passage = (self.passages @ question).astype(np.float64)
            sentence = (self.sentences @ question).astype(np.float64)
            best = passage.copy()  # a passage without sentences stands for its own best sentence
            has_sentences = np.diff(self.start) > 0
            if len(sentence):
                best[has_sentences] = np.maximum.reduceat(sentence, self.start[:-1][has_sentences])
            return QuestionCosines(passage, best, sentence)
        passage = np.zeros(n)
        best = np.zeros(n)
        sentence = np.zeros(len(self.sentences))
        passage[among] = self.passages[among] @ question
        best[among] = passage[among]
        counts = self.start[among + 1] - self.start[among]
        rows = np.repeat(self.start[among] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        if len(rows):
            sentence[rows] = self.sentences[rows] @ question
            with_sentences = counts > 0
            firsts = (np.cumsum(counts) - counts)[with_sentences]
            best[among[with_sentences]] = np.maximum.reduceat(sentence[rows], firsts)
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
    ids: IndexArray,
    bm25: FloatArray,
    cosine: FloatArray,
    weight: float,
    k: int,
    among: IntArray | None = None,
) -> list[tuple[int, float]]:
    """The ``k`` best passages by BM25 / its best + ``weight`` × cosine, over every passage (or
    over ``among``, the candidates a large corpus reranks)."""
    fused = weight * cosine
    if len(bm25) and bm25.max() > 0:
        fused[ids] += bm25 / bm25.max()
    if among is None:
        return top_k(np.arange(len(fused), dtype=np.int32), fused, k)
    return top_k(among, fused[among], k)


class LayeredVectors:
    """Several layers' vectors (the shared corpus's, each server document's) read as one, without
    copying them: a question's cosines are computed layer by layer and joined, passage and
    sentence rows running through the layers in order."""

    def __init__(self, layers: list[PassageVectors]) -> None:
        self.layers = layers
        self.embedder = layers[0].embedder
        self.passage_offsets = np.cumsum([0] + [len(layer.start) - 1 for layer in layers])
        self.sentence_offsets = np.cumsum([0] + [len(layer.sentences) for layer in layers])
        self.start: IntArray = np.concatenate(
            [layer.start[:-1] + int(self.sentence_offsets[i]) for i, layer in enumerate(layers)]
            + [np.asarray([self.sentence_offsets[-1]], dtype=np.int32)]
        ).astype(np.int32)

    def cosines(self, question: Vectors, among: IntArray | None = None) -> QuestionCosines:
        parts = []
        for i, layer in enumerate(self.layers):
            local = None
            if among is not None:
                low, high = self.passage_offsets[i], self.passage_offsets[i + 1]
                local = (among[(among >= low) & (among < high)] - low).astype(np.int32)
            parts.append(layer.cosines(question, local))
        return QuestionCosines(
            np.concatenate([p.passage for p in parts]),
            np.concatenate([p.best_sentence for p in parts]),
            np.concatenate([p.sentence for p in parts]),
        )
