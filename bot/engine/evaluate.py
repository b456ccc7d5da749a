"""Evaluation over a questions file, with the figures and matching rule of ``evals/README.md``.

Two formats, told apart by content: the project's JSONL question sets (one object a line, about
the corpus the CLI loads), and SQuAD 2.0 JSON (``{"version": ..., "data": [articles]}``), scored by
the rules of ``../shared/eval/README.md``: each article alone is the whole corpus, and the
answerable questions of the other articles are asked of it as off-topic ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .decision import Signals
from .documents import Document, parse_text, slugify
from .engine import Engine
from .passages import make_passages

_FOLD = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})

CALIBRATION_BINS = 10
OTHER_ARTICLE = "other_article"  # a question of another SQuAD article: a decline test only
JSONL_DECLINES = (("declined_offtopic", "off_topic"), ("declined_near_miss", "near_miss"))
SQUAD_DECLINES = (("declined_unanswerable", "unanswerable"), ("declined_other_article", OTHER_ARTICLE))


def normalise_for_match(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().translate(_FOLD)).strip()


def contains_evidence(text: str, evidence: list[str]) -> bool:
    haystack = normalise_for_match(text)
    return any(normalise_for_match(e) in haystack for e in evidence)


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_confidence: float | None  # None for an empty bin
    accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bin": f"{self.low:.1f}-{self.high:.1f}",
            "count": self.count,
            "mean_confidence": None if self.mean_confidence is None else round(self.mean_confidence, 4),
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
        }


def reliability_table(
    samples: Iterable[tuple[float, bool]], bins: int = CALIBRATION_BINS
) -> list[ReliabilityBin]:
    """``(confidence, correct)`` pairs in ``bins`` equal-width bins over [0, 1] (1.0 in the last)."""
    grouped: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for confidence, correct in samples:
        grouped[min(max(int(confidence * bins), 0), bins - 1)].append((confidence, correct))
    table = []
    for i, rows in enumerate(grouped):
        mean = sum(c for c, _ in rows) / len(rows) if rows else None
        accuracy = sum(1 for _, ok in rows if ok) / len(rows) if rows else None
        table.append(ReliabilityBin(i / bins, (i + 1) / bins, len(rows), mean, accuracy))
    return table


def calibration_error(table: Sequence[ReliabilityBin]) -> float:
    """Expected calibration error: the count-weighted mean gap between confidence and accuracy."""
    total = sum(b.count for b in table)
    return (
        sum(
            b.count * abs(b.accuracy - b.mean_confidence)
            for b in table
            if b.accuracy is not None and b.mean_confidence is not None
        )
        / total
        if total
        else 0.0
    )


@dataclass(slots=True)
class QuestionResult:
    id: str
    question: str
    kind: str  # "answerable", "off_topic", "near_miss"; SQuAD: "unanswerable", "other_article"
    answered: bool
    rank: int | None  # 1-based rank of the first correct passage in the top five
    sentence_hit: bool
    reason: str | None
    confidence: float = 0.0  # the top hit's, 0 when there is no hit at all
    # Each hit's signals and whether it is correct: what benchmarks/fit_decision.py fits on.
    hits: list[tuple[Signals | None, bool]] = field(default_factory=list)

    @property
    def top_correct(self) -> bool:
        """Whether the top hit answers the question, declined or not: what confidence predicts."""
        return self.rank == 1


@dataclass(slots=True)
class Report:
    results: list[QuestionResult] = field(default_factory=list)
    passage_words: list[int] = field(default_factory=list)
    declines: tuple[tuple[str, str], ...] = JSONL_DECLINES  # (figure, kind) for each decline share

    def _share(self, kind: str, test: Callable[[QuestionResult], bool]) -> float:
        rows = [r for r in self.results if r.kind == kind]
        return sum(1 for r in rows if test(r)) / len(rows) if rows else 0.0

    @property
    def own_results(self) -> list[QuestionResult]:
        """The set's own questions; questions of other SQuAD articles only test declining."""
        return [r for r in self.results if r.kind != OTHER_ARTICLE]

    def reliability(self) -> list[ReliabilityBin]:
        return reliability_table((r.confidence, r.top_correct) for r in self.own_results)

    def figures(self) -> dict[str, float | int]:
        answerable = "answerable"
        figures: dict[str, float | int] = {"questions": len(self.own_results)}
        if any(kind == OTHER_ARTICLE for _, kind in self.declines):
            figures["other_article_questions"] = len(self.results) - len(self.own_results)
        figures |= {
            "hit@1": self._share(answerable, lambda r: r.answered and r.rank == 1),
            "hit@3": self._share(answerable, lambda r: r.answered and r.rank is not None and r.rank <= 3),
            "mrr@5": self._mrr(),
            "sentence_hit@1": self._share(answerable, lambda r: r.answered and r.sentence_hit),
        }
        for name, kind in self.declines:
            figures[name] = self._share(kind, lambda r: not r.answered)
        words = self.passage_words
        figures |= {
            "wrongly_declined": self._share(answerable, lambda r: not r.answered),
            "mean_passage_words": round(sum(words) / len(words), 1) if words else 0.0,
            "calibration_error": round(calibration_error(self.reliability()), 4),
        }
        return figures

    def to_dict(self) -> dict[str, Any]:
        return {**self.figures(), "reliability": [b.to_dict() for b in self.reliability()]}

    def _mrr(self) -> float:
        rows = [r for r in self.results if r.kind == "answerable"]
        total = sum(1 / r.rank for r in rows if r.answered and r.rank)
        return total / len(rows) if rows else 0.0


