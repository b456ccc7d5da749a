"""Ranking: two BM25 views of the same passages, combined, built in one pass over the text.

- **passages** (the main field): terms of the passage and its section heading;
- **sentences** (weight ``sentence_weight``): each sentence indexed alone; a passage gains its best
  sentence's score, so the question's words found *together* count for more than the same words
  scattered across a paragraph.

When a question asks *when* or *how many*, passages that hold a date or a quantity gain
``type_boost`` of the best score: the answer to "when" is a passage with a date in it.

**One pass.** Each passage's heading and sentences are tokenised once (``analyzer.token_terms``,
cached per surface form); that single pass yields the term ids of both fields, the five-letter
prefixes (how many passages hold each, for the decision), and how often each term is written
capitalised mid-sentence (the names). Everything after is numpy over flat arrays: no per-passage
Python sets or term lists are kept.

Each field is a ``BM25Index`` whose figures equal rank-bm25's; the weights were chosen by measuring
hit@1, hit@3 and MRR on the public questions and two sets written independently (``docs/ENGINE.md``).
As a third ranking field, prefixes were measured and dropped: a wash on the held-out sets, and one
public question pushed out of the top three; they serve the decision only.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .analyzer import _TOKEN, analyze, normalize, token_terms
from .answers import DATE, QUANTITY, PassageWords
from .index import (
    BM25Index,
    BM25Params,
    Counts,
    FloatArray,
    IntArray,
    LayeredCounts,
    LayeredField,
    Vocabulary,
    distinct_pairs,
    top_k,
)
from .passages import Passage, sentence_spans


@dataclass(frozen=True, slots=True)
class RankingWeights:
    sentence_weight: float = 0.5
    type_boost: float = 0.25
    # Semantic mode only (fusion.py); picked on public data, benchmarks/fusion_pick.py.
    cosine_weight: float = 3.0
    sentence_cosine_weight: float = 0.25


def passage_terms(passage: Passage) -> list[str]:
    """A passage's index terms in order, heading first: what the main field holds (the reference
    the one-pass build is tested against)."""
    return analyze(passage.section) + analyze(passage.text)


_CURRENCY = re.compile(r"[$€£¥%]")  # the parts of DATE and QUANTITY that are not inside one token
_SLASH_DATE = re.compile(r"\b\d{1,2}/\d{1,2}(/\d{2,4})?\b")
_CENTURY = "century"  # "the tenth century" spans two tokens: such passages get the whole DATE regex
DIGIT, UPPER, LOWER = 1, 2, 3  # a token's first character
# The words of answers.DATE and QUANTITY (tests/test_index.py checks the flags against the regexes).
_TYPE_WORDS = frozenset(
    """
    january february march april may june july august september october november december monday
    tuesday wednesday thursday friday saturday sunday yesterday today tomorrow centuries two three
    four five six seven eight nine ten eleven twelve twenty thirty forty fifty sixty seventy eighty
    ninety hundred hundreds thousand thousands million millions billion billions trillion trillions
    dozen dozens half percent
    """.split()
)


@dataclass(slots=True)
class _Surfaces:
    """What each distinct surface token of a corpus is, computed once per distinct token."""

    pointer: IntArray  # surface s's terms: terms[pointer[s]:pointer[s + 1]]
    terms: IntArray
    prefixes: IntArray
    first: npt.NDArray[np.int8]  # DIGIT / UPPER / LOWER / 0
    date: npt.NDArray[np.bool_]  # the token alone matches DATE (a year, a month, "10th")
    quantity: npt.NDArray[np.bool_]  # the token alone matches QUANTITY (a number, "dozen")
    century: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, surfaces: Sequence[str], terms: Vocabulary, prefixes: Vocabulary) -> _Surfaces:
        pointer = [0]
        term_ids: list[int] = []
        prefix_ids: list[int] = []
        first, date, quantity, century = [], [], [], []
        for surface in surfaces:
            for term, prefix in token_terms(surface):
                term_ids.append(terms.id(term))
                prefix_ids.append(prefixes.id(prefix))
            pointer.append(len(term_ids))
            c = surface[0]
            first.append(DIGIT if c.isdigit() else UPPER if c.isupper() else LOWER if c.islower() else 0)
            # A word of letters only can match neither pattern unless it is one of their words.
            typed = not surface.isalpha() or surface.lower() in _TYPE_WORDS
            date.append(typed and DATE.search(surface) is not None)
            quantity.append(typed and QUANTITY.search(surface) is not None)
            century.append(surface.lower() == _CENTURY)
        return cls(
            np.asarray(pointer, dtype=np.int64),
            np.asarray(term_ids, dtype=np.int32),
            np.asarray(prefix_ids, dtype=np.int32),
            np.asarray(first, dtype=np.int8),
            np.asarray(date, dtype=bool),
            np.asarray(quantity, dtype=bool),
            np.asarray(century, dtype=bool),
        )


@dataclass(frozen=True, slots=True)
class ForwardIndex:
    """Each passage's (term id, prefix id) pairs in text order, heading first, and where each of
    its sentences' pairs lie: what ``analyze_pairs`` gives for the heading and each sentence, kept
    from the build so the decision never tokenises a hit's text again."""

    terms: npt.NDArray[np.unsignedinteger[Any]]
    prefixes: npt.NDArray[np.unsignedinteger[Any]]
    passage_start: npt.NDArray[np.int64]  # passage p's pairs: [passage_start[p], passage_start[p + 1])
    sentence_span: npt.NDArray[np.int64]  # sentence s's pairs: [sentence_span[s, 0], sentence_span[s, 1])

    @classmethod
    def of(
        cls,
        term_ids: IntArray,
        term_prefixes: IntArray,
        term_passage: IntArray,
        term_sentence: IntArray,
        sentence_start: npt.NDArray[np.int64],
    ) -> ForwardIndex:
        """From the build's per-occurrence arrays (passage-major: heading, then each sentence)."""
        n, n_sentences = len(sentence_start) - 1, int(sentence_start[-1])
        passage_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_passage, minlength=n), out=passage_start[1:])
        in_sentence = term_sentence >= 0
        heading = np.bincount(term_passage[~in_sentence], minlength=n)
        per_sentence = np.bincount(term_sentence[in_sentence], minlength=n_sentences)
        earlier = np.cumsum(per_sentence) - per_sentence  # pairs of all earlier sentences
        owner = np.repeat(np.arange(n), np.diff(sentence_start))
        first = passage_start[:-1][owner] + heading[owner] + earlier - earlier[sentence_start[:-1][owner]]
        span = np.stack([first, first + per_sentence], axis=1).astype(np.int64)
        # The narrowest unsigned type that holds the ids: two bytes an occurrence each while the
        # vocabularies stay under 65,536 entries.
        return cls(_narrow(term_ids), _narrow(term_prefixes), passage_start, span)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {
            "forward.terms": self.terms,
            "forward.prefixes": self.prefixes,
            "forward.passage_start": self.passage_start,
            "forward.sentence_span": self.sentence_span,
        }


