"""Shaping answers for a terminal: the answer sentence first, then cited passages, words highlighted."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Iterable
from typing import TextIO

from .engine import Answer
from .engine.analyzer import surface_terms
from .engine.decision import LOW_CONFIDENCE
from .engine.evaluate import ReliabilityBin, Report, SquadReport

BOLD, DIM, YELLOW, RESET = "\033[1m", "\033[2m", "\033[1;33m", "\033[0m"


def use_colour(stream: TextIO, choice: str = "auto") -> bool:
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def highlight(text: str, terms: Iterable[str], colour: bool) -> str:
    """Mark the words of ``text`` whose index term is one of ``terms``."""
    wanted = set(terms)
    if not colour or not wanted:
        return text
    out, last = [], 0
    for start, end, term in surface_terms(text):
        if term in wanted:
            out += [text[last:start], YELLOW, text[start:end], RESET]
            last = end
    out.append(text[last:])
    return "".join(out)


def _wrap(text: str, width: int, indent: str) -> list[str]:
    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    )


def render_answer(answer: Answer, colour: bool, width: int | None = None) -> str:
    width = width or min(100, shutil.get_terminal_size((100, 24)).columns)
    bold = (lambda s: f"{BOLD}{s}{RESET}") if colour else (lambda s: s)
    dim = (lambda s: f"{DIM}{s}{RESET}") if colour else (lambda s: s)
    lines: list[str] = []
    top = answer.top
    if answer.answered and answer.sentence and top:
        label = "Answer" if top.confidence >= LOW_CONFIDENCE else "Closest match (low confidence)"
        lines.append(bold(f"{label}:"))
        lines += [highlight(line, answer.terms, colour) for line in _wrap(answer.sentence, width, "  ")]
    else:
        lines.append(bold("The article doesn't say.") + " " + (answer.reason or ""))
        if answer.hits:
            lines.append(dim("The closest passages, which may not answer it:"))
    titles = list(dict.fromkeys(h.passage.document_title for h in answer.hits))
    for n, hit in enumerate(answer.hits, start=1):
        p = hit.passage
        where = f"{p.document_title} · {p.place}" if len(titles) > 1 else p.place
        lines.append("")
        lines.append(bold(f"[{n}] {where}") + dim(f" · confidence {hit.confidence:.2f}"))
        lines += [highlight(line, answer.terms, colour) for line in _wrap(p.text, width, "    ")]
    if len(titles) == 1:
        lines += ["", dim(f"Source: {titles[0]}")]
    return "\n".join(lines)


def _figure_lines(figures: dict[str, float | int]) -> list[str]:
    return [
        f"{name:<24} {value:.3f}" if isinstance(value, float) else f"{name:<24} {value}"
        for name, value in figures.items()
    ]


def render_reliability(table: list[ReliabilityBin]) -> list[str]:
    """The reliability table behind calibration_error: does confidence say how often the top is right?"""
    lines = [
        "Reliability of the top hit's confidence:",
        f"  {'bin':<9} {'count':>6} {'confidence':>11} {'accuracy':>9}",
    ]
    for b in table:
        mean = "-" if b.mean_confidence is None else f"{b.mean_confidence:.3f}"
        accuracy = "-" if b.accuracy is None else f"{b.accuracy:.3f}"
        lines.append(f"  {b.low:.1f}-{b.high:.1f}   {b.count:>6} {mean:>11} {accuracy:>9}")
    return lines


def render_report(report: Report) -> str:
    lines = _figure_lines(report.figures())
    lines += ["", *render_reliability(report.reliability())]
    misses = [
        r
        for r in report.results
        if (r.kind == "answerable" and (not r.answered or r.rank != 1))
        or (r.kind != "answerable" and r.answered)
    ]
    if misses:
        lines += ["", "Questions to look at:"]
        for r in misses:
            outcome = (
                f"declined: {r.reason}"
                if not r.answered
                else (
                    f"first correct passage at rank {r.rank}"
                    if r.rank
                    else "answered, no correct passage in top 5"
                )
            )
            lines.append(f"  {r.id:<6} {r.kind:<10} {r.question}  [{outcome}]")
    return "\n".join(lines)


# Short column names for the per-article table of a SQuAD file, in the figures' order.
_SQUAD_COLUMNS = {
    "hit@1": "hit@1",
    "hit@3": "hit@3",
    "mrr@5": "mrr@5",
    "sentence_hit@1": "sent@1",
    "declined_unanswerable": "unans",
    "declined_other_article": "other",
    "wrongly_declined": "wrong",
    "calibration_error": "ece",
}


def render_squad_report(report: SquadReport) -> str:
    """Per article, then all articles pooled (micro-averaged), then the pooled reliability table."""
    overall = report.overall
    rows = [(title, r.figures()) for title, r in report.articles] + [("all (micro)", overall.figures())]
    width = max(len(title) for title, _ in rows)
    header = f"{'article':<{width}} {'asked':>6} " + " ".join(f"{c:>6}" for c in _SQUAD_COLUMNS.values())
    lines = [header]
    for title, figures in rows:
        cells = " ".join(f"{float(figures[name]):>6.3f}" for name in _SQUAD_COLUMNS)
        lines.append(f"{title:<{width}} {figures['questions']:>6} {cells}")
    lines += [
        "",
        "asked: the article's own questions; unans: unanswerable declined; other: questions of the",
        "other articles declined; wrong: answerable declined; ece: calibration error.",
        "",
        *_figure_lines(overall.figures()),
        "",
        *render_reliability(overall.reliability()),
    ]
    return "\n".join(lines)


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and only for large jobs."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, minimum: int = 2000) -> None:
        self.label, self.stream, self.minimum = label, stream, minimum
        self.enabled = stream.isatty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < self.minimum:
            return
        filled = int(30 * done / total) if total else 30
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
