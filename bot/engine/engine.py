"""The engine: documents in, answers out. The CLI and the Discord bot both use only this."""

from __future__ import annotations

import hashlib
import logging
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
)
from .decision import DecisionModel, shipped_model
from .documents import Document, LoadError, load_corpus
from .fusion import RERANK_ABOVE, RERANK_CANDIDATES, PassageVectors, fused_top
from .index import BM25Params, top_k
from .memory import release_freed_memory
from .passages import MAX_WORDS, Passage, make_passages
from .ranking import Ranker, RankingWeights
from .semantic import (
    Availability,
    SemanticUnavailable,
    VectorCache,
    Vectors,
    default_cache_dir,
    shared_embedder,
)
from .semantic import available as semantic_available

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000  # longer questions are read up to here; nobody asks in more


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
        base: Engine | None = None,
        decision: DecisionModel | None = None,
        rerank_above: int = RERANK_ABOVE,
        rerank_candidates: int = RERANK_CANDIDATES,
        encode_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        started = time.perf_counter()
        self.documents = list(documents)
        self.load_errors = list(load_errors)
        self.params = params or BM25Params()
        self.weights = weights or RankingWeights()
        self.max_words = max_words
        self.passages: list[Passage] = [p for d in self.documents for p in make_passages(d, max_words)]
        # A heading is indexed with every passage under it, never returned on its own.
        self.ranker = Ranker(self.passages, self.params, self.weights, progress=progress)
        release_freed_memory()  # the build's short-lived arrays and strings
        self.index = self.ranker.passages
        self.decider = Decider(
            self.index.doc_freq, self.ranker.prefix_doc_freq, len(self.passages), self.ranker.names
        )
        self._by_id = {p.id: i for i, p in enumerate(self.passages)}
        self.decision = decision or shipped_model()
        self.rerank_above = rerank_above  # past this many passages, rerank BM25's best candidates
        self.rerank_candidates = rerank_candidates

        self.semantic = semantic
        self.vector_cache = Path(vector_cache) if vector_cache is not None else default_cache_dir()
        self.vectors: PassageVectors | None = None  # set once, by load_vectors: then ask fuses
        self.vectors_seconds = 0.0
        # The engine this one extends (with_documents): its vectors are reused, never re-encoded.
        self._base = base
        self._encode_progress = encode_progress  # (done, total) while texts are encoded
        self._vectors_lock = threading.Lock()
        state = (
            semantic_available() if semantic is not False else Availability(False, "lexical engine asked for")
        )
        self._off = None if state.ok else state.describe()
        if not defer_vectors:
            self.load_vectors()
        self.build_seconds = time.perf_counter() - started

    @property
    def cache_name(self) -> str:
        """The vector cache file's name: one per set of documents (a server's engine has its own)."""
        ids = "\0".join(d.id for d in self.documents)
        first = self.documents[0].id[:40] if self.documents else "empty"
        return f"engine-{first}-{hashlib.sha256(ids.encode()).hexdigest()[:12]}"

    def load_vectors(self) -> bool:
        """Read or encode the vectors; from then on ``ask`` runs in semantic mode. False when the
        engine stays lexical (switched off, or the model cannot be loaded). Safe from any thread."""
        with self._vectors_lock:
            if self.vectors is not None or self._off:
                return self.vectors is not None
            started = time.perf_counter()
            try:
                embedder = shared_embedder()
            except SemanticUnavailable as exc:
                self._off = str(exc)
                log.warning("semantic stage not loaded, engine stays lexical: %s", exc)
                return False
            known = None
            if self._base is not None:
                # The corpus's vectors may still be on their way (the bot builds both deferred):
                # wait for them rather than encode the whole corpus a second time.
                self._base.load_vectors()
                known = self._base._vectors_by_text()
            found = VectorCache(embedder, self.vector_cache).vectors(
                self.cache_name, self._vector_texts(), known, self._encode_progress
            )
            n = len(self.passages)
            counts = np.diff(self.ranker.sentence_start).tolist()
            self.vectors = PassageVectors.of(embedder, found[:n], found[n:], counts)
            self._base = None
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

    def _vectors_by_text(self) -> dict[str, Vectors]:
        vectors = self.vectors
        if vectors is None:
            return {}
        rows = [*vectors.passages, *vectors.sentences]
        return dict(zip(self._vector_texts(), rows, strict=True))

    @classmethod
    def from_path(cls, path: str | Path, **kwargs: Any) -> Engine:
        """Load a corpus folder or one file. Unreadable files are listed in ``load_errors``."""
        documents, errors = load_corpus(path)
        return cls(documents, load_errors=errors, **kwargs)

    def with_documents(self, extra: Sequence[Document], *, defer_vectors: bool = False) -> Engine:
        """A new engine over these documents plus ``extra`` (a server's own documents). It reuses
        this engine's vectors in memory (waiting for them if they are still being encoded): only
        ``extra`` is read from the cache or encoded."""
        if not extra:
            return self
        return Engine(
            [*self.documents, *extra],
            params=self.params,
            weights=self.weights,
            max_words=self.max_words,
            semantic=self.semantic,
            vector_cache=self.vector_cache,
            defer_vectors=defer_vectors,
            base=self,
            decision=self.decision,
            rerank_above=self.rerank_above,
            rerank_candidates=self.rerank_candidates,
        )

    def passage(self, passage_id: str) -> Passage | None:
        i = self._by_id.get(passage_id)
        return None if i is None else self.passages[i]

    def ask(self, question: str, k: int = 3, *, strictness: float = 0.5, offset: int = 0) -> Answer:
        """Answer ``question`` with up to ``k`` passages (skipping the first ``offset``, for *More*).

        Each hit's confidence is the decision model's probability that it answers the question
        (``decision.py``); the question is answered when the top hit's reaches the threshold
        ``strictness`` sets."""
        question = clip_question(question)
        view = QuestionView.of(question, self.decider)
        if not view.terms:
            empty = "The question is empty." if not question else "The question has no words to search for."
            return Answer(question, False, empty, None, [], frozenset())
        terms = frozenset(view.terms)
        if not self.decider.knows_any(view):  # a fact, not a guess: nothing to rank by
            return Answer(question, False, "Nothing in the documents matches these words.", None, [], terms)
        vectors = self.vectors  # read once: vectors that arrive mid-question wait for the next one
        cosines = None
        want = max(2, offset + k)  # the runner-up too: a hit's margin is over the best other hit
        if vectors is None:
            ranked = self.ranker.top(view.query, want, view.expects)
        else:
            encoded = vectors.embedder.encode_question(question)
            ids, bm25 = self.ranker.score(view.query, view.expects)
            among = None
            if len(self.passages) > self.rerank_above:  # a large corpus: rerank BM25's best
                among = np.asarray([i for i, _ in top_k(ids, bm25, self.rerank_candidates)], dtype=np.int32)
            cosines = vectors.cosines(encoded, among)
            ranked = fused_top(ids, bm25, cosines.fused, self.weights.cosine_weight, want, among)
        model = self.decision.model(semantic=cosines is not None)

        def hit(rank: int) -> tuple[Hit, str]:
            pid, score = ranked[rank]
            # The best other hit: the top for every hit but the top; nothing for a lone match.
            other = ranked[0][1] if rank > 0 else (ranked[1][1] if len(ranked) > 1 else 0.0)
            top_score = ranked[0][1]
            margin = (score - other) / top_score if top_score > 0 else 0.0
            passage = self.passages[pid]
            if cosines is None or vectors is None:
                sentence = best_sentence(passage, view, self.decider)
                pair = (0.0, 0.0)
            else:
                first, end = vectors.start[pid], vectors.start[pid + 1]
                sentence = best_sentence(
                    passage,
                    view,
                    self.decider,
                    cosines.sentence[first:end].tolist(),
                    self.weights.sentence_cosine_weight,
                )
                pair = (float(cosines.passage[pid]), float(cosines.best_sentence[pid]))
            signals = self.decider.signals(view, passage, self.ranker.words(pid), sentence, margin, pair)
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
