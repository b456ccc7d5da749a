"""The engine: documents in, answers out. The CLI and the Discord bot both use only this."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .answers import (
    DATE,
    QUANTITY,
    RULE_PENALTY,
    Answer,
    Decider,
    Hit,
    QuestionView,
    best_sentence,
    find_names,
)
from .documents import Document, LoadError, load_corpus
from .index import BM25Params
from .passages import MAX_WORDS, Passage, make_passages
from .ranking import Ranker, RankingWeights
from .semantic import available as semantic_available

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
    """An immutable index over documents. Build it once; ask it from any thread."""

    def __init__(
        self,
        documents: Sequence[Document],
        *,
        params: BM25Params | None = None,
        weights: RankingWeights | None = None,
        max_words: int = MAX_WORDS,
        load_errors: Iterable[LoadError] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        started = time.perf_counter()
        self.documents = list(documents)
        self.load_errors = list(load_errors)
        self.params = params or BM25Params()
        self.weights = weights or RankingWeights()
        self.max_words = max_words
        self.passages: list[Passage] = [p for d in self.documents for p in make_passages(d, max_words)]
        # A heading is indexed with every passage under it, never returned on its own.
        self.ranker = Ranker(
            self.passages,
            self.params,
            self.weights,
            has_date=[bool(DATE.search(p.text)) for p in self.passages],
            has_quantity=[bool(QUANTITY.search(p.text)) for p in self.passages],
            progress=progress,
        )
        self.index = self.ranker.passages
        self.decider = Decider(
            self.index.doc_freq, self.ranker.prefix_doc_freq, len(self.passages), find_names(self.passages)
        )
        self._by_id = {p.id: i for i, p in enumerate(self.passages)}
        self.build_seconds = time.perf_counter() - started

    @classmethod
    def from_path(cls, path: str | Path, **kwargs: Any) -> Engine:
        """Load a corpus folder or one file. Unreadable files are listed in ``load_errors``."""
        documents, errors = load_corpus(path)
        return cls(documents, load_errors=errors, **kwargs)

    def with_documents(self, extra: Sequence[Document]) -> Engine:
        """A new engine over these documents plus ``extra`` (a server's own documents)."""
        if not extra:
            return self
        return Engine(
            [*self.documents, *extra], params=self.params, weights=self.weights, max_words=self.max_words
        )

    def passage(self, passage_id: str) -> Passage | None:
        i = self._by_id.get(passage_id)
        return None if i is None else self.passages[i]

    def ask(self, question: str, k: int = 3, *, strictness: float = 0.5, offset: int = 0) -> Answer:
        """Answer ``question`` with up to ``k`` passages (skipping the first ``offset``, for *More*)."""
        question = clip_question(question)
        view = QuestionView.of(question, self.decider)
        if not view.terms:
            empty = "The question is empty." if not question else "The question has no words to search for."
            return Answer(question, False, empty, None, [], frozenset())
        terms = frozenset(view.terms)
        off_topic = self.decider.off_topic_reason(view)
        if off_topic:  # no "closest passage" is worth showing for these
            return Answer(question, False, off_topic, None, [], terms)
        ranked = self.ranker.top(view.query, max(1, offset + k), view.expects)

        top_id = ranked[0][0]
        reason = self.decider.decline_reason(
            view, self.passages[top_id], self.ranker.words[top_id], strictness
        )
        hits = []
        for pid, score in ranked[offset : offset + k]:
            confidence = self.decider.coverage(view, self.ranker.words[pid])
            if reason:
                confidence *= RULE_PENALTY
            hits.append(Hit(self.passages[pid], score, confidence))
        if not reason and strictness > 0.5 and hits and hits[0].confidence < strictness - 0.5:
            reason = "The best passage holds too little of the question to be sure."
        sentence = None if reason else best_sentence(self.passages[top_id], view, self.decider)
        return Answer(question, reason is None, reason, sentence, hits, terms)

    def stats(self) -> EngineStats:
        return EngineStats(
            documents=len(self.documents),
            passages=len(self.passages),
            vocabulary=len(self.index.doc_freq),
            build_seconds=self.build_seconds,
            load_errors=[str(e) for e in self.load_errors],
            semantic=semantic_available().describe(),
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
