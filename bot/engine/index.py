"""BM25 over passages: rank-bm25's statistics, scored through an inverted index.

``rank_bm25`` computes the corpus statistics (IDF with its floor, average length); we keep them and
precompute each (term, passage) weight into posting arrays. A question then costs what its terms'
postings cost, not a walk over every passage as ``get_scores`` does, and the figures are the same
as rank-bm25's (``tests/test_index.py`` holds that).

Variants, as in rank-bm25: ``okapi`` (BM25Okapi), ``plus`` (BM25+) and ``l`` (BM25L). For BM25L
we score with the published formula: the released rank-bm25 0.2.2 multiplies its BM25L term by the
term frequency once more (fixed upstream, never released), so we only borrow its IDF there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import rank_bm25

Variant = Literal["okapi", "plus", "l"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class BM25Params:
    variant: Variant = "okapi"
    k1: float = 1.2
    b: float = 0.75
    epsilon: float = 0.25  # BM25Okapi: floor for IDFs of words in half the passages or more
    delta: float = 1.0  # BM25+ / BM25L: lower bound on a matched term's contribution


class BM25Index:
    """An immutable index over tokenised passages (lists of terms)."""

    def __init__(self, passages_terms: Sequence[Sequence[str]], params: BM25Params | None = None) -> None:
        self.params = params = params or BM25Params()
        self.size = len(passages_terms)
        corpus = [list(terms) or [""] for terms in passages_terms]  # rank-bm25 divides by len
        if params.variant == "okapi":
            model = rank_bm25.BM25Okapi(corpus, k1=params.k1, b=params.b, epsilon=params.epsilon)
        elif params.variant == "plus":
            model = rank_bm25.BM25Plus(corpus, k1=params.k1, b=params.b, delta=params.delta)
        else:
            model = rank_bm25.BM25L(corpus, k1=params.k1, b=params.b, delta=params.delta)
        self.idf: dict[str, float] = dict(model.idf)
        self.avgdl: float = float(model.avgdl)
        self.doc_freq: dict[str, int] = {}
        lengths = np.asarray(model.doc_len, dtype=np.float64)
        norm = 1 - params.b + params.b * lengths / self.avgdl  # per-passage length normalisation

        postings: dict[str, tuple[list[int], list[float]]] = {}
        for pid, freqs in enumerate(model.doc_freqs):
            for term, tf in freqs.items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(pid)
                tfs.append(tf)
        self._postings: dict[str, tuple[IntArray, FloatArray]] = {}
        k1, delta = params.k1, params.delta
        for term, (ids, tfs) in postings.items():
            id_arr = np.asarray(ids, dtype=np.int32)
            tf = np.asarray(tfs, dtype=np.float64)
            n = norm[id_arr]
            if params.variant == "okapi":
                weight = tf * (k1 + 1) / (tf + k1 * n)
            elif params.variant == "plus":
                # BM25+ adds delta for every passage; we keep only what a match adds beyond it
                # and add the constant back in ``score`` so totals match rank-bm25.
                weight = (tf * (k1 + 1)) / (k1 * n + tf)
            else:
                ctd = tf / n
                weight = (k1 + 1) * (ctd + delta) / (k1 + ctd + delta) - (k1 + 1) * delta / (k1 + delta)
            self._postings[term] = (id_arr, weight)
            self.doc_freq[term] = len(ids)

    def __contains__(self, term: str) -> bool:
        return term in self._postings

    def _baseline(self, query: Mapping[str, float]) -> float:
        """What BM25+ and BM25L give every passage, matched or not (zero for Okapi)."""
        p = self.params
        if p.variant == "okapi":
            return 0.0
        per_term = p.delta if p.variant == "plus" else (p.k1 + 1) * p.delta / (p.k1 + p.delta)
        return sum(self.idf.get(t, 0.0) * per_term * c for t, c in query.items())

    def score(self, query_terms: Sequence[str] | Mapping[str, float]) -> tuple[IntArray, FloatArray]:
        """(passage ids, scores) for the passages that hold at least one query term, unordered.

        A sequence counts each term as often as it occurs; a mapping gives each term its own weight
        (a follow-up's context terms count less than its question's)."""
        query: Mapping[str, float] = query_terms if isinstance(query_terms, Mapping) else Counter(query_terms)
        parts = [(self._postings[t], self.idf[t] * c) for t, c in query.items() if t in self._postings]
        if not parts:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float64)
        ids = np.concatenate([p[0][0] for p in parts])
        weights = np.concatenate([p[0][1] * p[1] for p in parts])
        candidates, inverse = np.unique(ids, return_inverse=True)
        scores = np.asarray(np.bincount(inverse, weights=weights), dtype=np.float64) + self._baseline(query)
        return candidates.astype(np.int32), scores

    def top(self, query_terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best (passage id, score) pairs, best first; ties keep passage order."""
        return top_k(*self.score(query_terms), k)


def top_k(ids: IntArray, scores: FloatArray, k: int) -> list[tuple[int, float]]:
    """The ``k`` highest-scoring (id, score) pairs, best first; ties go to the lower id."""
    if len(ids) == 0 or k <= 0:
        return []
    if len(ids) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))
    return [(int(ids[i]), float(scores[i])) for i in order]
