"""BM25 over passages: term ids in, CSR posting arrays out, rank-bm25's figures.

An index is built straight from term ids (``Vocabulary`` maps terms to ids): one sort of the
(term, passage) pairs gives every posting list at once, each (term, passage) weight is computed
once in float32, and rank-bm25's IDF (with BM25Okapi's floor for words in half the passages or
more) is computed directly from the document frequencies, without building a rank-bm25 model.
``tests/test_index.py`` holds that the scores equal rank-bm25's ``get_scores``.

A question costs the postings of its terms: one ``bincount`` adds their weights into a score
per passage, and the passages they touch are read back from it without sorting. Membership ("does
passage p hold term t?") is a binary search in t's posting list, so no per-passage sets are kept.

Variants, as in rank-bm25: ``okapi`` (BM25Okapi), ``plus`` (BM25+) and ``l`` (BM25L). For BM25L
we score with the published formula: the released rank-bm25 0.2.2 multiplies its BM25L term by the
term frequency once more (fixed upstream, never released), so we only borrow its IDF there.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Variant = Literal["okapi", "plus", "l"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]
# Ids made at query time: intp where numpy made them (it indexes with intp), int32 where they are
# a slice of a posting list.
IndexArray = npt.NDArray[np.integer[Any]]
# Distinct (term, passage) pairs of some passages: term ids, passage offsets from the block's
# first passage, counts, and that first passage's id (BM25Index.of_blocks).
PairBlock = tuple[IntArray, npt.NDArray[Any], npt.NDArray[Any], int]


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


class Counts(Mapping[str, int]):
    """Per-term counts read from a vocabulary and an array (no dict of its own): a term's count,
    for the terms whose count is not zero."""

    def __init__(self, vocabulary: Vocabulary, counts: npt.NDArray[Any]) -> None:
        # A plain array even over a memory-mapped file: a ``memmap``'s own indexing costs a Python
        # call per scalar read, and the decision reads counts one by one.
        self.vocabulary, self.counts = vocabulary, np.asarray(counts)

    def __getitem__(self, term: str) -> int:
        count: int | None = self.get(term)
        if count is None:
            raise KeyError(term)
        return count

    def get(self, term: str, default: Any = None) -> Any:
        tid = self.vocabulary.ids.get(term)
        count = int(self.counts[tid]) if tid is not None else 0
        return count if count else default

    def __contains__(self, term: object) -> bool:
        tid = self.vocabulary.ids.get(term) if isinstance(term, str) else None
        return tid is not None and bool(self.counts[tid])

    def __iter__(self) -> Iterator[str]:
        terms = self.vocabulary.terms
        return (terms[i] for i in np.flatnonzero(np.asarray(self.counts)).tolist())

    def __len__(self) -> int:
        return int(np.count_nonzero(self.counts))


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
        lengths = np.bincount(passage_of, minlength=passages).astype(np.float64)
        terms, pids, tf = distinct_pairs(term_ids, passage_of, passages)
        self._fill([(terms, pids, tf, 0)], lengths, vocabulary, params)

    @classmethod
    def of_blocks(
        cls,
        blocks: list[PairBlock],
        lengths: FloatArray,
        vocabulary: Vocabulary,
        params: BM25Params | None = None,
    ) -> BM25Index:
        """An index from distinct (term, passage, count) triples in blocks (the ranker's chunks of
        passages), each block sorted by term then passage, a term's passages ascending from block
        to block; a block holds its passages as offsets from its first (a narrow dtype, as its
        counts: blocks wait for the whole corpus, so they are kept small). ``lengths`` holds each
        passage's number of terms. The blocks list is emptied as its blocks are placed, so their
        memory goes as the postings fill."""
        index = cls.__new__(cls)
        index._fill(blocks, lengths, vocabulary, params)
        return index

    def _fill(
        self,
        blocks: list[PairBlock],
        lengths: FloatArray,
        vocabulary: Vocabulary,
        params: BM25Params | None,
    ) -> None:
        self.params = params = params or BM25Params()
        self.size = passages = len(lengths)
        self.vocabulary = vocabulary
        n_terms = len(vocabulary)
        self.avgdl = float(lengths.mean()) if passages else 0.0
        df = np.zeros(n_terms, dtype=np.int64)
        for terms, _, _, _ in blocks:
            df += np.bincount(terms, minlength=n_terms)
        self.idf_array = _idf(df, passages, params)
        # Each block's postings go straight to their place in the term-major arrays: a term's
        # postings of earlier blocks come first, so no global sort of the pairs is needed.
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        ids = np.empty(int(indptr[-1]), dtype=np.int32)
        # Each posting's count, kept for layers (LayeredField): two bytes while every count fits
        # (a passage is at most max_words long), else float32 as before.
        widest = max((int(tf.max()) for _, _, tf, _ in blocks if len(tf)), default=0)
        self.tf = np.empty(len(ids), dtype=np.uint16 if widest < 1 << 16 else np.float32)
        cursor = indptr[:-1].copy()
        while blocks:
            terms, offsets, tf, first = blocks.pop(0)
            block_df = np.bincount(terms, minlength=n_terms)
            run_start = np.cumsum(block_df) - block_df
            where = cursor[terms] + (np.arange(len(terms)) - run_start[terms])
            ids[where] = offsets.astype(np.int32) + first
            self.tf[where] = tf
            cursor += block_df
        # Weights computed a slice at a time, so float64 temporaries stay small at 1M passages.
        norm = 1 - params.b + params.b * lengths / (self.avgdl or 1.0)  # per-passage length normalisation
        weights = np.empty(len(ids), dtype=np.float32)
        step = 1 << 20  # five float64 temporaries of this many postings: 40 MB, not 160
        for start in range(0, len(ids), step):
            end = min(start + step, len(ids))
            # The term of each posting in the slice: its rows' lengths, clipped to the slice.
            first_row, last_row = np.searchsorted(indptr, [start, end - 1], side="right") - 1
            bounds = np.clip(indptr[first_row : last_row + 2], start, end)
            rows = np.repeat(np.arange(first_row, last_row + 1), np.diff(bounds))
            frequencies = self.tf[start:end].astype(np.float64)
            weight = _saturation(frequencies, norm[ids[start:end]], params) * self.idf_array[rows]
            weights[start:end] = weight
        self.lengths = lengths.astype(np.float32)
        self.postings = PostingLists.of_arrays(indptr, ids, weights)
        self.df = df
        self.doc_freq = Counts(vocabulary, df)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Everything the index is, as arrays (``restore`` reads them back; the vocabulary apart)."""
        assert self.postings.values is not None
        return {
            "indptr": self.postings.indptr,
            "ids": self.postings.ids,
            "weights": self.postings.values,
            "idf": self.idf_array,
            "df": self.df,
            "tf": self.tf,
            "lengths": self.lengths,
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
        index.tf, index.lengths = arrays["tf"], arrays["lengths"]
        index.postings = PostingLists.of_arrays(arrays["indptr"], arrays["ids"], arrays["weights"])
        index.doc_freq = Counts(vocabulary, index.df)
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
        per_term = _baseline_per_term(p)
        ids = self.vocabulary.ids
        return sum(float(self.idf_array[ids[t]]) * per_term * c for t, c in query.items() if t in ids)

    def score(self, query_terms: Sequence[str] | Mapping[str, float]) -> tuple[IndexArray, FloatArray]:
        """(passage ids, scores) for the passages that hold at least one query term, unordered.

        A sequence counts each term as often as it occurs (as rank-bm25 does); a mapping gives each
        term its own weight (a follow-up's context terms count less than its question's)."""
        query: Mapping[str, float] = query_terms if isinstance(query_terms, Mapping) else Counter(query_terms)
        rows = [(self.vocabulary.ids[t], c) for t, c in query.items() if t in self.vocabulary.ids]
        if not rows:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float64)
        candidates, scores = self._accumulate(rows)
        if self.params.variant != "okapi":
            scores += self._baseline(query)
        return candidates, scores

    def posting_scores(
        self, query_terms: Sequence[str] | Mapping[str, float]
    ) -> tuple[IndexArray, FloatArray]:
        """As ``score``, but a passage comes once per query term it holds: for a caller that takes
        a maximum over them (the best sentence per passage), this spares finding distinct ids."""
        query: Mapping[str, float] = query_terms if isinstance(query_terms, Mapping) else Counter(query_terms)
        rows = [(self.vocabulary.ids[t], c) for t, c in query.items() if t in self.vocabulary.ids]
        if not rows:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float64)
        dense, touched = self.dense_scores(rows)
        scores = dense[touched]
        if self.params.variant != "okapi":
            scores += self._baseline(query)
        return touched, scores

    def along_postings(
        self, values: npt.NDArray[Any], query_terms: Sequence[str] | Mapping[str, float]
    ) -> npt.NDArray[Any]:
        """``values`` (one per posting, in posting order) for the postings ``posting_scores``
        touches, in its order: slices copied one after another, where indexing ``values`` by the
        touched ids would read them at random."""
        query: Mapping[str, float] = query_terms if isinstance(query_terms, Mapping) else Counter(query_terms)
        indptr, ids = self.postings.indptr, self.vocabulary.ids
        spans = [(int(indptr[ids[t]]), int(indptr[ids[t] + 1])) for t in query if t in ids]
        return np.concatenate([values[a:b] for a, b in spans]) if spans else values[:0]

    def dense_scores(self, rows: Sequence[tuple[int, float]]) -> tuple[FloatArray, IndexArray]:
        """Every passage's score for (term id, count) ``rows`` (0 where none is held), and the
        postings added. One ``bincount`` over the rows' postings: it adds each passage's weights in
        row order, as a per-term loop into a buffer would (same sums), at a fifth of the cost of
        fancy-indexed adds, and no buffer to clear."""
        ids, weights, indptr = self.postings.ids, self.postings.values, self.postings.indptr
        assert weights is not None
        spans = [(int(indptr[tid]), int(indptr[tid + 1]), count) for tid, count in rows]
        # Widened while concatenated: bincount (and every fancy index after) casts int32 ids to
        # intp and float32 weights to float64 anyway, a copy each time; a count multiplies in
        # float32 first, as before, so the sums are the same.
        touched = np.concatenate([ids[a:b] for a, b, _ in spans], dtype=np.intp, casting="safe")
        added = np.concatenate(
            [weights[a:b] * c if c != 1 else weights[a:b] for a, b, c in spans], dtype=np.float64
        )
        return np.bincount(touched, added, minlength=self.size).astype(np.float64, copy=False), touched

    def _accumulate(self, rows: Sequence[tuple[int, float]]) -> tuple[IndexArray, FloatArray]:
        """(passages holding one of the rows' terms, ascending; their scores)."""
        if len(rows) == 1:  # one posting list: its passages are distinct and sorted already
            (tid, count), indptr = rows[0], self.postings.indptr
            a, b = int(indptr[tid]), int(indptr[tid + 1])
            weights = self.postings.values
            assert weights is not None
            return self.postings.ids[a:b], (weights[a:b] * count if count != 1 else weights[a:b]).astype(
                np.float64
            )
        dense, touched = self.dense_scores(rows)
        # Candidates stay intp: callers index with them, and int32 ids are cast at each use.
        if self._all_positive(rows):  # every weight added is > 0: a passage scores iff it matched
            candidates: IndexArray = np.flatnonzero(dense > 0)
        else:  # an IDF of 0 or below (tiny corpora): mark what the postings touched
            held = np.zeros(self.size, dtype=bool)
            held[touched] = True
            candidates = np.flatnonzero(held)
        return candidates, dense[candidates]

    def _all_positive(self, rows: Sequence[tuple[int, float]]) -> bool:
        """Whether every posting weight of these rows is above zero: Okapi and BM25+ weigh a
        posting its IDF times a positive saturation, so a positive IDF and count suffice."""
        if self.params.variant == "l":
            return False
        return all(count > 0 and self.idf_array[tid] > 0 for tid, count in rows)

    def top(self, query_terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The ``k`` best (passage id, score) pairs, best first; ties keep passage order."""
        return top_k(*self.score(query_terms), k)

    @property
    def nbytes(self) -> int:
        return self.postings.nbytes + self.idf_array.nbytes


def _saturation(tf: FloatArray, norm: FloatArray, params: BM25Params) -> FloatArray:
    """Each posting's term-frequency part of BM25 (its weight over the IDF), given its passage's
    length normalisation."""
    k1, delta = params.k1, params.delta
    if params.variant == "okapi":
        weight: FloatArray = tf * (k1 + 1) / (tf + k1 * norm)
    elif params.variant == "plus":
        # BM25+ adds delta for every passage; we keep only what a match adds beyond it and add
        # the constant back in ``score`` so totals match rank-bm25.
        weight = (tf * (k1 + 1)) / (k1 * norm + tf)
    else:
        ctd = tf / norm
        weight = (k1 + 1) * (ctd + delta) / (k1 + ctd + delta) - (k1 + 1) * delta / (k1 + delta)
    return weight


def _baseline_per_term(params: BM25Params) -> float:
    """What BM25+ and BM25L add for a query term in every passage, per unit of its IDF."""
    return (
        params.delta
        if params.variant == "plus"
        else (params.k1 + 1) * params.delta / (params.k1 + params.delta)
    )


def _raw_idf(df: Any, passages: int, params: BM25Params) -> Any:
    """rank-bm25's IDF formula for the variant, before BM25Okapi's floor (arrays or numbers)."""
    n = passages
    if params.variant == "okapi":
        return np.log(n - df + 0.5) - np.log(df + 0.5)
    if params.variant == "plus":
        return np.log((n + 1) / df)
    return np.log(n + 1) - np.log(df + 0.5)


def _idf(df: npt.NDArray[np.int64], passages: int, params: BM25Params) -> FloatArray:
    """rank-bm25's IDF for each term, from its document frequency (0 for a term this index never
    saw: a shared vocabulary can hold terms of another field)."""
    seen = df > 0
    idf: FloatArray = _raw_idf(np.where(seen, df, 1).astype(np.float64), passages, params)
    if params.variant == "okapi":
        # rank-bm25 averages over every term of the corpus, then floors the negative ones at
        # epsilon x that mean.
        average = float(idf[seen].mean()) if seen.any() else 0.0
        idf[seen & (idf < 0)] = params.epsilon * average
    idf[~seen] = 0.0
    return idf


TOP_K_BLOCK = 512  # scores per block whose maximum bounds the k-th score from below


def _at_least_kth(ids: IndexArray, scores: FloatArray, k: int) -> tuple[IndexArray, FloatArray]:
    """The (id, score) pairs that can be among the ``k`` best, all of them with their ties: those
    scoring at least the k-th largest of the block maxima. k blocks each hold a score that high,
    so the k-th score is too. ``argpartition`` over 100k scores costs about a millisecond; the
    block maxima and one comparison, a tenth of that, and a few hundred scores pass."""
    whole = len(scores) // TOP_K_BLOCK * TOP_K_BLOCK
    maxima = scores[:whole].reshape(-1, TOP_K_BLOCK).max(axis=1)
    bound = np.partition(maxima, -k)[-k]
    keep = np.flatnonzero(scores >= bound)
    return ids[keep], scores[keep]


def top_k(ids: IndexArray, scores: FloatArray, k: int) -> list[tuple[int, float]]:
    """The ``k`` highest-scoring (id, score) pairs, best first; ties go to the lower id."""
    if len(ids) == 0 or k <= 0:
        return []
    if len(ids) >= TOP_K_BLOCK * k * 4:
        ids, scores = _at_least_kth(ids, scores, k)
    if len(ids) > k:
        keep = np.argpartition(scores, -k)[-k:]  # the k largest (no negated copy of the scores)
        last = scores[keep].min()
        if np.count_nonzero(scores == last) > np.count_nonzero(scores[keep] == last):
            # argpartition keeps any of the passages tied at the k-th score: keep the lowest ids
            tied = np.flatnonzero(scores == last)
            above = np.flatnonzero(scores > last)
            tied = tied[np.argsort(ids[tied], kind="stable")][: k - len(above)]
            keep = np.concatenate([above, tied])
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))
    return [(int(ids[i]), float(scores[i])) for i in order]


REMEMBERED_TERMS = 65536  # terms whose layered count or name-ness is remembered


class LayeredCounts(Mapping[str, int]):
    """Several layers' per-term counts read as one: a term's count is the sum over the layers."""

    def __init__(self, layers: Sequence[Mapping[str, int]]) -> None:
        self.layers = list(layers)
        # A term's total, once asked: a question's decision reads each of its terms' counts
        # several times, and a server document's layer finds a term by a binary search.
        self._known: dict[str, int] = {}

    def __getitem__(self, term: str) -> int:
        total: int | None = self.get(term)
        if total is None:
            raise KeyError(term)
        return total

    def get(self, term: str, default: Any = None) -> Any:
        total = self._known.get(term)
        if total is None:
            if len(self._known) >= REMEMBERED_TERMS:  # questions bring any words: kept bounded
                self._known.clear()
            total = self._known[term] = sum(layer.get(term, 0) for layer in self.layers)
        return total if total else default

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self.get(term) is not None

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in self.layers:
            for term in layer:
                if term not in seen:
                    seen.add(term)
                    yield term

    def __len__(self) -> int:
        return sum(1 for _ in self)


class CompactVocabulary(Vocabulary):
    """A server document's vocabulary once its layer is built, read-only and without Python dicts:
    the terms as one UTF-8 blob, and their ``hash()`` values sorted (a term is found by a binary
    search, then checked against its text). About 25 bytes a term where a ``Vocabulary`` holds
    about 110 (a dict entry, a list slot, a string object): a 1 MB document has some 35,000 terms
    and 22,000 prefixes. ``hash`` is per process, and so are these (nothing of it is saved)."""

    def __init__(self, vocabulary: Vocabulary) -> None:  # no super(): no dict is kept
        terms = vocabulary.terms
        encoded = [t.encode("utf-8") for t in terms]
        offsets = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        hashes = np.fromiter(map(hash, terms), dtype=np.int64, count=len(terms))
        order = np.argsort(hashes, kind="stable").astype(np.int32)
        compact = _CompactTerms(b"".join(encoded), offsets)
        self.terms = compact  # type: ignore[assignment]
        self.ids = _CompactIds(hashes[order], order, compact)  # type: ignore[assignment]

    def id(self, term: str) -> int:
        found = self.ids.get(term)
        if found is None:
            raise TypeError(f"a compact vocabulary is read-only: {term!r} is not in it")
        return found

    def __len__(self) -> int:
        return len(self.terms)


class _CompactTerms(Sequence[str]):
    """Terms by id, cut out of one UTF-8 blob."""

    def __init__(self, blob: bytes, offsets: npt.NDArray[np.int64]) -> None:
        self.blob, self.offsets = blob, offsets

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.blob[start:end].decode("utf-8")

    def __len__(self) -> int:
        return len(self.offsets) - 1


class _CompactIds(Mapping[str, int]):
    """Term to id by binary search in the sorted hashes; equal hashes are told apart by the text."""

    def __init__(self, hashes: npt.NDArray[np.int64], order: IntArray, terms: _CompactTerms) -> None:
        self.hashes, self.order, self.terms = hashes, order, terms

    def get(self, term: str, default: Any = None) -> Any:
        found = int(self.find(np.asarray([hash(term)], dtype=np.int64), [term])[0])
        return found if found >= 0 else default

    def find(self, hashes: npt.NDArray[np.int64], terms: Sequence[str]) -> IntArray:
        """The ids of several terms at once (their hashes given), -1 for a term not here."""
        at = np.searchsorted(self.hashes, hashes)
        found = np.full(len(terms), -1, dtype=np.int32)
        n = len(self.hashes)
        for k in np.flatnonzero((at < n) & (self.hashes[np.minimum(at, n - 1)] == hashes)).tolist():
            i = int(at[k])
            while i < n and self.hashes[i] == hashes[k]:
                if self.terms[int(self.order[i])] == terms[k]:
                    found[k] = self.order[i]
                    break
                i += 1
        return found

    def __getitem__(self, term: str) -> int:
        found: int | None = self.get(term)
        if found is None:
            raise KeyError(term)
        return found

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self.get(term) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.terms)

    def __len__(self) -> int:
        return len(self.terms)


def term_hashes(terms: Sequence[str]) -> npt.NDArray[np.int64]:
    return np.fromiter(map(hash, terms), dtype=np.int64, count=len(terms))


def local_ids(vocabulary: Vocabulary, terms: Sequence[str], hashes: npt.NDArray[np.int64]) -> list[int]:
    """The ids of ``terms`` in one layer's vocabulary (-1: not there); a compact one in one search."""
    if isinstance(vocabulary.ids, _CompactIds):
        found: list[int] = vocabulary.ids.find(hashes, terms).tolist()
        return found
    ids = vocabulary.ids
    return [ids.get(t, -1) for t in terms]


