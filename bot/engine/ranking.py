"""Ranking: three BM25 views of the same passages, combined.

- **passages** (the main field): stemmed terms of the passage and its section heading;
- **prefixes** (weight ``prefix_weight``): the same words cut to five letters, so morphological
  variants that the stemmer keeps apart ("competing" / "competition") still meet;
- **sentences** (weight ``sentence_weight``): each sentence indexed alone; a passage gains its best
  sentence's score, so the question's words found *together* count for more than the same words
  scattered across a paragraph.

When a question asks *when* or *how many*, passages that hold a date or a quantity gain
``type_boost`` of the best score: the answer to "when" is a passage with a date in it.

Each field is a ``BM25Index`` whose figures equal rank-bm25's; the weights were chosen by measuring
hit@1 and MRR on two question sets written independently (``docs/ENGINE.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .analyzer import analyze, analyze_prefixes
from .answers import PassageWords
from .index import BM25Index, BM25Params, FloatArray, IntArray, top_k
from .passages import Passage, split_sentences


@dataclass(frozen=True, slots=True)
class RankingWeights:
    prefix_weight: float = 0.5
    sentence_weight: float = 0.5
    type_boost: float = 0.25


class Ranker:
    def __init__(
        self,
        passages: Sequence[Passage],
        params: BM25Params,
        weights: RankingWeights,
        has_date: Sequence[bool],
        has_quantity: Sequence[bool],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.weights = weights
        self.terms: list[list[str]] = []
        prefixes: list[list[str]] = []
        sentence_terms: list[list[str]] = []
        owners: list[int] = []
        for i, passage in enumerate(passages):
            self.terms.append(analyze(passage.section) + analyze(passage.text))
            prefixes.append(analyze_prefixes(passage.section) + analyze_prefixes(passage.text))
            for sentence in split_sentences(passage.text):
                sentence_terms.append(analyze(sentence))
                owners.append(i)
            if progress and (i + 1) % 1000 == 0:
                progress(i + 1, len(passages))
        if progress:
            progress(len(passages), len(passages))
        self.passages = BM25Index(self.terms, params)
        self.prefixes = BM25Index(prefixes, params)
        self.words = [
            PassageWords(frozenset(t), frozenset(p)) for t, p in zip(self.terms, prefixes, strict=True)
        ]
        self.sentences = BM25Index(sentence_terms, params)
        self.sentence_owner: IntArray = np.asarray(owners, dtype=np.int32)
        self.has_date = np.asarray(has_date, dtype=bool)
        self.has_quantity = np.asarray(has_quantity, dtype=bool)

    def score(self, question: str, expects: str | None = None) -> tuple[IntArray, FloatArray]:
        """(passage ids, combined scores) for every passage that matches the question at all."""
        w = self.weights
        terms = analyze(question)
        main_ids, main_scores = self.passages.score(terms)
        pre_ids, pre_scores = self.prefixes.score(analyze_prefixes(question))
        sent_ids, sent_scores = self.sentences.score(terms)
        # Best sentence per passage: sort by score, keep the first (highest) per owner.
        owners = self.sentence_owner[sent_ids]
        order = np.argsort(-sent_scores, kind="stable")
        best_owner, first = np.unique(owners[order], return_index=True)
        best_sentence = sent_scores[order][first]

        ids = np.concatenate([main_ids, pre_ids, best_owner])
        parts: FloatArray = np.concatenate(
            [main_scores, w.prefix_weight * pre_scores, w.sentence_weight * best_sentence]
        )
        if len(ids) == 0:
            return ids.astype(np.int32), parts
        candidates, inverse = np.unique(ids, return_inverse=True)
        scores = np.asarray(np.bincount(inverse, weights=parts), dtype=np.float64)
        if expects and w.type_boost:
            wanted = self.has_date if expects == "date" else self.has_quantity
            scores = scores + w.type_boost * scores.max() * wanted[candidates]
        return candidates.astype(np.int32), scores

    def top(self, question: str, k: int, expects: str | None = None) -> list[tuple[int, float]]:
        return top_k(*self.score(question, expects), k)