# --- reading question files ---------------------------------------------------------------------


def read_text(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8-sig")


def is_squad(text: str) -> bool:
    """SQuAD JSON is one JSON object with a ``data`` list; a JSONL set is one object per line
    (a one-line set parses whole too, but has no ``data``)."""
    if not text.lstrip().startswith("{"):
        return False
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return False  # several objects, one a line: JSONL
    return isinstance(whole, dict) and "data" in whole and "question" not in whole


def parse_questions(text: str, path: str | Path = "questions") -> list[dict[str, Any]]:
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
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


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    return parse_questions(read_text(path), path)


@dataclass(frozen=True, slots=True)
class SquadQuestion:
    id: str
    question: str
    answers: list[str]  # empty for an unanswerable one
    impossible: bool


@dataclass(frozen=True, slots=True)
class SquadParagraph:
    context: str
    questions: list[SquadQuestion]


@dataclass(frozen=True, slots=True)
class SquadArticle:
    title: str
    paragraphs: list[SquadParagraph]

    def answerable(self) -> list[SquadQuestion]:
        return [q for p in self.paragraphs for q in p.questions if not q.impossible]


def parse_squad(text: str, path: str | Path = "questions") -> list[SquadArticle]:
    """SQuAD 2.0 JSON -> articles; ValueError naming the first article or question that is wrong."""
    try:
        data = json.loads(text)["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not SQuAD JSON ({exc})") from None
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: SQuAD 'data' must be a non-empty list of articles")
    articles = []
    for a, article in enumerate(data):
        where = f"{path}: data[{a}]"
        try:
            paragraphs = []
            for p, paragraph in enumerate(article["paragraphs"]):
                questions = []
                for q, qa in enumerate(paragraph["qas"]):
                    impossible = bool(qa.get("is_impossible", False))
                    answers = [str(ans["text"]) for ans in qa.get("answers", [])]
                    if not impossible and not answers:
                        raise ValueError(f"paragraphs[{p}].qas[{q}] is answerable but has no answers")
                    questions.append(
                        SquadQuestion(
                            str(qa.get("id", f"{a}.{p}.{q}")), str(qa["question"]), answers, impossible
                        )
                    )
                paragraphs.append(SquadParagraph(str(paragraph["context"]), questions))
            title = str(article.get("title") or f"Article {a + 1}")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: not a SQuAD article (missing or wrong {exc})") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        articles.append(SquadArticle(title.replace("_", " "), paragraphs))
    return articles


# --- scoring ------------------------------------------------------------------------------------


def _first_correct(flags: Sequence[bool]) -> int | None:
    """1-based rank of the first correct hit, given each hit's correctness."""
    return flags.index(True) + 1 if True in flags else None


def evaluate(engine: Engine, questions: list[dict[str, Any]], *, strictness: float = 0.5) -> Report:
    report = Report(passage_words=[p.words for p in engine.passages])
    for i, item in enumerate(questions, start=1):
        answer = engine.ask(item["question"], k=5, strictness=strictness)
        kind = "answerable" if item["answerable"] else "near_miss" if item.get("near_miss") else "off_topic"
        evidence = item.get("evidence") or []
        flags = [bool(evidence) and contains_evidence(h.passage.text, evidence) for h in answer.hits]
        report.results.append(
            QuestionResult(
                id=str(item.get("id", i)),
                question=item["question"],
                kind=kind,
                answered=answer.answered,
                rank=_first_correct(flags),
                sentence_hit=bool(answer.sentence and contains_evidence(answer.sentence, evidence)),
                reason=answer.reason,
                confidence=answer.hits[0].confidence if answer.hits else 0.0,
                hits=[(h.signals, ok) for h, ok in zip(answer.hits, flags, strict=True)],
            )
        )
    return report


def squad_document(article: SquadArticle) -> Document:
    """The article as a user's ``.txt``: the title as front matter, one paragraph a line, read by
    the project's own parser so passages come out as they would for that file."""
    lines = [re.sub(r"[\r\n]+", " ", p.context).strip() for p in article.paragraphs]
    text = f"---\ntitle: {article.title}\n---\n" + "\n".join(lines) + "\n"
    return parse_text(text, doc_id=slugify(article.title), default_title=article.title, markdown=False)


def paragraph_of_passages(article: SquadArticle, document: Document, engine: Engine) -> list[int | None]:
    """For each of the engine's passages, the index of the SQuAD paragraph it was cut from.

    A paragraph the parser took for a heading has no passage; the others are blocks, in order."""
    lines = [" ".join(p.context.split()) for p in article.paragraphs]
    owners: list[int | None] = []
    next_paragraph = 0
    for block in document.blocks:
        text = " ".join(block.text.split())
        while next_paragraph < len(lines) and lines[next_paragraph] != text:
            next_paragraph += 1
        paragraph = next_paragraph if next_paragraph < len(lines) else None
        if paragraph is not None:
            next_paragraph += 1
        # The passages one block becomes, cut exactly as the engine cuts them.
        single = Document(document.id, document.title, blocks=[block])
        owners += [paragraph] * len(make_passages(single, engine.max_words))
    if len(owners) != len(engine.passages):
        raise RuntimeError(f"{article.title}: passages do not line up with paragraphs")
    return owners


@dataclass(slots=True)
class SquadReport:
    articles: list[tuple[str, Report]]

    @property
    def overall(self) -> Report:
        """Every article's results pooled: micro-averaged figures."""
        pooled = Report(declines=SQUAD_DECLINES)
        for _, report in self.articles:
            pooled.results += report.results
            pooled.passage_words += report.passage_words
        return pooled

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.overall.to_dict(),
            "articles": [{"title": title, **report.to_dict()} for title, report in self.articles],
        }