class _Union:
    """Terms to their document frequency summed over some layers, as two arrays: the terms'
    ``hash()`` values, sorted, and their summed counts (a dict of every term of 30 documents of
    1 MB held a million entries, copied at each add). Two different terms of equal 64-bit hash
    would count as one here, for the mean IDF only: about one chance in 10^8 at a million terms."""

    def __init__(
        self, keys: npt.NDArray[np.int64] | None = None, df: npt.NDArray[np.int64] | None = None
    ) -> None:
        self.keys = keys if keys is not None else np.empty(0, dtype=np.int64)
        self.df = df if df is not None else np.empty(0, dtype=np.int64)

    def copy(self) -> _Union:
        return _Union(self.keys, self.df)  # never written in place: ``add`` makes new arrays

    def add(self, layer: BM25Index) -> None:
        counts = np.asarray(layer.df)
        seen = np.flatnonzero(counts)
        vocabulary = layer.vocabulary
        if isinstance(vocabulary, CompactVocabulary):
            ids = vocabulary.ids
            assert isinstance(ids, _CompactIds)
            hashes = np.empty(len(vocabulary), dtype=np.int64)
            hashes[ids.order] = ids.hashes
        else:
            hashes = _hashes_of(vocabulary)
        keys, inverse = np.unique(np.concatenate([self.keys, hashes[seen]]), return_inverse=True)
        df = np.bincount(inverse, weights=np.concatenate([self.df, counts[seen]]), minlength=len(keys))
        self.keys, self.df = keys, df.astype(np.int64)

    def mean_idf(self, passages: int, params: BM25Params) -> float:
        """BM25Okapi's mean IDF over the union, before its floor (as rank-bm25 takes it)."""
        if not len(self.df):
            return 0.0
        return float(_raw_idf(self.df.astype(np.float64), passages, params).mean())


