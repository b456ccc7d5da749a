"""Evaluation over a questions file, with the figures and matching rule of ``evals/README.md``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import Engine

_FOLD = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def normalise_for_match(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().translate(_FOLD)).strip()


def contains_evidence(text: str, evidence: list[str]) -> bool:
    haystack = normalise_for_match(text)
    return any(normalise_for_match(e) in haystack for e in evidence)


@dataclass(slots=True)
class QuestionResult:
    id: str
    question: str
    kind: str  # "answerable", "off_topic" or "near_miss"
    answered: bool
    rank: int | None  # 1-based rank of the first correct passage in the top five
    sentence_hit: bool
    reason: str | None


@dataclass(slots=True)
class Report:
    results: list[QuestionResult] = field(default_factory=list)
    mean_passage_words: float = 0.0

    def _share(self, kind: str, test: Any) -> float:
        rows = [r for r in self.results if r.kind in kind.split("|")]
        return sum(1 for r in rows if test(r)) / len(rows) if rows else 0.0

    def figures(self) -> dict[str, float | int]:
        answerable = "answerable"
        return {
            "questions": len(self.results),
            "hit@1": self._share(answerable, lambda r: r.answered and r.rank == 1),
            "hit@3": self._share(answerable, lambda r: r.answered and r.rank is not None and r.rank <= 3),
            "mrr@5": self._mrr(),
            "sentence_hit@1": self._share(answerable, lambda r: r.answered and r.sentence_hit),
            "declined_offtopic": self._share("off_topic", lambda r: not r.answered),
            "declined_near_miss": self._share("near_miss", lambda r: not r.answered),
            "wrongly_declined": self._share(answerable, lambda r: not r.answered),
            "mean_passage_words": round(self.mean_passage_words, 1),
        }

    def _mrr(self) -> float:
        rows = [r for r in self.results if r.kind == "answerable"]
        total = sum(1 / r.rank for r in rows if r.answered and r.rank)
        return total / len(rows) if rows else 0.0


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(item, dict) or "question" not in item or "answerable" not in item:
            raise ValueError(f"{path}:{number}: needs 'question' and 'answerable'")
        questions.append(item)
    return questions


def evaluate(engine: Engine, questions: list[dict[str, Any]], *, strictness: float = 0.5) -> Report:
    report = Report()
    for i, item in enumerate(questions, start=1):
        answer = engine.ask(item["question"], k=5, strictness=strictness)
        kind = "answerable" if item["answerable"] else "near_miss" if item.get("near_miss") else "off_topic"
        evidence = item.get("evidence") or []
        rank = next(
            (
                n
                for n, hit in enumerate(answer.hits, start=1)
                if contains_evidence(hit.passage.text, evidence)
            ),
            None,
        )
        report.results.append(
            QuestionResult(
                id=str(item.get("id", i)),
                question=item["question"],
                kind=kind,
                answered=answer.answered,
                rank=rank,
                sentence_hit=bool(answer.sentence and contains_evidence(answer.sentence, evidence)),
                reason=answer.reason,
            )
        )
    words = [p.words for p in engine.passages]
    report.mean_passage_words = sum(words) / len(words) if words else 0.0
    return report
