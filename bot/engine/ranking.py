"""Ranking: two BM25 views of the same passages, combined.

- **passages** (the main field): stemmed terms of the passage and its section heading;
- **sentences** (weight ``sentence_weight``): each sentence indexed alone; a passage gains its best
  sentence's score, so the question's words found *together* count for more than the same words
  scattered across a paragraph.

When a question asks *when* or *how many*, passages that hold a date or a quantity gain
``type_boost`` of the best score: the answer to "when" is a passage with a date in it.

Each field is a ``BM25Index`` whose figures equal rank-bm25's; the weights were chosen by measuring
hit@1, hit@3 and MRR on the public questions and two sets written independently (``docs/ENGINE.md``).

The ranker also keeps each passage's words and five-letter prefixes (``words``, ``prefix_doc_freq``)
for the decision in ``answers.py``: there a prefix match ("response" for "respond") is evidence
that a word is present. As a third ranking field, prefixes were measured and dropped: a wash on
the held-out sets, and one public question pushed out of the top three.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .analyzer import analyze_pairs
from .answers import PassageWords
from .index import BM25Index, BM25Params, FloatArray, IntArray, top_k
from .passages import Passage, split_sentences


@dataclass(frozen=True, slots=True)
class RankingWeights:
    sentence_weight: float = 0.5
    type_boost: float = 0.25
    # Semantic mode only (fusion.py); picked on public data, benchmarks/fusion_pick.py.
    cosine_weight: float = 3.0
    sentence_cosine_weight: float = 0.25


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
        self.sentence_texts: list[list[str]] = []  # each passage's sentences, as split_sentences cuts them
        for i, passage in enumerate(passages):
            # Each sentence is analysed once: the passage's terms are its heading's plus its sentences'.
            self.sentence_texts.append(split_sentences(passage.text))
            sentences = [analyze_pairs(s) for s in self.sentence_texts[-1]]
            pairs = analyze_pairs(passage.section) + [pair for sentence in sentences for pair in sentence]
            self.terms.append([term for term, _ in pairs])
            prefixes.append([prefix for _, prefix in pairs])
            sentence_terms.extend([term for term, _ in sentence] for sentence in sentences)
            owners.extend([i] * len(sentences))
            if progress and (i + 1) % 1000 == 0:
                progress(i + 1, len(passages))
        if progress:
            progress(len(passages), len(passages))
        self.passages = BM25Index(self.terms, params)
        self.prefix_doc_freq: dict[str, int] = dict(Counter(p for passage in prefixes for p in set(passage)))
        self.words = [
            PassageWords(frozenset(t), frozenset(p)) for t, p in zip(self.terms, prefixes, strict=True)
        ]
        self.sentences = BM25Index(sentence_terms, params)
        self.sentence_owner: IntArray = np.asarray(owners, dtype=np.int32)
        self.has_date = np.asarray(has_date, dtype=bool)
        self.has_quantity = np.asarray(has_quantity, dtype=bool)

    def score(
        self, terms: Sequence[str] | Mapping[str, float], expects: str | None = None
    ) -> tuple[IntArray, FloatArray]:
        """(passage ids, combined scores) for every passage holding one of the question's ``terms``
        (a sequence, or a mapping of term to weight: see ``BM25Index.score``)."""
        w = self.weights
        main_ids, main_scores = self.passages.score(terms)
        sent_ids, sent_scores = self.sentences.score(terms)
        # Best sentence per passage: sort by score, keep the first (highest) per owner.
        owners = self.sentence_owner[sent_ids]
        order = np.argsort(-sent_scores, kind="stable")
        best_owner, first = np.unique(owners[order], return_index=True)
        best_sentence = sent_scores[order][first]

        # A sentence matches only inside a passage that matches, and BM25Index returns sorted ids.
        scores = main_scores.copy()
        scores[np.searchsorted(main_ids, best_owner)] += w.sentence_weight * best_sentence
        if expects and w.type_boost and len(scores):
            wanted = self.has_date if expects == "date" else self.has_quantity
            scores += w.type_boost * scores.max() * wanted[main_ids]
        return main_ids, scores

    def top(
        self, terms: Sequence[str] | Mapping[str, float], k: int, expects: str | None = None
    ) -> list[tuple[int, float]]:
        return top_k(*self.score(terms, expects), k)
