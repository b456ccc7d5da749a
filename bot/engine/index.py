"""BM25 over passages: term ids in, CSR posting arrays out, rank-bm25's figures.

An index is built straight from term ids (``Vocabulary`` maps terms to ids): one sort of the
(term, passage) pairs gives every posting list at once, each (term, passage) weight is computed
once in float32, and rank-bm25's IDF (with BM25Okapi's floor for words in half the passages or
more) is computed directly from the document frequencies, without building a rank-bm25 model.
``tests/test_index.py`` holds that the scores equal rank-bm25's ``get_scores``.

A question costs the postings of its terms: their weights are added into a dense per-thread
buffer, and the passages they touch are found without sorting (``_distinct``). Membership ("does
passage p hold term t?") is a binary search in t's posting list, so no per-passage sets are kept.

Variants, as in rank-bm25: ``okapi`` (BM25Okapi), ``plus`` (BM25+) and ``l`` (BM25L). For BM25L
we score with the published formula: the released rank-bm25 0.2.2 multiplies its BM25L term by the
term frequency once more (fixed upstream, never released), so we only borrow its IDF there.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

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


class Vocabulary:
    """Terms to dense ids, in order of first sight."""

    def __init__(self, terms: Iterable[str] = ()) -> None:
        self.ids: dict[str, int] = {}
        self.terms: list[str] = []
        for term in terms:
            self.id(term)

    def id(self, term: str) -> int:
        found = self.ids.get(term)
        if found is None:
            found = self.ids[term] = len(self.terms)
            self.terms.append(term)
        return found

    def __len__(self) -> int:
        return len(self.terms)


class PostingLists:
    """Compressed sparse rows: for each row (a term), sorted column ids (passages) and values."""

    __slots__ = ("ids", "indptr", "values")

    def __init__(
        self, rows: IntArray, columns: IntArray, n_rows: int, values: npt.NDArray[np.float32] | None = None
    ):
        order = np.lexsort((columns, rows))  # by row, then column
        self.ids: IntArray = columns[order].astype(np.int32)
        self.values = values[order] if values is not None else None
        self.indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=self.indptr[1:])

    @classmethod
    def of_arrays(
        cls, indptr: npt.NDArray[np.int64], ids: IntArray, values: npt.NDArray[np.float32] | None
    ) -> PostingLists:
        """Posting lists from arrays already in CSR order (read back from disk)."""
        lists = cls.__new__(cls)
        lists.indptr, lists.ids, lists.values = indptr, ids, values
        return lists

    def row(self, r: int) -> IntArray:
        return self.ids[self.indptr[r] : self.indptr[r + 1]]

    def holds(self, r: int, column: int) -> bool:
        """Whether ``column`` is in row ``r``: a binary search in the row."""
        lo, hi = int(self.indptr[r]), int(self.indptr[r + 1])
        i = lo + int(np.searchsorted(self.ids[lo:hi], column))
        return i < hi and int(self.ids[i]) == column

    @property
    def nbytes(self) -> int:
        return self.indptr.nbytes + self.ids.nbytes + (self.values.nbytes if self.values is not None else 0)


def distinct_pairs(rows: IntArray, columns: IntArray, n_columns: int) -> tuple[IntArray, IntArray, IntArray]:
    """The distinct (row, column) pairs of two parallel arrays, with how often each occurs."""
    keys = rows.astype(np.int64) * max(n_columns, 1) + columns
    unique, counts = np.unique(keys, return_counts=True)
    return (
        (unique // max(n_columns, 1)).astype(np.int32),
        (unique % max(n_columns, 1)).astype(np.int32),
        counts,
    )


class BM25Index:
    """An immutable BM25 index over passages given as term-id sequences.

    ``BM25Index.of(passages_terms)`` builds one from lists of terms (tests, benchmarks);
    ``BM25Index(term_ids, passage_of, ...)`` from the flat arrays the ranker produces."""

    def __init__(
        self,
        term_ids: IntArray,
        passage_of: IntArray,
        passages: int,
        vocabulary: Vocabulary,
        params: BM25Params | None = None,
    ) -> None:
        self.params = params = params or BM25Params()
        self.size = passages
        self.vocabulary = vocabulary
        n_terms = len(vocabulary)
        lengths = np.bincount(passage_of, minlength=passages).astype(np.float64)
        self.avgdl = float(lengths.mean()) if passages else 0.0
        terms, pids, tf = distinct_pairs(term_ids, passage_of, passages)
        df = np.bincount(terms, minlength=n_terms)
        self.idf_array = _idf(df, passages, params)
        norm = 1 - params.b + params.b * lengths / (self.avgdl or 1.0)  # per-passage length normalisation
        k1, delta = params.k1, params.delta
        tf = tf.astype(np.float64)
        n = norm[pids]
        if params.variant == "okapi":
            weight = tf * (k1 + 1) / (tf + k1 * n)
        elif params.variant == "plus":
            # BM25+ adds delta for every passage; we keep only what a match adds beyond it
            # and add the constant back in ``score`` so totals match rank-bm25.
            weight = (tf * (k1 + 1)) / (k1 * n + tf)
        else:
            ctd = tf / n
            weight = (k1 + 1) * (ctd + delta) / (k1 + ctd + delta) - (k1 + 1) * delta / (k1 + delta)
        weight *= self.idf_array[terms]
        self.postings = PostingLists(terms, pids, n_terms, weight.astype(np.float32))
        self.df = df
        self.doc_freq: dict[str, int] = {t: int(df[i]) for i, t in enumerate(vocabulary.terms) if df[i]}
        self._buffers = threading.local()  # per thread: a dense score buffer and a position buffer

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Everything the index is, as arrays (``restore`` reads them back; the vocabulary apart)."""
        assert self.postings.values is not None
        return {
            "indptr": self.postings.indptr,
            "ids": self.postings.ids,
            "weights": self.postings.values,
            "idf": self.idf_array,
            "df": self.df,
            "shape": np.asarray([self.size], dtype=np.int64),
            "avgdl": np.asarray([self.avgdl], dtype=np.float64),
        }

    @classmethod
    def restore(
        cls, arrays: Mapping[str, npt.NDArray[Any]], vocabulary: Vocabulary, params: BM25Params
    ) -> BM25Index:
        """An index from ``arrays()``'s output (memory-mapped files are fine: nothing writes them)."""
        index = cls.__new__(cls)
        index.params, index.vocabulary = params, vocabulary
        index.size = int(arrays["shape"][0])
        index.avgdl = float(arrays["avgdl"][0])
        index.idf_array = arrays["idf"]
        index.df = arrays["df"]
        index.postings = PostingLists.of_arrays(arrays["indptr"], arrays["ids"], arrays["weights"])
        df = np.asarray(index.df)
        index.doc_freq = {t: int(df[i]) for i, t in enumerate(vocabulary.terms) if df[i]}
        index._buffers = threading.local()
        return index

    @classmethod
    def of(cls, passages_terms: Sequence[Sequence[str]], params: BM25Params | None = None) -> BM25Index:
        """An index over tokenised passages; an empty passage counts as one empty term, as in
        rank-bm25 (which divides by a passage's length)."""
        vocabulary = Vocabulary()
        ids: list[int] = []
        owners: list[int] = []
        for pid, terms in enumerate(passages_terms):
            for term in list(terms) or [""]:
                ids.append(vocabulary.id(term))
                owners.append(pid)
        return cls(
            np.asarray(ids, dtype=np.int32),
            np.asarray(owners, dtype=np.int32),
            len(passages_terms),
            vocabulary,
            params,
        )

    @property
    def idf(self) -> dict[str, float]:
        return {t: float(self.idf_array[i]) for i, t in enumerate(self.vocabulary.terms)}

    def __contains__(self, term: str) -> bool:
        return term in self.vocabulary.ids

    def holds(self, passage: int, term: str) -> bool:
        tid = self.vocabulary.ids.get(term)
        return tid is not None and self.postings.holds(tid, passage)

    def _baseline(self, query: Mapping[str, float]) -> float:
        """What BM25+ and BM25L give every passage, matched or not (zero for Okapi)."""
        p = self.params
        if p.variant == "okapi":
            return 0.0
        per_term = p.delta if p.variant == "plus" else (p.k1 + 1) * p.delta / (p.k1 + p.delta)
        ids = self.vocabulary.ids
        return sum(float(self.idf_array[ids[t]]) * per_term * c for t, c in query.items() if t in ids)

    def score(self, query_terms: Sequence[str] | Mapping[str, float]) -> tuple[IntArray, FloatArray]:
        """(passage ids, scores) for the passages that hold at least one query term, unordered.

        A sequence counts each term as often as it occurs (as rank-bm25 does); a mapping gives each
        term its own weight (a follow-up's context terms count less than its question's)."""
        query: Mapping[str, float] = query_terms if isinstance(query_terms, Mapping) else Counter(query_terms)
        rows = [(self.vocabulary.ids[t], c) for t, c in query.items() if t in self.vocabulary.ids]
        if not rows:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float64)
        buffer, position = self._scratch()
        postings, weights, indptr = self.postings.ids, self.postings.values, self.postings.indptr
        assert weights is not None
        parts = []
        for tid, count in rows:
            start, end = indptr[tid], indptr[tid + 1]
            ids = postings[start:end]
            buffer[ids] += weights[start:end] * count if count != 1 else weights[start:end]
            parts.append(ids)
        candidates = parts[0] if len(parts) == 1 else _distinct(np.concatenate(parts), position)
        scores = buffer[candidates]
        buffer[candidates] = 0.0  # ready for the next question
        if self.params.variant != "okapi":
            scores += self._baseline(query)
        return candidates, scores

    def _scratch(self) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        buffers = self._buffers
        if getattr(buffers, "score", None) is None:
            buffers.score = np.zeros(self.size, dtype=np.float64)
            buffers.position = np.zeros(self.size, dtype=np.int64)
        return buffers.score, buffers.position

    def top(self, query_terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best (passage id, score) pairs, best first; ties keep passage order."""
        return top_k(*self.score(query_terms), k)

    @property
    def nbytes(self) -> int:
        return self.postings.nbytes + self.idf_array.nbytes


def _distinct(ids: IntArray, position: npt.NDArray[np.int64]) -> IntArray:
    """``ids`` without repeats, without sorting: each id keeps its last occurrence. ``position`` is
    a scratch array as long as the id space (its old contents do not matter)."""
    order = np.arange(len(ids))
    position[ids] = order
    kept: IntArray = ids[position[ids] == order]
    return kept


def _idf(df: npt.NDArray[np.int64], passages: int, params: BM25Params) -> FloatArray:
    """rank-bm25's IDF for each term, from its document frequency (0 for a term this index never
    saw: a shared vocabulary can hold terms of another field)."""
    n = passages
    seen = df > 0
    d = np.where(seen, df, 1).astype(np.float64)
    if params.variant == "okapi":
        idf = np.log(n - d + 0.5) - np.log(d + 0.5)
        # rank-bm25 averages over every term of the corpus, then floors the negative ones at
        # epsilon x that mean.
        average = float(idf[seen].mean()) if seen.any() else 0.0
        idf[seen & (idf < 0)] = params.epsilon * average
    elif params.variant == "plus":
        idf = np.log((n + 1) / d)
    else:
        idf = np.log(n + 1) - np.log(d + 0.5)
    idf[~seen] = 0.0
    return idf


def top_k(ids: IntArray, scores: FloatArray, k: int) -> list[tuple[int, float]]:
    """The ``k`` highest-scoring (id, score) pairs, best first; ties go to the lower id."""
    if len(ids) == 0 or k <= 0:
        return []
    if len(ids) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))
    return [(int(ids[i]), float(scores[i])) for i in order]