def _narrow(ids: IntArray) -> npt.NDArray[np.unsignedinteger[Any]]:
    kind = np.min_scalar_type(int(ids.max()) if len(ids) else 0)
    narrowed: npt.NDArray[np.unsignedinteger[Any]] = ids.astype(kind)
    return narrowed


def _expand(counts: npt.NDArray[np.int64]) -> tuple[IntArray, npt.NDArray[np.int64]]:
    """For items with ``counts`` children each: every child's item, and its rank within the item."""
    owner = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


class Ranker:
    # A built ranker's fields are BM25Index; a LayeredRanker's combine its layers' (LayeredField).
    passages: BM25Index | LayeredField
    sentences: BM25Index | LayeredField

    def __init__(
        self,
        passages: Sequence[Passage],
        params: BM25Params,
        weights: RankingWeights,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.weights = weights
        self.passages_list = passages
        n = len(passages)

        # 1. Tokens: every passage's heading, then each of its sentences, one segment each. A
        # token is kept as the id of its distinct surface form (the first sight assigns the next
        # id), so the corpus's token strings never all exist at once.
        surface_ids: defaultdict[str, int] = defaultdict()
        surface_ids.default_factory = surface_ids.__len__
        new_id = surface_ids.__getitem__
        surface_of_token = array("i")
        segment_length = array("i")
        segment_owner = array("i")  # the passage of each segment
        segment_sentence = array("i")  # the sentence id of each segment, -1 for a heading
        spans = array("i")  # each sentence's (start, end) in its passage's text
        sentence_owner = array("i")
        for pid, passage in enumerate(passages):
            before = len(surface_of_token)
            surface_of_token.extend(map(new_id, _TOKEN.findall(normalize(passage.section))))
            segment_length.append(len(surface_of_token) - before)
            segment_owner.append(pid)
            segment_sentence.append(-1)
            text = passage.text
            for start, end in sentence_spans(text):
                before = len(surface_of_token)
                surface_of_token.extend(map(new_id, _TOKEN.findall(normalize(text[start:end]))))
                segment_length.append(len(surface_of_token) - before)
                segment_owner.append(pid)
                segment_sentence.append(len(sentence_owner))
                sentence_owner.append(pid)
                spans.extend((start, end))
            if progress and (pid + 1) % 1000 == 0:
                progress(pid + 1, n)
        if progress:
            progress(n, n)

        # 2. Each distinct surface analysed once.
        surface = np.frombuffer(surface_of_token, dtype=np.int32)
        vocabulary, prefix_vocabulary = Vocabulary(), Vocabulary()
        table = _Surfaces.of(list(surface_ids), vocabulary, prefix_vocabulary)
        del surface_ids

        # 3. Tokens -> segments, terms -> tokens (a hashtag is several terms).
        lengths = np.frombuffer(segment_length, dtype=np.int32).astype(np.int64)
        token_segment, token_rank = _expand(lengths)
        per_token = table.pointer[1:][surface] - table.pointer[:-1][surface]
        term_token, term_rank = _expand(per_token)
        at = table.pointer[:-1][surface[term_token]] + term_rank
        term_ids = table.terms[at]
        term_prefixes = table.prefixes[at]
        owner_of_segment = np.frombuffer(segment_owner, dtype=np.int32)
        sentence_of_segment = np.frombuffer(segment_sentence, dtype=np.int32)
        term_segment = token_segment[term_token]
        term_passage = owner_of_segment[term_segment]
        term_sentence = sentence_of_segment[term_segment]
        in_sentence = term_sentence >= 0

        # 4. The two fields. A passage or sentence with no terms holds one empty term, as in
        # rank-bm25 (which divides by a passage's length).
        n_sentences = len(sentence_owner)
        empty_passages = np.flatnonzero(np.bincount(term_passage, minlength=n) == 0).astype(np.int32)
        empty_sentences = np.flatnonzero(
            np.bincount(term_sentence[in_sentence], minlength=n_sentences) == 0
        ).astype(np.int32)
        empty = vocabulary.id("") if len(empty_passages) or len(empty_sentences) else -1
        main_terms = np.concatenate([term_ids, np.full(len(empty_passages), empty, dtype=np.int32)])
        main_owner = np.concatenate([term_passage, empty_passages])
        self.vocabulary, self.prefix_vocabulary = vocabulary, prefix_vocabulary
        self.passages = BM25Index(main_terms, main_owner, n, vocabulary, params)
        self.sentences = BM25Index(
            np.concatenate([term_ids[in_sentence], np.full(len(empty_sentences), empty, dtype=np.int32)]),
            np.concatenate([term_sentence[in_sentence], empty_sentences]),
            n_sentences,
            vocabulary,
            params,
        )
        self.sentence_owner: IntArray = np.frombuffer(sentence_owner, dtype=np.int32).copy()
        self.sentence_start = np.zeros(n + 1, dtype=np.int64)  # passage p's sentences: [start[p], start[p+1])
        np.cumsum(np.bincount(self.sentence_owner, minlength=n), out=self.sentence_start[1:])
        self.sentence_spans = np.frombuffer(spans, dtype=np.int32).reshape(-1, 2).copy()
        # What the decision reads of a hit, so that no hit's text is tokenised at query time.
        self.forward = ForwardIndex.of(
            term_ids, term_prefixes, term_passage, term_sentence, self.sentence_start
        )

        # 5. How many passages hold each prefix (the decision's fallback for a word the stemmer
        # missed), and the names: terms mostly written capitalised mid-sentence, or digits.
        _, prefix_ids, _ = distinct_pairs(term_passage, term_prefixes, len(prefix_vocabulary))
        prefix_df = np.bincount(prefix_ids, minlength=len(prefix_vocabulary))
        self.prefix_doc_freq: Mapping[str, int] = Counts(prefix_vocabulary, prefix_df)
        first = table.first[surface[term_token]]
        mid = token_rank[term_token] > 0
        capital = in_sentence & ((first == DIGIT) | ((first == UPPER) & mid))
        lowered = in_sentence & (first == LOWER)
        self.upper_count = np.bincount(term_ids[capital], minlength=len(vocabulary)).astype(np.int32)
        self.lower_count = np.bincount(term_ids[lowered], minlength=len(vocabulary)).astype(np.int32)
        self.names: set[str] = {
            vocabulary.terms[i] for i in np.flatnonzero(self.upper_count > self.lower_count)
        }

        # 6. Which passages hold a date or a quantity (answers.DATE / QUANTITY over the text):
        # token by token, plus the few patterns that span tokens.
        sentence_token = sentence_of_segment[token_segment] >= 0
        token_passage = owner_of_segment[token_segment]
        self.has_date = np.zeros(n, dtype=bool)
        self.has_quantity = np.zeros(n, dtype=bool)
        self.has_date[token_passage[sentence_token & table.date[surface]]] = True
        self.has_quantity[token_passage[sentence_token & table.quantity[surface]]] = True
        centuries = set(token_passage[sentence_token & table.century[surface]].tolist())
        for pid, passage in enumerate(passages):
            if not self.has_quantity[pid] and _CURRENCY.search(passage.text):
                self.has_quantity[pid] = True
            if not self.has_date[pid] and (
                _SLASH_DATE.search(passage.text) or (pid in centuries and DATE.search(passage.text))
            ):
                self.has_date[pid] = True
        self._buffers = threading.local()

    # -- on disk ---------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the ranker's arrays and vocabularies into ``directory`` (which must not exist):
        ``load`` maps them back in. Written beside, then renamed, so a reader never sees half."""
        tmp = Path(tempfile.mkdtemp(prefix=directory.name + ".", suffix=".tmp", dir=directory.parent))
        try:
            arrays: dict[str, npt.NDArray[Any]] = {
                "sentence_owner": self.sentence_owner,
                "sentence_start": self.sentence_start,
                "sentence_spans": self.sentence_spans,
                "has_date": self.has_date,
                "has_quantity": self.has_quantity,
                "names": np.asarray(sorted(self.vocabulary.ids[t] for t in self.names), dtype=np.int32),
                "upper_count": self.upper_count,
                "lower_count": self.lower_count,
                "prefix_df": np.asarray(
                    [self.prefix_doc_freq.get(p, 0) for p in self.prefix_vocabulary.terms], dtype=np.int64
                ),
            }
            arrays |= self.forward.arrays()
            for field, index in (("passages", self.passages), ("sentences", self.sentences)):
                assert isinstance(index, BM25Index)  # a layered ranker is saved layer by layer
                arrays |= {f"{field}.{name}": array for name, array in index.arrays().items()}
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            # Terms never hold a line break (tokens hold no whitespace): one term a line.
            (tmp / "terms.txt").write_text("\n".join(self.vocabulary.terms), encoding="utf-8")
            (tmp / "prefixes.txt").write_text("\n".join(self.prefix_vocabulary.terms), encoding="utf-8")
            tmp.rename(directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(
        cls, directory: Path, passages: Sequence[Passage], params: BM25Params, weights: RankingWeights
    ) -> Ranker:
        """A ranker from ``save``'s files, the arrays memory-mapped (the OS pages them in as used)."""

        def array(name: str) -> npt.NDArray[Any]:
            loaded: npt.NDArray[Any] = np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            return loaded

        ranker = cls.__new__(cls)
        ranker.weights, ranker.passages_list = weights, passages
        ranker.vocabulary = Vocabulary((directory / "terms.txt").read_text(encoding="utf-8").split("\n"))
        ranker.prefix_vocabulary = Vocabulary(
            (directory / "prefixes.txt").read_text(encoding="utf-8").split("\n")
        )
        fields = ("indptr", "ids", "weights", "tf", "lengths", "idf", "df", "shape", "avgdl")
        ranker.passages = BM25Index.restore(
            {f: array(f"passages.{f}") for f in fields}, ranker.vocabulary, params
        )
        ranker.sentences = BM25Index.restore(
            {f: array(f"sentences.{f}") for f in fields}, ranker.vocabulary, params
        )
        ranker.sentence_owner = array("sentence_owner")
        ranker.sentence_start = array("sentence_start")
        ranker.sentence_spans = array("sentence_spans")
        ranker.has_date, ranker.has_quantity = array("has_date"), array("has_quantity")
        ranker.forward = ForwardIndex(
            *(array(f"forward.{name}") for name in ("terms", "prefixes", "passage_start", "sentence_span"))
        )
        terms = ranker.vocabulary.terms
        ranker.names = {terms[i] for i in array("names").tolist()}
        ranker.upper_count, ranker.lower_count = array("upper_count"), array("lower_count")
        prefix_df = np.asarray(array("prefix_df"))
        ranker.prefix_doc_freq = Counts(ranker.prefix_vocabulary, prefix_df)
        ranker._buffers = threading.local()
        if ranker.passages.size != len(passages) or len(ranker.sentence_start) != len(passages) + 1:
            raise ValueError(f"{directory}: an index of {ranker.passages.size} passages, not {len(passages)}")
        return ranker

    def words(self, pid: int) -> PassageWords:
        """Passage ``pid``'s distinct terms and prefixes, for the decision (``words_of_pairs`` of
        its heading's and text's ``analyze_pairs``), read from the forward index."""
        found = self.forward
        return self._words(found, int(found.passage_start[pid]), int(found.passage_start[pid + 1]))

    def sentence_words(self, pid: int) -> list[tuple[str, PassageWords]]:
        """Passage ``pid``'s sentences (as ``split_sentences`` cuts them) and each one's words
        (``words_of``), read from the forward index."""
        found = self.forward
        first, end = int(self.sentence_start[pid]), int(self.sentence_start[pid + 1])
        texts = self.sentences_of(pid)
        spans = found.sentence_span[first:end].tolist()
        return [(text, self._words(found, a, b)) for text, (a, b) in zip(texts, spans, strict=True)]

    def _words(self, found: ForwardIndex, a: int, b: int) -> PassageWords:
        terms, prefixes = self.vocabulary.terms, self.prefix_vocabulary.terms
        return PassageWords(
            frozenset([terms[i] for i in found.terms[a:b].tolist()]),
            frozenset([prefixes[i] for i in found.prefixes[a:b].tolist()]),
        )

    def sentences_of(self, pid: int) -> list[str]:
        """Passage ``pid``'s sentences, as ``split_sentences`` cuts them."""
        text = self.passages_list[pid].text
        first, end = self.sentence_start[pid], self.sentence_start[pid + 1]
        return [text[a:b] for a, b in self.sentence_spans[first:end].tolist()]

    @property
    def sentence_texts(self) -> list[list[str]]:
        """Every passage's sentences (semantic mode encodes them)."""
        return [self.sentences_of(pid) for pid in range(len(self.passages_list))]

    def score(
        self, terms: Sequence[str] | Mapping[str, float], expects: str | None = None
    ) -> tuple[IntArray, FloatArray]:
        """(passage ids, combined scores) for every passage holding one of the question's ``terms``
        (unordered). Costs the postings of the question's terms in both fields."""
        w = self.weights
        main_ids, scores = self.passages.score(terms)
        # A sentence comes once per query term it holds: the maximum below is the same.
        sent_ids, sent_scores = self.sentences.posting_scores(terms)
        if len(sent_ids):
            # Best sentence per passage: a running maximum into a dense per-thread buffer, read
            # back for the passages that matched, then cleared (a sentence matches only inside a
            # passage that matches).
            best = self._best_buffer()
            owners = self.sentence_owner[sent_ids]
            np.maximum.at(best, owners, sent_scores)
            scores = scores + w.sentence_weight * best[main_ids]
            best[owners] = 0.0
        if expects and w.type_boost and len(scores):
            wanted = self.has_date if expects == "date" else self.has_quantity
            scores = scores + w.type_boost * scores.max() * wanted[main_ids]
        return main_ids, scores

    def _best_buffer(self) -> FloatArray:
        best: FloatArray | None = getattr(self._buffers, "best", None)
        if best is None:
            best = self._buffers.best = np.zeros(self.passages.size, dtype=np.float64)
        return best

    def top(
        self, terms: Sequence[str] | Mapping[str, float], k: int, expects: str | None = None
    ) -> list[tuple[int, float]]:
        return top_k(*self.score(terms, expects), k)


class LayeredRanker(Ranker):
    layers: list[Ranker]

    """Several rankers (layers: the shared corpus, then each of a server's documents) searched as
    one, with the statistics of the whole (``index.LayeredField``). Nothing of a layer is copied
    but the small per-passage flags; passage and sentence ids run through the layers in order."""

    def __init__(self, layers: Sequence[Ranker], previous: LayeredRanker | None = None) -> None:
        # A layered ranker's own layers count one by one: layers never nest.
        self.layers = [
            part
            for layer in layers
            for part in (layer.layers if isinstance(layer, LayeredRanker) else [layer])
        ]
        self.weights = self.layers[0].weights
        self.passages_list = [p for layer in self.layers for p in layer.passages_list]
        before_main = before_sentences = None
        if previous is not None:  # the engine this one grows from: its statistics are extended
            assert isinstance(previous.passages, LayeredField) and isinstance(
                previous.sentences, LayeredField
            )
            before_main, before_sentences = previous.passages, previous.sentences
        main = LayeredField([_built(layer.passages) for layer in self.layers], before_main)
        by_sentence = LayeredField([_built(layer.sentences) for layer in self.layers], before_sentences)
        self.passages, self.sentences = main, by_sentence
        passage_offsets, sentence_offsets = main.offsets, by_sentence.offsets
        self.sentence_owner = np.concatenate(
            [layer.sentence_owner + int(passage_offsets[i]) for i, layer in enumerate(self.layers)]
        ).astype(np.int32)
        self.sentence_start = np.concatenate(
            [layer.sentence_start[:-1] + int(sentence_offsets[i]) for i, layer in enumerate(self.layers)]
            + [np.asarray([sentence_offsets[-1]], dtype=np.int64)]
        )
        self.sentence_spans = np.concatenate([layer.sentence_spans for layer in self.layers])
        self.has_date = np.concatenate([layer.has_date for layer in self.layers])
        self.has_quantity = np.concatenate([layer.has_quantity for layer in self.layers])
        self.prefix_doc_freq = LayeredCounts([layer.prefix_doc_freq for layer in self.layers])
        self.names = LayeredNames(self.layers)  # type: ignore[assignment]
        self._buffers = threading.local()

    def save(self, directory: Path) -> None:
        raise TypeError("a layered ranker is saved layer by layer")

    def _layer_of(self, pid: int) -> tuple[Ranker, int]:
        """The layer holding passage ``pid``, and the passage's id within it."""
        assert isinstance(self.passages, LayeredField)
        offsets = self.passages.offsets
        i = int(np.searchsorted(offsets, pid, side="right")) - 1
        return self.layers[i], pid - int(offsets[i])

    def words(self, pid: int) -> PassageWords:
        layer, local = self._layer_of(pid)
        return layer.words(local)

    def sentence_words(self, pid: int) -> list[tuple[str, PassageWords]]:
        layer, local = self._layer_of(pid)
        return layer.sentence_words(local)


class LayeredNames(AbstractSet[str]):
    """The names of several layers together, decided when asked (a question's few terms): written
    capitalised mid-sentence more often than not, counting every layer."""

    def __init__(self, layers: Sequence[Ranker]) -> None:
        self.layers = layers
        self._known: dict[str, bool] = {}

    def __contains__(self, term: object) -> bool:
        if not isinstance(term, str):
            return False
        found = self._known.get(term)
        if found is None:
            upper = lower = 0
            for layer in self.layers:
                tid = layer.vocabulary.ids.get(term)
                if tid is not None:
                    upper += int(layer.upper_count[tid])
                    lower += int(layer.lower_count[tid])
            found = self._known[term] = upper > lower
        return found

    def __iter__(self) -> Iterator[str]:
        seen = {t for layer in self.layers for t in layer.names}
        seen |= {
            t
            for layer in self.layers
            for t in np.asarray(layer.vocabulary.terms)[np.asarray(layer.upper_count) > 0]
        }
        return (t for t in sorted(seen) if t in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _built(field: BM25Index | LayeredField) -> BM25Index:
    assert isinstance(field, BM25Index), "layers are built rankers"
    return field
