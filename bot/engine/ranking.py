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

import functools
import gc
import itertools
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
from typing import Any, ParamSpec

import numpy as np
import numpy.typing as npt

from .analyzer import _TOKEN, analyze, normalize, normalize_in_place, token_terms
from .answers import DATE, EXACT, PREFIX, QUANTITY, Match, PassageWords, QuestionView
from .index import (
    REMEMBERED_TERMS,
    BM25Index,
    BM25Params,
    CompactVocabulary,
    Counts,
    FloatArray,
    IndexArray,
    IntArray,
    LayeredCounts,
    LayeredField,
    PairBlock,
    Vocabulary,
    local_ids,
    term_hashes,
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


_CURRENCY_CHARS = "$€£¥%"  # the parts of DATE and QUANTITY that are not inside one token
_SLASH_DATE = re.compile(r"\b\d{1,2}/\d{1,2}(/\d{2,4})?\b")
_CENTURY = "century"  # "the tenth century" spans two tokens: such passages get the whole DATE regex
DIGIT, UPPER, LOWER = 1, 2, 3  # a token's first character
P = ParamSpec("P")
_CHUNK = 16384  # passages read per step of a build
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


_FIRST, _IS_DATE, _IS_QUANTITY, _IS_CENTURY = 3, 4, 8, 16  # a token's facts, packed in a small int


def _token_facts(surface: str) -> int:
    """One distinct token's first character (DIGIT / UPPER / LOWER / 0) and whether it alone is a
    date, a quantity or "century", packed in one small int (a build keeps one per distinct token,
    and small ints are shared: no object each)."""
    c = surface[0]
    first = DIGIT if c.isdigit() else UPPER if c.isupper() else LOWER if c.islower() else 0
    # A word of letters only can match neither pattern unless it is one of their words.
    typed = not surface.isalpha() or surface.lower() in _TYPE_WORDS
    return (
        first
        | (_IS_DATE if typed and DATE.search(surface) else 0)
        | (_IS_QUANTITY if typed and QUANTITY.search(surface) else 0)
        | (_IS_CENTURY if surface.lower() == _CENTURY else 0)
    )


class _Words:
    """What each distinct whitespace-separated word of a corpus is (a word is one or more tokens,
    or none: "Musk's," "U.S." "—"), analysed once, on first sight: its terms and prefixes, each
    term's token (its rank in the word and first character), and whether a token of it alone is a
    date, a quantity or "century". A token never holds whitespace, so a text's tokens are its
    words' tokens in order: a corpus is read as word ids, and only distinct words meet the
    tokeniser and the stemmer. Ids are given in order of first sight, terms and prefixes too."""

    def __init__(self, terms: Vocabulary, prefixes: Vocabulary) -> None:
        self.ids: defaultdict[str, int] = defaultdict()
        # A new word takes the next id (a counter, not the dict's __len__: no reference cycle, so
        # the table goes as soon as the build ends, with the cycle collector paused).
        self.ids.default_factory = itertools.count().__next__
        self.terms, self.prefixes = terms, prefixes
        self.analysed = 0  # words [0, analysed) are in the arrays below
        self.pointer = array("q", [0])  # word w's terms: [pointer[w], pointer[w + 1])
        self.tokens = array("i")  # per word: how many tokens
        self.date, self.quantity, self.century = array("b"), array("b"), array("b")
        self.term, self.prefix = array("i"), array("i")  # per term of a word
        self.token_rank = array("i")  # the rank of the term's token in its word
        self.first = array("b")  # DIGIT / UPPER / LOWER / 0: the term's token's first character
        self._token: dict[str, int] = {}  # a distinct token's facts (_token_facts)

    def analyse_new(self) -> None:
        """Analyse the words first seen since the last call."""
        words = list(itertools.islice(reversed(self.ids), len(self.ids) - self.analysed))[::-1]
        known, term_id, prefix_id = self._token, self.terms.id, self.prefixes.id
        for word in words:
            facts = 0
            tokens = _TOKEN.findall(word)
            for rank, surface in enumerate(tokens):
                token = known.get(surface)
                if token is None:
                    token = known[surface] = _token_facts(surface)
                facts |= token
                for term, prefix in token_terms(surface):
                    self.term.append(term_id(term))
                    self.prefix.append(prefix_id(prefix))
                    self.token_rank.append(rank)
                    self.first.append(token & _FIRST)
            self.pointer.append(len(self.term))
            self.tokens.append(len(tokens))
            self.date.append(bool(facts & _IS_DATE))
            self.quantity.append(bool(facts & _IS_QUANTITY))
            self.century.append(bool(facts & _IS_CENTURY))
        self.analysed += len(words)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The tables as numpy arrays (copies: the tables keep growing)."""
        names = ("pointer", "tokens", "date", "quantity", "century", "term", "prefix", "token_rank", "first")
        return {name: np.array(getattr(self, name)) for name in names}


class _Grown:
    """Per-id counts summed over chunks, for an id space that grows from chunk to chunk."""

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.int64)

    def add(self, ids: IntArray, size: int) -> None:
        if len(self.counts) < size:
            self.counts = np.concatenate([self.counts, np.zeros(size - len(self.counts), dtype=np.int64)])
        self.counts += np.bincount(ids, minlength=len(self.counts))


def _distinct_in_block(keys: IntArray, owners: IntArray, first_owner: int, owners_in_block: int) -> PairBlock:
    """Distinct (key, owner) pairs of one chunk, sorted by key then owner, with their counts (one
    in-place sort of packed pairs, not ``np.unique``: this runs three times a chunk). Owners are
    kept as offsets from ``first_owner`` and, like the counts, in 16 bits when they fit: a 1M
    build holds every chunk's pairs until the end."""
    bits = max(owners_in_block, 1).bit_length()
    packed = (keys.astype(np.int64) << bits) | (owners - first_owner)
    packed.sort()
    new = np.ones(len(packed), dtype=bool)
    np.not_equal(packed[1:], packed[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    unique = packed[starts]
    counts = np.diff(starts, append=len(packed))
    return (
        (unique >> bits).astype(np.int32),
        _narrow(unique & ((1 << bits) - 1)),
        _narrow(counts),
        first_owner,
    )


def _narrow(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Non-negative integers in 16 bits when they fit, else 32 (no copy when already so)."""
    fits = not len(values) or int(values.max()) < 1 << 16
    return values.astype(np.uint16 if fits else np.int32, copy=False)


def _gather(parts: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """``np.concatenate(parts)``, emptying ``parts`` as it goes: each part is freed once copied."""
    out = np.empty(sum(len(part) for part in parts), dtype=np.result_type(*parts))
    at = 0
    parts.reverse()
    while parts:
        part = parts.pop()
        out[at : at + len(part)] = part
        at += len(part)
    return out


class IdColumn:
    """Ids appended a chunk at a time to one buffer that grows in place (realloc), so the build
    never holds a copy of the whole: two bytes an id while each chunk's ids fit, else four."""

    def __init__(self) -> None:
        self.buffer = array("H")

    def add(self, ids: npt.NDArray[Any], bound: int) -> None:
        """Append ``ids``, all below ``bound``."""
        if bound > 1 << 16 and self.buffer.typecode == "H":
            wide = array("i")
            wide.frombytes(np.frombuffer(self.buffer, dtype=np.uint16).astype(np.int32).tobytes())
            self.buffer = wide
        self.buffer.frombytes(ids.astype(self._dtype(), copy=False).tobytes())

    def values(self) -> npt.NDArray[Any]:
        return np.frombuffer(self.buffer, dtype=self._dtype())

    def _dtype(self) -> type[np.unsignedinteger[Any]] | type[np.signedinteger[Any]]:
        return np.uint16 if self.buffer.typecode == "H" else np.int32


@dataclass(frozen=True, slots=True)
class ForwardIndex:
    """Each passage's (term id, prefix id) pairs in text order, heading first, and where each of
    its sentences' pairs lie: what ``analyze_pairs`` gives for the heading and each sentence, kept
    from the build so the decision never tokenises a hit's text again."""

    terms: npt.NDArray[Any]  # uint16 while the vocabulary fits (``_narrow``), else int32
    prefixes: npt.NDArray[Any]
    passage_start: npt.NDArray[np.int64]  # passage p's pairs: [passage_start[p], passage_start[p + 1])
    sentence_span: npt.NDArray[np.int64]  # sentence s's pairs: [sentence_span[s, 0], sentence_span[s, 1])

    @classmethod
    def of(
        cls,
        terms: IdColumn,
        prefixes: IdColumn,
        chunks: list[tuple[npt.NDArray[Any], ...]],
        sentence_start: npt.NDArray[np.int64],
    ) -> ForwardIndex:
        """From the build: the term ids and prefix ids of every occurrence, passage-major (heading,
        then each sentence), and per chunk its occurrences per passage, per heading and per
        sentence. Empties ``chunks``: each is freed as it is copied."""
        n = len(sentence_start) - 1
        if not chunks:
            none = _narrow(np.zeros(0, dtype=np.int64))
            return cls(none, none, np.zeros(n + 1, dtype=np.int64), np.zeros((0, 2), dtype=np.int64))
        columns = [list(column) for column in zip(*chunks, strict=True)]
        chunks.clear()
        per_passage, heading, per_sentence = (_gather(column) for column in columns)
        passage_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(per_passage, out=passage_start[1:])
        # A sentence's first pair: every pair of the sentences before it, plus every heading's up
        # to its passage's own (built in place: at 1M passages each temporary is 31 MB).
        span = np.empty((len(per_sentence), 2), dtype=np.int64)
        first = np.cumsum(per_sentence, dtype=np.int64)
        first -= per_sentence
        owner = np.repeat(np.arange(n, dtype=np.int32), np.diff(sentence_start))
        first += np.cumsum(heading, dtype=np.int64)[owner]
        del owner
        span[:, 0] = first
        first += per_sentence
        span[:, 1] = first
        del first
        # Two bytes an occurrence each while the vocabularies stay under 65,536 entries.
        return cls(_narrow(terms.values()), _narrow(prefixes.values()), passage_start, span)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {
            "forward.terms": self.terms,
            "forward.prefixes": self.prefixes,
            "forward.passage_start": self.passage_start,
            "forward.sentence_span": self.sentence_span,
        }


def _expand(counts: npt.NDArray[np.int64]) -> tuple[IntArray, npt.NDArray[np.int64]]:
    """For items with ``counts`` children each: every child's item, and its rank within the item."""
    owner = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def _cyclic_gc_paused(build: Callable[P, None]) -> Callable[P, None]:
    """Run ``build`` with Python's cycle collector paused: a build allocates millions of short-lived
    strings and lists, and each collection walks every passage the process holds (a third of a
    100k build's CPU); nothing a build makes is a cycle. Paused process-wide for those seconds,
    and resumed unless it was already paused."""

    @functools.wraps(build)
    def paused(*args: P.args, **kwargs: P.kwargs) -> None:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            build(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused


class Ranker:
    # A built ranker's fields are BM25Index; a LayeredRanker's combine its layers' (LayeredField).
    passages: BM25Index | LayeredField
    sentences: BM25Index | LayeredField

    @_cyclic_gc_paused
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

        # Passages are read in chunks, and each chunk leaves only its distinct (term, passage) and
        # (term, sentence) pairs and a few counts: the token-level arrays of a 1M-passage corpus
        # never exist at once.
        vocabulary, prefix_vocabulary = Vocabulary(), Vocabulary()
        words = _Words(vocabulary, prefix_vocabulary)
        main_blocks: list[PairBlock] = []
        sentence_blocks: list[PairBlock] = []
        main_lengths, sentence_lengths = np.zeros(n, dtype=np.float64), []
        forward: list[tuple[npt.NDArray[Any], ...]] = []  # per chunk, for ForwardIndex.of
        forward_terms, forward_prefixes = IdColumn(), IdColumn()
        prefix_df, upper, lower = _Grown(), _Grown(), _Grown()
        sentence_counts = array("i")  # per passage, its number of sentences
        spans = array("i")  # each sentence's (start, end) in its passage's text
        self.has_date = np.zeros(n, dtype=bool)
        self.has_quantity = np.zeros(n, dtype=bool)
        headings: dict[str, list[str]] = {}  # a heading's words (passages under it share it)
        first_sentence = 0  # the id of the chunk's first sentence
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            # 1. Words: each passage's heading, then each of its sentences, one segment each.
            word_ids: list[int] = []
            segment_length = array("i")
            new_word = words.ids.__getitem__
            for pid in range(lo, hi):
                passage = passages[pid]
                heading = headings.get(passage.section)
                if heading is None:
                    heading = headings[passage.section] = normalize(passage.section).split()
                word_ids.extend(map(new_word, heading))
                segment_length.append(len(heading))
                text = passage.text
                cuts = sentence_spans(text)
                # Normalised once per passage when that keeps every offset (almost always), so a
                # sentence is a slice of it; else sentence by sentence, as the reference does.
                whole = normalize_in_place(text)
                if whole is not None and whole.isprintable() and "  " not in whole:
                    # Words one space apart: the passage is split once and a sentence's words
                    # counted (text between sentences is only whitespace).
                    word_ids.extend(map(new_word, whole.split()))
                    counts = [whole.count(" ", start, end) + 1 for start, end in cuts]
                else:
                    counts = []
                    for start, end in cuts:
                        sentence_words = (
                            whole[start:end] if whole is not None else normalize(text[start:end])
                        ).split()
                        word_ids.extend(map(new_word, sentence_words))
                        counts.append(len(sentence_words))
                segment_length.extend(counts)
                sentence_counts.append(len(cuts))
                spans.extend(itertools.chain.from_iterable(cuts))
                if progress and (pid + 1) % 1000 == 0:
                    progress(pid + 1, n)
            words.analyse_new()
            table = words.arrays()

            # 2. Words -> segments, terms -> words (a word is zero or more terms).
            word = np.asarray(word_ids, dtype=np.int32)
            del word_ids
            lengths = np.frombuffer(segment_length, dtype=np.int32).astype(np.int64)
            # Each passage is a heading segment, then one segment a sentence.
            per_passage = np.frombuffer(sentence_counts, dtype=np.int32)[lo:hi].astype(np.int64)
            passage_of_segment = np.repeat(np.arange(lo, hi, dtype=np.int32), per_passage + 1)
            sentence_of_segment = np.full(len(passage_of_segment), -1, dtype=np.int32)
            headings_at = np.cumsum(per_passage + 1) - (per_passage + 1)
            is_sentence = np.ones(len(passage_of_segment), dtype=bool)
            is_sentence[headings_at] = False
            chunk_sentences = int(per_passage.sum())
            sentence_of_segment[is_sentence] = np.arange(
                first_sentence, first_sentence + chunk_sentences, dtype=np.int32
            )
            word_segment, _ = _expand(lengths)
            tokens = table["tokens"][word].astype(np.int64)
            # The rank of a word's first token in its segment: tokens of the segment's words before it.
            tokens_before = np.concatenate([[0], np.cumsum(tokens)])
            segment_first_word = np.cumsum(lengths) - lengths
            token_offset = tokens_before[:-1] - tokens_before[segment_first_word][word_segment]
            pointer = table["pointer"]
            term_word, term_rank = _expand(pointer[1:][word] - pointer[:-1][word])
            at = pointer[:-1][word[term_word]] + term_rank
            term_ids = table["term"][at]
            term_segment = word_segment[term_word]
            term_passage = passage_of_segment[term_segment]
            term_sentence = sentence_of_segment[term_segment]
            in_sentence = term_sentence >= 0

            # 3. The two fields' pairs. A passage or sentence with no terms holds one empty term,
            # as in rank-bm25 (which divides by a passage's length): added once the vocabulary
            # is complete.
            main_blocks.append(_distinct_in_block(term_ids, term_passage, lo, hi - lo))
            main_lengths[lo:hi] = np.bincount(term_passage - lo, minlength=hi - lo)
            sentence_blocks.append(
                _distinct_in_block(
                    term_ids[in_sentence], term_sentence[in_sentence], first_sentence, chunk_sentences
                )
            )
            sentence_lengths.append(
                np.bincount(term_sentence[in_sentence] - first_sentence, minlength=chunk_sentences).astype(
                    np.float64
                )
            )
            # Held until the corpus is read: ids in 16 bits while the vocabularies so far fit.
            forward_terms.add(term_ids, len(vocabulary))
            forward_prefixes.add(table["prefix"][at], len(prefix_vocabulary))
            forward.append(
                (
                    np.bincount(term_passage - lo, minlength=hi - lo).astype(np.int32),
                    np.bincount(term_passage[~in_sentence] - lo, minlength=hi - lo).astype(np.int32),
                    np.bincount(
                        term_sentence[in_sentence] - first_sentence, minlength=chunk_sentences
                    ).astype(np.int32),
                )
            )
            first_sentence += chunk_sentences

            # 4. How many passages hold each prefix (the decision's fallback for a word the
            # stemmer missed), and the names: terms mostly written capitalised mid-sentence, or
            # digits.
            prefix_ids, _, _, _ = _distinct_in_block(table["prefix"][at], term_passage, lo, hi - lo)
            prefix_df.add(prefix_ids, len(prefix_vocabulary))
            first = table["first"][at]
            mid = (token_offset[term_word] + table["token_rank"][at]) > 0
            capital = in_sentence & ((first == DIGIT) | ((first == UPPER) & mid))
            upper.add(term_ids[capital], len(vocabulary))
            lower.add(term_ids[in_sentence & (first == LOWER)], len(vocabulary))

            # 5. Which passages hold a date or a quantity (answers.DATE / QUANTITY over the
            # text): word by word, plus the few patterns that span tokens.
            in_sentence_word = sentence_of_segment[word_segment] >= 0
            word_passage = passage_of_segment[word_segment]
            self.has_date[word_passage[in_sentence_word & table["date"][word].astype(bool)]] = True
            self.has_quantity[word_passage[in_sentence_word & table["quantity"][word].astype(bool)]] = True
            centuries = set(word_passage[in_sentence_word & table["century"][word].astype(bool)].tolist())
            for pid in range(lo, hi):
                text = passages[pid].text
                if not self.has_quantity[pid] and any(c in text for c in _CURRENCY_CHARS):
                    self.has_quantity[pid] = True
                if not self.has_date[pid] and (
                    ("/" in text and _SLASH_DATE.search(text)) or (pid in centuries and DATE.search(text))
                ):
                    self.has_date[pid] = True
        if progress:
            progress(n, n)

        # 6. The empty term (last in the vocabulary, so last in the postings), then the fields.
        all_sentence_lengths = np.concatenate(sentence_lengths) if sentence_lengths else np.zeros(0)
        del sentence_lengths
        empty_passages = np.flatnonzero(main_lengths == 0).astype(np.int32)
        empty_sentences = np.flatnonzero(all_sentence_lengths == 0).astype(np.int32)
        if len(empty_passages) or len(empty_sentences):
            empty = vocabulary.id("")
            ones = np.ones
            main_blocks.append(
                (
                    np.full(len(empty_passages), empty, dtype=np.int32),
                    empty_passages,
                    ones(len(empty_passages), dtype=np.int64),
                    0,
                )
            )
            sentence_blocks.append(
                (
                    np.full(len(empty_sentences), empty, dtype=np.int32),
                    empty_sentences,
                    ones(len(empty_sentences), dtype=np.int64),
                    0,
                )
            )
            main_lengths[empty_passages] = 1
            all_sentence_lengths[empty_sentences] = 1
        self.vocabulary, self.prefix_vocabulary = vocabulary, prefix_vocabulary
        self.passages = BM25Index.of_blocks(main_blocks, main_lengths, vocabulary, params)
        self.sentences = BM25Index.of_blocks(sentence_blocks, all_sentence_lengths, vocabulary, params)
        self.sentence_owner: IntArray = np.repeat(
            np.arange(n, dtype=np.int32), np.frombuffer(sentence_counts, dtype=np.int32)
        )
        self.sentence_start = np.zeros(n + 1, dtype=np.int64)  # passage p's sentences: [start[p], start[p+1])
        np.cumsum(np.bincount(self.sentence_owner, minlength=n), out=self.sentence_start[1:])
        self.sentence_spans = np.frombuffer(spans, dtype=np.int32).reshape(-1, 2).copy()
        # What the decision reads of a hit, so that no hit's text is tokenised at query time.
        self.forward = ForwardIndex.of(forward_terms, forward_prefixes, forward, self.sentence_start)
        self.prefix_doc_freq: Mapping[str, int] = Counts(prefix_vocabulary, prefix_df.counts)
        upper.add(np.zeros(0, dtype=np.int32), len(vocabulary))
        lower.add(np.zeros(0, dtype=np.int32), len(vocabulary))
        self.upper_count = upper.counts.astype(np.int32)
        self.lower_count = lower.counts.astype(np.int32)
        self.names: set[str] = {
            vocabulary.terms[i] for i in np.flatnonzero(self.upper_count > self.lower_count)
        }
        self._buffers = threading.local()
        self._posting_owner: IntArray | None = None  # after the build's own arrays are freed

    # -- on disk ---------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the ranker's arrays and vocabularies into ``directory`` (which must not exist):
        ``load`` maps them back in. Written beside, then renamed, so a reader never sees half."""
        tmp = Path(tempfile.mkdtemp(prefix=directory.name + ".", suffix=".tmp", dir=directory.parent))
        try:
            arrays: dict[str, npt.NDArray[Any]] = {
                "sentence_owner": self.sentence_owner,
                "posting_owner": self.posting_owner,
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
        ranker._posting_owner = array("posting_owner")
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

    def matches(self, q: QuestionView, pids: Sequence[int]) -> list[tuple[Match, list[tuple[str, Match]]]]:
        """What each of passages ``pids`` and each of its sentences hold of the question's words:
        the same as ``Match.of`` over ``words`` and ``sentence_words``, found by comparing ids in
        the forward index, every hit at once (sets of strings cost more than the rest of a hit)."""
        term_ids, prefix_ids = self._question_ids(q)
        found, sentence_start = self.forward, self.sentence_start
        ranges = [
            (
                int(found.passage_start[p]),
                int(found.passage_start[p + 1]),
                int(sentence_start[p]),
                int(sentence_start[p + 1]),
            )
            for p in pids
        ]
        # The hits' pairs one after another; for each question word, how many of the first i are
        # it (row 0) or share its prefix (row 1): a span holds the word where the count rises.
        terms = np.concatenate([found.terms[a:b] for a, b, _, _ in ranges])
        prefixes = np.concatenate([found.prefixes[a:b] for a, b, _, _ in ranges])
        counts = np.zeros((2, len(terms) + 1, len(q.terms)), dtype=np.int32)
        np.cumsum(terms[:, None] == term_ids, axis=0, dtype=np.int32, out=counts[0, 1:])
        np.cumsum(prefixes[:, None] == prefix_ids, axis=0, dtype=np.int32, out=counts[1, 1:])
        spans, at = [], 0  # per hit, its whole passage, then each sentence, moved to where it now lies
        for a, b, first, end in ranges:
            spans += [np.asarray([[at, at + b - a]]), found.sentence_span[first:end] - (a - at)]
            at += b - a
        span = np.concatenate(spans)
        exact, prefix = counts[:, span[:, 1]] > counts[:, span[:, 0]]
        held = np.where(exact, EXACT, np.where(prefix, PREFIX, 0)).tolist()
        out, row = [], 0
        for pid, (a, b, first, end) in zip(pids, ranges, strict=True):
            words = self._words(found, a, b).terms if q.expects_name else frozenset()
            texts = self.sentences_of(pid)
            out.append(
                (
                    Match(held[row], words),
                    [
                        (t, Match(h))
                        for t, h in zip(texts, held[row + 1 : row + 1 + end - first], strict=True)
                    ],
                )
            )
            row += 1 + end - first
        return out

    def _question_ids(self, q: QuestionView) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The ids of the question's terms and of their prefixes here (-1: not in this layer)."""
        found = q.ids.get(self)
        if found is None:
            prefixes = [q.prefixes[t] for t in q.terms]
            terms = local_ids(self.vocabulary, q.terms, term_hashes(q.terms))
            prefix_ids = local_ids(self.prefix_vocabulary, prefixes, term_hashes(prefixes))
            found = q.ids[self] = (np.asarray(terms, dtype=np.int64), np.asarray(prefix_ids, dtype=np.int64))
        return found

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
    ) -> tuple[IndexArray, FloatArray]:
        """(passage ids, combined scores) for every passage holding one of the question's ``terms``
        (unordered). Costs the postings of the question's terms in both fields."""
        w = self.weights
        main_ids, scores = self.passages.score(terms)
        # A sentence comes once per query term it holds: the maximum below is the same.
        sent_ids, sent_scores = self.sentences.posting_scores(terms)
        if len(sent_ids):
            # Best sentence per passage: a running maximum into a dense per-thread buffer, read
            # back for the passages that matched, then cleared (a sentence matches only inside a
            # passage that matches, so clearing the matched passages clears every owner: sorted
            # ids, and fewer than the sentence postings).
            best = self._best_buffer()
            np.maximum.at(best, self._owners(terms, sent_ids), sent_scores)
            bonus = best[main_ids]
            best[main_ids] = 0.0
            bonus *= w.sentence_weight
            scores = bonus + scores  # in place of scores + weight * best: the same sums
        if expects and w.type_boost and len(scores):
            wanted = self.has_date if expects == "date" else self.has_quantity
            scores = scores + w.type_boost * scores.max() * wanted[main_ids]
        return main_ids, scores

    @property
    def posting_owner(self) -> IntArray:
        """Each sentence posting's passage, in posting order (``posting_owners``). Made on first
        use, not in the build: the engine asks for it once the build's arrays are freed, so the
        build's peak does not grow by it (140 MB at 1M passages)."""
        found = self._posting_owner
        if found is None:
            assert isinstance(self.sentences, BM25Index)
            found = self._posting_owner = posting_owners(self.sentence_owner, self.sentences.postings.ids)
        return found

    def _owners(self, terms: Sequence[str] | Mapping[str, float], sent_ids: IndexArray) -> IntArray:
        """The passage of each of the sentence postings ``posting_scores`` touched."""
        assert isinstance(self.sentences, BM25Index)
        return self.sentences.along_postings(self.posting_owner, terms)

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

    def _owners(self, terms: Sequence[str] | Mapping[str, float], sent_ids: IndexArray) -> IntArray:
        # The layered field walks its layers' postings term by term: read by sentence id.
        return self.sentence_owner[sent_ids]

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

    def matches(self, q: QuestionView, pids: Sequence[int]) -> list[tuple[Match, list[tuple[str, Match]]]]:
        by_layer: dict[Ranker, list[tuple[int, int]]] = {}  # layer -> (place in pids, local id)
        for i, pid in enumerate(pids):
            layer, local = self._layer_of(pid)
            by_layer.setdefault(layer, []).append((i, local))
        found: dict[int, tuple[Match, list[tuple[str, Match]]]] = {}
        for layer, places in by_layer.items():
            matches = layer.matches(q, [local for _, local in places])
            found.update(zip((i for i, _ in places), matches, strict=True))
        return [found[i] for i in range(len(pids))]


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
            if len(self._known) >= REMEMBERED_TERMS:  # questions bring any words: kept bounded
                self._known.clear()
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
            layer.vocabulary.terms[i]
            for layer in self.layers
            for i in np.flatnonzero(np.asarray(layer.upper_count) > 0).tolist()
        }
        return (t for t in sorted(seen) if t in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def compact_layer(ranker: Ranker) -> None:
    """Make a server document's ranker lighter to keep, once built or loaded: its vocabularies
    become ``index.CompactVocabulary`` (no dict of terms), in place, so everything that reads
    them (its fields, counts and decider) reads the compact ones. It is then a layer only: nothing
    can add terms to it."""
    if isinstance(ranker.vocabulary, CompactVocabulary):
        return
    terms, prefixes = CompactVocabulary(ranker.vocabulary), CompactVocabulary(ranker.prefix_vocabulary)
    ranker.vocabulary, ranker.prefix_vocabulary = terms, prefixes
    for field in (ranker.passages, ranker.sentences):
        assert isinstance(field, BM25Index), "layers are built rankers"
        field.vocabulary = terms
        assert isinstance(field.doc_freq, Counts)
        field.doc_freq.vocabulary = terms
    assert isinstance(ranker.prefix_doc_freq, Counts)
    ranker.prefix_doc_freq.vocabulary = prefixes


def posting_owners(sentence_owner: IntArray, sentence_ids: npt.NDArray[Any]) -> IntArray:
    """Each sentence posting's passage, in posting order: the best sentence per passage reads it as
    slices, not at random by sentence id (at 1M passages 0.4 ms a dense question, not 6). Taken a
    million postings at a time: no int64 copy of all the ids (35M postings at 1M passages)."""
    out = np.empty(len(sentence_ids), dtype=np.int32)
    step = 1 << 20
    for a in range(0, len(sentence_ids), step):
        np.take(sentence_owner, sentence_ids[a : a + step], out=out[a : a + step])
    return out


def _built(field: BM25Index | LayeredField) -> BM25Index:
    assert isinstance(field, BM25Index), "layers are built rankers"
    return field