def evaluate_squad(
    articles: Sequence[SquadArticle], *, strictness: float = 0.5, **engine_options: Any
) -> SquadReport:
    """Each article alone is the corpus: its own questions, then the other articles' answerable ones.
    ``engine_options`` go to each article's ``Engine`` (``semantic=False``, ``decision=…``)."""
    reports = []
    for a, article in enumerate(articles):
        document = squad_document(article)
        engine = Engine([document], **engine_options)  # built once per article, asked every question below
        owner = paragraph_of_passages(article, document, engine)
        paragraph_of = {p.id: owner[i] for i, p in enumerate(engine.passages)}
        report = Report(passage_words=[p.words for p in engine.passages], declines=SQUAD_DECLINES)
        for number, paragraph in enumerate(article.paragraphs):
            for q in paragraph.questions:
                answer = engine.ask(q.question, k=5, strictness=strictness)

                # Correct: cut from this question's paragraph, and holding one of its answers.
                flags = [
                    paragraph_of[h.passage.id] == number and contains_evidence(h.passage.text, q.answers)
                    for h in answer.hits
                ]
                report.results.append(
                    QuestionResult(
                        id=q.id,
                        question=q.question,
                        kind="unanswerable" if q.impossible else "answerable",
                        answered=answer.answered,
                        rank=_first_correct(flags),
                        # The answer sentence is the top passage's: it counts only from the right paragraph.
                        sentence_hit=bool(
                            answer.sentence
                            and flags[:1] == [True]
                            and contains_evidence(answer.sentence, q.answers)
                        ),
                        reason=answer.reason,
                        confidence=answer.hits[0].confidence if answer.hits else 0.0,
                        hits=[(h.signals, ok) for h, ok in zip(answer.hits, flags, strict=True)],
                    )
                )
        for other in (o for b, o in enumerate(articles) if b != a):
            for q in other.answerable():
                answer = engine.ask(q.question, k=1, strictness=strictness)
                report.results.append(
                    QuestionResult(
                        id=q.id,
                        question=q.question,
                        kind=OTHER_ARTICLE,
                        answered=answer.answered,
                        rank=None,
                        sentence_hit=False,
                        reason=answer.reason,
                        confidence=answer.hits[0].confidence if answer.hits else 0.0,
                        hits=[(h.signals, False) for h in answer.hits],
                    )
                )
        reports.append((article.title, report))
    return SquadReport(reports)
