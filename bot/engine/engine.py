"""The engine: documents in, answers out. The CLI and the Discord bot both use only this."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .answers import (
    Answer,
    Decider,
    Hit,
    QuestionView,
    best_sentence,
    best_sentence_words,
)
from .decision import DecisionModel, shipped_model
from .documents import Document, LoadError, load_corpus
from .fusion import RERANK_ABOVE, RERANK_CANDIDATES, LayeredVectors, PassageVectors, fused_top
from .index import BM25Params, top_k
from .memory import release_freed_memory
from .passages import MAX_WORDS, Passage, make_passages, split_sentences
from .ranking import LayeredRanker, Ranker, RankingWeights, compact_layer
from .semantic import (
    Availability,
    SemanticUnavailable,
    VectorCache,
    default_cache_dir,
    shared_embedder,
)
from .semantic import available as semantic_available

log = logging.getLogger(__name__)

INDEX_FORMAT = 1  # the on-disk index's layout (ranking.Ranker.save)
INDEX_CACHE_ABOVE = 2000  # passages: a smaller corpus builds about as fast as it reads back
# Characters: a server document this long (about 500 passages, 0.3 s of indexing) is indexed in a
# worker process; below it the process would cost more than it saves.
BUILD_APART_ABOVE = 200_000
WORKER_TIMEOUT = 600  # seconds: a worker indexing a server's documents that takes longer is stopped
MAX_QUESTION_CHARS = 2000  # longer questions are read up to here; nobody asks in more
# A follow-up's context (the question and answer it follows) weighs this much of the question itself,
# in BM25 (all its terms together) and in the question's vector, so "and what did he reply?" finds
# the passage the conversation is about, while a follow-up with words of its own goes where they do.
CONTEXT_WEIGHT = 0.15


@dataclass(frozen=True, slots=True)
class EngineStats:
    documents: int
    passages: int
    vocabulary: int
    build_seconds: float
    load_errors: list[str]
    semantic: str  # which mode would run: "semantic: available (model …)" or "off: why"

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "passages": self.passages,
            "vocabulary": self.vocabulary,
            "build_seconds": round(self.build_seconds, 4),
            "load_errors": self.load_errors,
            "semantic": self.semantic,
        }


class Engine:
    """An immutable index over documents. Build it once; ask it from any thread.

    Semantic mode (the default when the model is installed and ``ARTICLEBOT_SEMANTIC`` is not off):
    passage and sentence vectors come from the cache under ``vector_cache`` (default
    ``ARTICLEBOT_VECTOR_CACHE``) or are encoded, and ``ask`` fuses BM25 with the question's cosines
    (``fusion.py``). With ``defer_vectors`` the engine is built lexical and searched lexically until
    :meth:`load_vectors` (from any thread) has the vectors; they then take effect at once, for the
    next question. ``semantic=False`` or no model: the lexical engine, exactly as without the stage.
    """

    def __init__(
        self,
        documents: Sequence[Document],
        *,
        params: BM25Params | None = None,
        weights: RankingWeights | None = None,
        max_words: int = MAX_WORDS,
        load_errors: Iterable[LoadError] = (),
        progress: Callable[[int, int], None] | None = None,
        semantic: bool | None = None,
        vector_cache: str | Path | None = None,
        defer_vectors: bool = False,
        decision: DecisionModel | None = None,
        rerank_above: int = RERANK_ABOVE,
        rerank_candidates: int = RERANK_CANDIDATES,
        encode_progress: Callable[[int, int], None] | None = None,
        index_cache_above: int = INDEX_CACHE_ABOVE,
    ) -> None:
        started = time.perf_counter()
        self.documents = list(documents)
        self.load_errors = list(load_errors)
        self.params = params or BM25Params()
        self.weights = weights or RankingWeights()
        self.max_words = max_words
        self.passages: list[Passage] = [p for d in self.documents for p in make_passages(d, max_words)]
        # A heading is indexed with every passage under it, never returned on its own.
        self.vector_cache = Path(vector_cache) if vector_cache is not None else default_cache_dir()
        self.index_cache_above = index_cache_above
        self.index_from_disk = False  # whether the ranker was read from the on-disk cache
        self.decision = decision or shipped_model()
        self.rerank_above = rerank_above  # past this many passages, rerank BM25's best candidates
        self.rerank_candidates = rerank_candidates
        self.semantic = semantic
        self._encode_progress = encode_progress  # (done, total) while texts are encoded
        state = (
            semantic_available() if semantic is not False else Availability(False, "lexical engine asked for")
        )
        self._serve(
            self._ranker(progress), None if state.ok else state.describe(), [self], defer_vectors, started
        )

    def _serve(
        self, ranker: Ranker, off: str | None, parts: list[Engine], defer_vectors: bool, started: float
    ) -> None:
        """What a built and a layered engine both hold once their passages are ranked: the
        decision's statistics, the passage lookup, the vectors' state."""
        self.ranker = ranker
        self.index = ranker.passages
        self.decider = Decider(self.index.doc_freq, ranker.prefix_doc_freq, len(self.passages), ranker.names)
        self._by_id = {p.id: i for i, p in enumerate(self.passages)}
        self.vectors: PassageVectors | LayeredVectors | None = None  # set by load_vectors: then ask fuses
        self.vectors_seconds = 0.0
        self._vectors_lock = threading.Lock()
        self._off = off
        self.parts = parts  # the layers a server's engine is made of (with_documents)
        if not defer_vectors:
            self.load_vectors()
        self.build_seconds = time.perf_counter() - started

    @classmethod
    def _layered(cls, parts: list[Engine], *, defer_vectors: bool, previous: Engine | None = None) -> Engine:
        """One engine over several engines' documents (layers), sharing their indexes and vectors:
        searched with the statistics of the whole, as one index over all of them would be."""
        started = time.perf_counter()
        first = parts[0]
        engine = cls.__new__(cls)
        engine.documents = [d for part in parts for d in part.documents]
        engine.load_errors = []
        engine.params, engine.weights, engine.max_words = first.params, first.weights, first.max_words
        engine.passages = [p for part in parts for p in part.passages]
        engine.vector_cache, engine.index_cache_above = first.vector_cache, first.index_cache_above
        engine.index_from_disk = all(part.index_from_disk for part in parts)
        grows = (
            previous.ranker if previous is not None and isinstance(previous.ranker, LayeredRanker) else None
        )
        engine.decision = first.decision
        engine.rerank_above, engine.rerank_candidates = first.rerank_above, first.rerank_candidates
        engine.semantic = first.semantic
        engine._encode_progress = None
        off = next((part._off for part in parts if part._off), None)
        engine._serve(
            LayeredRanker([part.ranker for part in parts], grows), off, parts, defer_vectors, started
        )
        return engine

    @property
    def cache_name(self) -> str:
        """The vector cache file's name: one per set of documents (a server's engine has its own)."""
        ids = "\0".join(d.id for d in self.documents)
        first = self.documents[0].id[:40] if self.documents else "empty"
        return f"engine-{first}-{hashlib.sha256(ids.encode()).hexdigest()[:12]}"

    def _ranker(self, progress: Callable[[int, int], None] | None) -> Ranker:
        """The index: from the cache folder when this exact set of passages was indexed before by
        this exact code (a large corpus reads in far less time than it builds), else built (and,
        when large, saved there). Any trouble with the cache means "build": never a failed start."""
        large = len(self.passages) >= self.index_cache_above
        directory = self.vector_cache / f"index-{self.cache_name}-{self._index_key()}"
        if large and directory.is_dir():
            try:
                ranker = Ranker.load(directory, self.passages, self.params, self.weights)
                self.index_from_disk = True
                return ranker
            except (OSError, ValueError, KeyError) as exc:
                log.warning("index cache %s unreadable (%s); building again", directory, exc)
                shutil.rmtree(directory, ignore_errors=True)
        ranker = Ranker(self.passages, self.params, self.weights, progress=progress)
        release_freed_memory()  # the build's short-lived arrays and strings
        _ = ranker.posting_owner  # made now that they are freed, not at the first question
        if large:
            try:
                directory.parent.mkdir(parents=True, exist_ok=True)
                for stale in directory.parent.glob(f"index-{self.cache_name}-*"):
                    if stale != directory and stale.is_dir():
                        shutil.rmtree(stale, ignore_errors=True)  # an older version of these documents
                ranker.save(directory)
            except OSError as exc:
                log.warning("index cache %s not written (%s)", directory, exc)
        return ranker

    def _index_key(self) -> str:
        """What the on-disk index depends on: the code that builds it, its parameters, and every
        passage (an id hashes the passage's document, section and text)."""
        digest = hashlib.sha256(f"{INDEX_FORMAT}\0{_index_code()}\0{self.params!r}\0".encode())
        for passage in self.passages:
            digest.update(passage.id.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:16]

    def load_vectors(self) -> bool:
        """Read or encode the vectors; from then on ``ask`` runs in semantic mode. False when the
        engine stays lexical (switched off, or the model cannot be loaded). Safe from any thread."""
        with self._vectors_lock:
            if self.vectors is not None or self._off:
                return self.vectors is not None
            started = time.perf_counter()
            if len(self.parts) > 1:  # layers: each reads or encodes its own (the corpus's once)
                for part in self.parts:
                    if not part.load_vectors():
                        self._off = part._off
                        return False
                self.vectors = LayeredVectors(
                    [part.vectors for part in self.parts if isinstance(part.vectors, PassageVectors)]
                )
                self.vectors_seconds = time.perf_counter() - started
                return True
            try:
                embedder = shared_embedder()
            except SemanticUnavailable as exc:
                self._off = str(exc)
                log.warning("semantic stage not loaded, engine stays lexical: %s", exc)
                return False
            found = VectorCache(embedder, self.vector_cache).vectors(
                self.cache_name, self._vector_texts(), progress=self._encode_progress
            )
            n = len(self.passages)
            counts = np.diff(self.ranker.sentence_start).tolist()
            self.vectors = PassageVectors.of(embedder, found[:n], found[n:], counts)
            self.vectors_seconds = time.perf_counter() - started
            return True

    @property
    def mode(self) -> str:
        """Which mode runs, in one line: for `index`, `stats()` and `/admin status`."""
        if self.vectors is not None:
            return Availability(True, "").describe()
        if self._off:
            return self._off
        return "semantic: vectors being encoded, lexical until then"

    def _vector_texts(self) -> list[str]:
        """The texts the vectors are rows of, in row order: every passage, then every sentence."""
        sentences = [s for group in self.ranker.sentence_texts for s in group]
        return [p.text for p in self.passages] + sentences

    @classmethod
    def from_path(cls, path: str | Path, **kwargs: Any) -> Engine:
        """Load a corpus folder or one file. Unreadable files are listed in ``load_errors``."""
        documents, errors = load_corpus(path)
        return cls(documents, load_errors=errors, **kwargs)

    def with_documents(
        self,
        extra: Sequence[Document],
        *,
        defer_vectors: bool = False,
        previous: Engine | None = None,
        process_above: int = BUILD_APART_ABOVE,
    ) -> Engine:
        """An engine over these documents plus ``extra`` (a server's own documents), as layers:
        this engine's index and vectors are shared, not copied, and each extra document is a layer
        of its own, built (and its vectors read or encoded) alone. ``previous``: the server's
        engine before a change; its layers for documents that did not change are reused, so adding
        or removing a document costs that document, not the corpus or the server's other ones.
        ``process_above``: documents of this many characters or more are indexed in a worker process."""
        if not extra:
            return self
        reusable = {part._layer_key: part for part in (previous.parts[1:] if previous is not None else [])}
        keys = [_document_key(d) for d in extra]
        # A large new document's index is built in a worker process, saved to the index cache and
        # mapped here: a build in this process holds the interpreter lock for seconds, and every
        # other server's questions wait on it.
        apart = [
            (key, d)
            for key, d in zip(keys, extra, strict=True)
            if key not in reusable and _characters(d) >= process_above
        ]
        built_apart = self._build_apart(apart) if apart else set()
        parts = [self]
        for key, document in zip(keys, extra, strict=True):
            part = reusable.get(key)
            if part is None:
                part = Engine(
                    [document],
                    params=self.params,
                    weights=self.weights,
                    max_words=self.max_words,
                    semantic=self.semantic,
                    vector_cache=self.vector_cache,
                    defer_vectors=True,
                    decision=self.decision,
                    rerank_above=self.rerank_above,
                    rerank_candidates=self.rerank_candidates,
                    # what the worker saved is read back whatever its size
                    index_cache_above=0 if key in built_apart else self.index_cache_above,
                )
                compact_layer(part.ranker)  # a layer from now on: its vocabularies without dicts
            parts.append(part)
        return Engine._layered(parts, defer_vectors=defer_vectors, previous=previous)

    def _build_apart(self, documents: list[tuple[str, Document]]) -> set[str]:
        """Index ``documents`` (with their keys) in one worker process, each saved into the index
        cache; the keys of those it saved. Any trouble there means they are built here instead."""
        job = pickle.dumps(
            ([d for _, d in documents], self.params, self.weights, self.max_words, self.vector_cache)
        )
        # A fresh interpreter that imports the engine only: multiprocessing's "spawn" would run
        # the main script's top level again, and a fork would copy a threaded process.
        package_root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        try:
            done = subprocess.run(
                [sys.executable, "-c", "from bot.engine.engine import _index_in_worker; _index_in_worker()"],
                input=job,
                env=env,
                capture_output=True,
                check=True,
                timeout=WORKER_TIMEOUT,
            )
        except (OSError, subprocess.SubprocessError) as exc:  # a slower add, never a failed one
            detail = (
                exc.stderr.decode(errors="replace")[-500:]
                if isinstance(exc, subprocess.CalledProcessError)
                else ""
            )
            log.warning(
                "indexing %d documents in a worker failed (%s %s); indexing here", len(documents), exc, detail
            )
            return set()
        if done.stderr.strip():  # its warnings (an index it could not save is then built here)
            log.warning("index worker: %s", done.stderr.decode(errors="replace").strip()[-500:])
        return {key for key, _ in documents}

    @property
    def _layer_key(self) -> str:
        return "\0".join(_document_key(d) for d in self.documents)

    def passage(self, passage_id: str) -> Passage | None:
        i = self._by_id.get(passage_id)
        return None if i is None else self.passages[i]

    def ask(
        self,
        question: str,
        k: int = 3,
        *,
        strictness: float = 0.5,
        offset: int = 0,
        context: str | None = None,
    ) -> Answer:
        """Answer ``question`` with up to ``k`` passages (skipping the first ``offset``, for *More*).

        Each hit's confidence is the decision model's probability that it answers the question
        (``decision.py``); the question is answered when the top hit's reaches the threshold
        ``strictness`` sets.

        ``context``: what a follow-up follows (the earlier question and its answer). Its words are
        searched with the question's, at ``CONTEXT_WEIGHT``; the decision stays the question's own
        unless none of its words is in the documents ("and what did he reply?"), and then reads
        the context too. The answer sentence is one the context does not already hold, if any."""
        question = clip_question(question)
        own = QuestionView.of(question, self.decider)
        merged = with_context(own, QuestionView.of(clip_question(context), self.decider)) if context else own
        leans_on_context = context is not None and not own.unknown_names and not self.decider.knows_any(own)
        view = merged if leans_on_context else own  # what the decision reads
        if not view.terms:
            empty = "The question is empty." if not question else "The question has no words to search for."
            return Answer(question, False, empty, None, [], frozenset())
        terms = frozenset(view.terms)
        if not self.decider.knows_any(view):  # a fact, not a guess: nothing to rank by
            return Answer(question, False, "Nothing in the documents matches these words.", None, [], terms)
        query = query_weights(own, merged, self.decider) if context else own.query
        vectors = self.vectors  # read once: vectors that arrive mid-question wait for the next one
        cosines = None
        want = max(2, offset + k)  # the runner-up too: a hit's margin is over the best other hit
        if vectors is None:
            ranked = self.ranker.top(query, want, view.expects)
        else:
            encoded = vectors.embedder.encode_question(question)
            if context:
                encoded = encoded + CONTEXT_WEIGHT * vectors.embedder.encode_question(context)
                encoded = encoded / max(float(np.linalg.norm(encoded)), 1e-12)
            ids, bm25 = self.ranker.score(query, view.expects)
            among = None
            if len(self.passages) > self.rerank_above:  # a large corpus: rerank BM25's best
                among = np.asarray([i for i, _ in top_k(ids, bm25, self.rerank_candidates)], dtype=np.int32)
            cosines = vectors.cosines(encoded, among)
            ranked = fused_top(ids, bm25, cosines.fused, self.weights.cosine_weight, want, among)
        model = self.decision.model(semantic=cosines is not None)

        ranks = [0, *range(max(offset, 1), min(offset + k, len(ranked)))]  # the top, and the hits shown
        matches = dict(zip(ranks, self.ranker.matches(merged, [ranked[r][0] for r in ranks]), strict=True))

        def hit(rank: int) -> tuple[Hit, str]:
            pid, score = ranked[rank]
            # The best other hit: the top for every hit but the top; nothing for a lone match.
            other = ranked[0][1] if rank > 0 else (ranked[1][1] if len(ranked) > 1 else 0.0)
            top_score = ranked[0][1]
            margin = (score - other) / top_score if top_score > 0 else 0.0
            passage = self.passages[pid]
            sentence_cosines = None
            if cosines is not None and vectors is not None:
                first, end = vectors.start[pid], vectors.start[pid + 1]
                sentence_cosines = cosines.sentence[first:end].tolist()
            weight = self.weights.sentence_cosine_weight if sentence_cosines else 0.0
            # The decision reads the sentence that best holds the question (with its context)...
            held, sentences_held = matches[rank]
            evidence, evidence_held = best_sentence_words(
                passage, merged, self.decider, sentence_cosines, weight, sentences_held
            )
            sentence = evidence
            if context:  # ...the answer is one the answer it follows did not say
                rest, rest_cosines = without_sentences_in(passage, context, sentence_cosines)
                if rest is not passage:
                    rest_weight = self.weights.sentence_cosine_weight if rest_cosines else 0.0
                    sentence = best_sentence(rest, merged, self.decider, rest_cosines, rest_weight)
            pair = (0.0, 0.0)
            if cosines is not None:
                pair = (float(cosines.passage[pid]), float(cosines.best_sentence[pid]))
            if view is not merged:  # a follow-up decided by its own words: the first of merged's
                held, evidence_held = held.first(len(view.terms)), evidence_held.first(len(view.terms))
            signals = self.decider.signals(
                view,
                held,
                evidence_held,
                margin,
                pair,
                has_date=bool(self.ranker.has_date[pid]),
                has_quantity=bool(self.ranker.has_quantity[pid]),
            )
            return Hit(passage, score, model.probability(signals), signals), sentence

        top, sentence = hit(0)
        shown = [top if rank == 0 else hit(rank)[0] for rank in range(offset, min(offset + k, len(ranked)))]
        if top.confidence >= model.threshold_for(strictness, self.decision.strict_threshold):
            return Answer(question, True, None, sentence, shown, terms)
        assert top.signals is not None
        reason = self.decider.decline_reason(view, top.signals)
        return Answer(question, False, reason, None, shown, terms)

    def stats(self) -> EngineStats:
        return EngineStats(
            documents=len(self.documents),
            passages=len(self.passages),
            vocabulary=len(self.index.doc_freq),
            build_seconds=self.build_seconds,
            load_errors=[str(e) for e in self.load_errors],
            semantic=self.mode,
        )


def with_context(own: QuestionView, context: QuestionView) -> QuestionView:
    """The question's view with the context's terms added after its own (for the decision and the
    highlighting); names the documents never use and the expected answer type stay the question's."""
    extra = [t for t in context.terms if t not in own.prefixes]
    return QuestionView(
        terms=own.terms + extra,
        query=own.query + extra,
        prefixes={**{t: context.prefixes[t] for t in extra}, **own.prefixes},
        unknown_names=own.unknown_names,
        expects=own.expects,
        expects_name=own.expects_name,
    )


def query_weights(own: QuestionView, view: QuestionView, decider: Decider) -> dict[str, float]:
    """BM25's query for a follow-up: the question's terms as often as asked; the context's share one
    weight, so that all of them together weigh ``CONTEXT_WEIGHT`` of the question (by IDF, words the
    documents never use counted as the decision counts them). A long answer as context thus never
    outweighs a short question; a question of unknown words only ("and what did he reply?") still
    leans on its context, which then decides alone."""
    weights: dict[str, float] = {}
    for term in own.query:
        weights[term] = weights.get(term, 0.0) + 1.0
    extra = [t for t in view.terms if t not in weights]
    own_weight = sum(decider.idf(own, t) * n for t, n in weights.items())
    extra_weight = sum(decider.idf(view, t) for t in extra)
    if extra_weight > 0:
        for term in extra:
            weights[term] = CONTEXT_WEIGHT * own_weight / extra_weight
    return weights


def without_sentences_in(
    passage: Passage, context: str, cosines: list[float] | None
) -> tuple[Passage, list[float] | None]:
    """``passage`` without the sentences ``context`` already holds (and their cosines), unless that
    leaves none."""
    sentences = split_sentences(passage.text)
    keep = [i for i, sentence in enumerate(sentences) if sentence.strip() not in context]
    if not keep or len(keep) == len(sentences):
        return passage, cosines
    rest = dataclasses.replace(passage, text=" ".join(sentences[i] for i in keep))
    if (
        cosines is not None
        and len(cosines) == len(sentences)
        and len(split_sentences(rest.text)) == len(keep)
    ):
        return rest, [cosines[i] for i in keep]
    return rest, None


@functools.cache
def _index_code() -> str:
    """A hash of the modules whose code decides what the index holds: a release that changes how
    text becomes terms never reads an index an older one wrote."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("analyzer.py", "passages.py", "index.py", "ranking.py", "answers.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def _index_in_worker() -> None:
    """A worker process's whole work (``Engine._build_apart``): the documents and settings as a
    pickle on stdin; each document's index built and saved into the cache (however small), where
    the server's engine finds it."""
    documents, params, weights, max_words, cache = pickle.loads(sys.stdin.buffer.read())
    for document in documents:
        Engine(
            [document],
            params=params,
            weights=weights,
            max_words=max_words,
            semantic=False,
            vector_cache=cache,
            index_cache_above=0,
        )


def _characters(document: Document) -> int:
    return sum(len(block.text) for block in document.blocks)


def _document_key(document: Document) -> str:
    """What a document's layer depends on: its id, title and every block's heading and text."""
    digest = hashlib.sha256(f"{document.id}\0{document.title}".encode())
    for block in document.blocks:
        digest.update(f"\0{block.section}\0{block.text}".encode())
    return digest.hexdigest()


def clip_question(question: str) -> str:
    """``question`` stripped and, past MAX_QUESTION_CHARS, cut at the last whitespace before the
    limit, so no half word (which could read as a name the documents never use) is searched for."""
    question = question.strip()
    if len(question) <= MAX_QUESTION_CHARS:
        return question
    cut = question[: MAX_QUESTION_CHARS + 1]
    space = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
    kept = cut[:space] if space > MAX_QUESTION_CHARS // 2 else cut[:MAX_QUESTION_CHARS]
    return kept.rstrip()