# The shared corpus's term hashes, made once per vocabulary (every server's union starts with it).
_corpus_hashes: weakref.WeakKeyDictionary[Vocabulary, npt.NDArray[np.int64]] = weakref.WeakKeyDictionary()


def _hashes_of(vocabulary: Vocabulary) -> npt.NDArray[np.int64]:
    found = _corpus_hashes.get(vocabulary)
    if found is None or len(found) != len(vocabulary):
        found = _corpus_hashes[vocabulary] = term_hashes(vocabulary.terms)
    return found


class LayeredField:
    """Several BM25 indexes (layers: the shared corpus, a server's documents) searched as one,
    with the statistics of the whole: the number of passages, each term's document frequency and
    the mean length are summed over the layers, so a passage scores exactly as it would in one
    index built over every layer's passages (``tests/test_layers.py`` holds that). A layer's
    postings keep their term frequencies and its passages their lengths, so no layer is rebuilt
    when another is added: a question's weights are computed from them, still only over the
    postings it touches. Passage ids run through the layers in order."""

    _union: _Union

    def __init__(self, layers: Sequence[BM25Index], previous: LayeredField | None = None) -> None:
        self.layers = list(layers)
        self.params = params = self.layers[0].params
        self.offsets = np.cumsum([0] + [layer.size for layer in self.layers])
        self.size = int(self.offsets[-1])
        total_length = sum(layer.avgdl * layer.size for layer in self.layers)
        self.avgdl = total_length / self.size if self.size else 0.0
        self.doc_freq = LayeredCounts([layer.doc_freq for layer in self.layers])
        # Every term of every layer with its summed document frequency, for BM25Okapi's floor (the
        # mean IDF over the whole vocabulary). Grown from the engine before when this one only
        # adds layers to it, so adding a document costs that document's terms.
        mine = {id(layer) for layer in self.layers}
        if previous is not None and {id(layer) for layer in previous.layers} <= mine:
            self._union = previous._union.copy()
            had = {id(layer) for layer in previous.layers}
            for layer in self.layers:
                if id(layer) not in had:
                    self._union.add(layer)
        else:
            self._union = _Union()
            for layer in self.layers:
                self._union.add(layer)
        self._eps_mean = self._union.mean_idf(self.size, params) if params.variant == "okapi" else 0.0

    def _idf(self, df: int) -> float:
        """A term's IDF over every layer (BM25Okapi's floor: epsilon x the union's mean IDF)."""
        idf = float(_raw_idf(float(df), self.size, self.params))
        return self.params.epsilon * self._eps_mean if self.params.variant == "okapi" and idf < 0 else idf

    def score(self, query_terms: Sequence[str] | Mapping[str, float]) -> tuple[IndexArray, FloatArray]:
        """(passage ids across the layers, ascending; scores), as ``BM25Index.score``."""
        found = self._dense(query_terms)
        if found is None:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float64)
        dense, touched, baseline = found
        held = np.zeros(self.size, dtype=bool)
        held[touched] = True
        candidates = np.flatnonzero(held)
        return candidates, dense[candidates] + baseline

    def posting_scores(
        self, query_terms: Sequence[str] | Mapping[str, float]
    ) -> tuple[IndexArray, FloatArray]:
        """As ``BM25Index.posting_scores``: a passage once per query term it holds."""
        found = self._dense(query_terms)
        if found is None:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float64)
        dense, touched, baseline = found
        return touched, dense[touched] + baseline

    def _dense(
        self, query_terms: Sequence[str] | Mapping[str, float]
    ) -> tuple[FloatArray, IndexArray, float] | None:
        """Every passage's score (0 where unmatched), the postings added, and BM25+/L's baseline;
        None when no layer holds a query term. The weights are computed from the layers' term
        frequencies and lengths with the statistics of the whole, then summed by one ``bincount``
        in term order (the sums a per-term loop into a buffer gives)."""
        query: Mapping[str, float] = query_terms if isinstance(query_terms, Mapping) else Counter(query_terms)
        p = self.params
        parts: list[IntArray] = []
        added: list[FloatArray] = []
        baseline = 0.0
        terms = list(query)
        hashes = term_hashes(terms)
        # Each layer's ids for the question's terms, found in one search per layer.
        by_layer = [local_ids(layer.vocabulary, terms, hashes) for layer in self.layers]
        for k, count in enumerate(query.values()):
            found: list[tuple[int, BM25Index, int]] = []
            for i, layer in enumerate(self.layers):
                tid = by_layer[i][k]
                if tid >= 0 and layer.df[tid] > 0:
                    found.append((i, layer, tid))
            if not found:
                continue
            idf = self._idf(sum(int(layer.df[tid]) for _, layer, tid in found))
            if p.variant != "okapi":
                baseline += idf * _baseline_per_term(p) * count
            for i, layer, tid in found:
                start, end = layer.postings.indptr[tid], layer.postings.indptr[tid + 1]
                ids = layer.postings.ids[start:end]
                norm = 1 - p.b + p.b * layer.lengths[ids].astype(np.float64) / (self.avgdl or 1.0)
                weights = _saturation(layer.tf[start:end].astype(np.float64), norm, p) * (idf * count)
                parts.append(ids + int(self.offsets[i]))
                added.append(weights)
        if not parts:
            return None
        touched = np.concatenate(parts)
        weights = np.concatenate(added)
        dense = np.bincount(touched, weights, minlength=self.size).astype(np.float64, copy=False)
        return dense, touched.astype(np.int32, copy=False), baseline

    def top(self, query_terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        return top_k(*self.score(query_terms), k)

    def __contains__(self, term: str) -> bool:
        return term in self.doc_freq
