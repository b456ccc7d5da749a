"""How the bot does in one server, at a glance: for ``/admin insights`` and ``python -m bot insights``.

``gather`` reads the question log and the votes of the last ``days`` days and counts them here,
above the storage backends, so SQLite and PostgreSQL give the same figures. ``summary_text`` says
every figure in words (for screen readers, and for a moderator who doesn't open the image);
``render_png`` draws the same figures as one chart. Neither ever names a member: the log keeps
only member ids, and none of them is read here.

The unanswered questions are grouped into themes with the engine's own signals: the semantic
model's vectors when that stage runs (questions asked in other words land together), else the
analyzer's stemmed terms weighted by how rare they are among the unanswered questions.
Rendering and encoding are CPU work: callers run ``build`` and ``render_png`` in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .engine import Engine
from .engine.analyzer import analyze
from .engine.semantic import Embedder
from .storage import LoggedQuestion, Storage, Vote

DEFAULT_DAYS = 14
MAX_DAYS = 60  # 60 daily bars still read at Discord's preview width
MAX_THEMES = 5
MAX_SECTIONS = 5
MAX_DISLIKED = 3
MAX_THEMED = 500  # the latest unanswered questions grouped into themes: 2.2 s to encode 500 (load 4)
# A question joins a theme when it is at least this close to the theme's centre: cosine of MiniLM
# vectors, or of tf-idf term vectors when the semantic stage is off. MiniLM put short questions on
# one topic ("bake sourdough bread" / "banana bread recipe" / "proof bread dough") at 0.35-0.74
# from each other and 0.47+ from their centre, questions on different topics at 0.31 at most
# (tests/test_insights.py holds examples of both).
SEMANTIC_THEME_SIMILARITY = 0.42
LEXICAL_THEME_SIMILARITY = 0.3
# Chart colours, readable on the white card in Discord's light and dark themes and told apart
# without hue alone (answered/declined stack bottom/top; helpful/not helpful go up/down).
ANSWERED, DECLINED = "#2f6db5", "#e8913a"
HELPFUL, UNHELPFUL = "#3a9a5b", "#c8413c"
INK, MUTED, GRID, CARD = "#1f2328", "#59636e", "#d8dee4", "#ffffff"

_MEMBER_MENTION = re.compile(r"(?<!\w)@[^\s@]+")  # "@Alice": the ask path wrote names this way


@dataclass(frozen=True, slots=True)
class Day:
    day: dt.date
    answered: int = 0
    declined: int = 0
    helpful: int = 0
    unhelpful: int = 0

    @property
    def questions(self) -> int:
        return self.answered + self.declined


@dataclass(frozen=True, slots=True)
class Theme:
    count: int
    example: str  # one of its questions, member mentions removed


@dataclass(frozen=True, slots=True)
class Disliked:
    label: str  # where the passage is ("The Rift Begins · passage 8 of 23"), or its id if gone
    down: int
    up: int


@dataclass(frozen=True, slots=True)
class Insights:
    first_day: dt.date
    days: list[Day]
    follow_ups: int = 0
    themes: list[Theme] = field(default_factory=list)
    themes_by: str = "words"  # "meaning" (semantic vectors) or "words" (shared rare terms)
    sections: list[tuple[str, int]] = field(default_factory=list)
    disliked: list[Disliked] = field(default_factory=list)

    @property
    def last_day(self) -> dt.date:
        return self.days[-1].day

    @property
    def answered(self) -> int:
        return sum(d.answered for d in self.days)

    @property
    def declined(self) -> int:
        return sum(d.declined for d in self.days)

    @property
    def questions(self) -> int:
        return self.answered + self.declined

    @property
    def helpful(self) -> int:
        return sum(d.helpful for d in self.days)

    @property
    def unhelpful(self) -> int:
        return sum(d.unhelpful for d in self.days)

    @property
    def empty(self) -> bool:
        return self.questions == 0 and self.helpful + self.unhelpful == 0


def window(days: int, now: dt.datetime | None = None) -> tuple[dt.date, dt.datetime]:
    """The first day (UTC) of the last ``days`` days, today included, and the moment it starts."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    return first, dt.datetime.combine(first, dt.time(0), dt.UTC)


async def read(
    storage: Storage, guild_id: int, days: int, now: dt.datetime | None = None
) -> tuple[dt.date, list[LoggedQuestion], list[Vote]]:
    """The rows the insights count (the storage part; ``build`` does the rest, off the loop)."""
    first, since = window(days, now)
    return first, await storage.questions_since(guild_id, since), await storage.votes_since(guild_id, since)


def build(
    first_day: dt.date,
    days: int,
    questions: Sequence[LoggedQuestion],
    votes: Sequence[Vote],
    engine: Engine,
    embedder: Embedder | None = None,
) -> Insights:
    """Count ``questions`` and ``votes`` per day from ``first_day``; themes, sections, most 👎."""
    per_day = {first_day + dt.timedelta(days=i): [0, 0, 0, 0] for i in range(days)}
    for q in questions:
        counts = per_day.get(q.asked_at.astimezone(dt.UTC).date())
        if counts is not None:
            counts[0 if q.answered else 1] += 1
    for v in votes:
        counts = per_day.get(v.voted_at.astimezone(dt.UTC).date())
        if counts is not None:
            counts[2 if v.vote > 0 else 3] += 1
    day_rows = [Day(day, *counts) for day, counts in per_day.items()]

    sections: Counter[str] = Counter()
    for q in questions:
        if q.answered and (name := section_of(q, engine)):
            sections[name] += 1

    tallies: dict[str, list[int]] = {}
    for v in votes:
        tally = tallies.setdefault(v.passage_id, [0, 0])
        tally[0 if v.vote < 0 else 1] += 1
    disliked: list[Disliked] = []
    for passage_id, (down, up) in sorted(tallies.items(), key=lambda item: (-item[1][0], item[0])):
        if down == 0 or len(disliked) == MAX_DISLIKED:
            break
        passage = engine.passage(passage_id)
        disliked.append(Disliked(passage.place if passage else passage_id, down, up))

    # The latest ones only: themes are for what to add next, and encoding stays bounded.
    unanswered = [q.question for q in questions if not q.answered][-MAX_THEMED:]
    themes = group_themes(unanswered, embedder)
    return Insights(
        first_day=first_day,
        days=day_rows,
        follow_ups=sum(1 for q in questions if q.follow_up_of is not None),
        themes=themes[:MAX_THEMES],
        themes_by="meaning" if embedder is not None else "words",
        sections=sorted(sections.items(), key=lambda item: (-item[1], item[0]))[:MAX_SECTIONS],
        disliked=disliked,
    )


def section_of(question: LoggedQuestion, engine: Engine) -> str | None:
    """The section the answer came from: logged since schema 2, else looked up from its passage."""
    if question.section:
        return question.section
    passage = engine.passage(question.top_passage_id) if question.top_passage_id else None
    if passage is None:
        return None
    return passage.section or passage.document_title


# -- themes -----------------------------------------------------------------------------------------
def group_themes(questions: Sequence[str], embedder: Embedder | None = None) -> list[Theme]:
    """Similar questions together, biggest theme first; each with its count and one example.

    Each question joins the closest theme whose centre is within the similarity threshold, or
    starts a new one (one pass, in the order asked: cheap, and stable for the same log).
    """
    # Names out before grouping too: who is addressed says nothing about what is asked.
    texts = [text for text in (_without_members(t) for t in questions) if text]
    if not texts:
        return []
    if embedder is not None:
        vectors = np.asarray(embedder.encode(texts), dtype=np.float64)
        threshold = SEMANTIC_THEME_SIMILARITY
    else:
        vectors = _term_vectors(texts)
        threshold = LEXICAL_THEME_SIMILARITY
    members: list[list[int]] = []
    sums = np.zeros_like(vectors)  # row t: the sum of theme t's vectors (its centre's direction)
    for i, vector in enumerate(vectors):
        if members:
            centres = sums[: len(members)]
            norms = np.linalg.norm(centres, axis=1)
            similarity = (centres @ vector) / np.where(norms > 0, norms, 1.0)
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                members[best].append(i)
                sums[best] += vector
                continue
        sums[len(members)] = vector
        members.append([i])
    themes = []
    for group, total in zip(members, sums, strict=False):  # sums has a row per question; themes fewer
        # The example: the question closest to the theme's centre, the most typical of it.
        example = max(group, key=lambda i: float(vectors[i] @ total))
        themes.append((len(group), group[0], Theme(len(group), texts[example])))
    themes.sort(key=lambda item: (-item[0], item[1]))
    return [theme for _, _, theme in themes]


def _term_vectors(texts: Sequence[str]) -> np.ndarray:
    """Unit tf-idf vectors over the analyzer's stemmed terms; idf over these questions alone, so a
    word every unanswered question shares ("article") counts for little."""
    analysed = [analyze(t) for t in texts]
    vocabulary = sorted({term for terms in analysed for term in terms})
    column = {term: j for j, term in enumerate(vocabulary)}
    df = Counter(term for terms in analysed for term in set(terms))
    n = len(texts)
    matrix = np.zeros((n, max(1, len(vocabulary))), dtype=np.float64)
    for i, terms in enumerate(analysed):
        for term, count in Counter(terms).items():
            matrix[i, column[term]] = (1 + math.log(count)) * math.log((n + 1) / df[term])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: np.ndarray = matrix / np.where(norms > 0, norms, 1.0)
    return unit


def _without_members(text: str) -> str:
    """The question without member names: insights never show who asked, or whom it named."""
    return re.sub(r"\s{2,}", " ", _MEMBER_MENTION.sub("@…", text)).strip()


# -- words ------------------------------------------------------------------------------------------
def _date(day: dt.date) -> str:
    return f"{day.day} {day:%b}"


def _share(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "0%"


def summary_lines(insights: Insights, days: int) -> list[str]:
    """Every figure of the chart, as plain lines (no markup): the CLI prints them, the bot formats them."""
    i = insights
    period = f"last {days} day{'s' if days != 1 else ''} ({_date(i.first_day)} – {_date(i.last_day)}, UTC)"
    if i.empty:
        return [f"No questions yet in the {period}."]
    busiest = max(i.days, key=lambda d: (d.questions, d.day))
    lines = [
        f"Insights, {period}",
        f"Questions: {i.questions} · answered {i.answered} ({_share(i.answered, i.questions)}) · "
        f"declined {i.declined} · follow-ups {i.follow_ups}",
        f"Busiest day: {_date(busiest.day)}, {busiest.questions} questions",
        f"Votes: {i.helpful} helpful, {i.unhelpful} not helpful",
    ]
    if i.disliked:
        lines.append("Most 👎: " + "; ".join(f"{d.label} (👎 {d.down}, 👍 {d.up})" for d in i.disliked))
    if i.themes:
        lines.append(f"Unanswered, grouped by {i.themes_by}:")
        lines += [f"• {t.count} × e.g. “{t.example}”" for t in i.themes]
    if i.sections:
        lines.append("Sections asked about most: " + ", ".join(f"{name} ({n})" for name, n in i.sections))
    # The day-by-day figures last: over many days they are long, and a cut to fit Discord's limit
    # should take the detail, not the summary.
    lines.append(
        "Per day, answered/declined: "
        + (", ".join(f"{_date(d.day)} {d.answered}/{d.declined}" for d in i.days if d.questions) or "none")
    )
    voted = [d for d in i.days if d.helpful or d.unhelpful]
    if voted:
        lines.append(
            "Per day, helpful/not helpful: "
            + ", ".join(f"{_date(d.day)} {d.helpful}/{d.unhelpful}" for d in voted)
        )
    return lines


# -- the chart --------------------------------------------------------------------------------------
def _plain(text: str, limit: int) -> str:
    """A label as matplotlib should draw it: cut to ``limit`` characters, ``$`` not read as maths."""
    text = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return text.replace("$", r"\$")


def render_png(insights: Insights, days: int) -> bytes:
    """The chart as PNG bytes: 1000 × 720 px, four panels on a white card. CPU work: run it in a
    worker thread. Uses matplotlib's object API with the Agg canvas (no pyplot, no display, no
    global state), so renders in several threads at once do not interfere."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    i = insights
    figure = Figure(figsize=(10, 7.2), dpi=100, facecolor=CARD)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, left=0.07, right=0.98, top=0.84, bottom=0.08, hspace=0.55, wspace=0.5)
    figure.text(0.07, 0.955, "Questions and answers", fontsize=20, weight="bold", color=INK)
    figure.text(
        0.07,
        0.91,
        f"Last {days} days, {_date(i.first_day)} – {_date(i.last_day)} (UTC) · {i.questions} questions, "
        f"{_share(i.answered, i.questions)} answered · {i.helpful} helpful, {i.unhelpful} not helpful",
        fontsize=12.5,
        color=MUTED,
    )
    x = np.arange(len(i.days))
    ticks = x[:: max(1, math.ceil(len(x) / 5))]  # five dates fit under a panel
    tick_labels = [_date(i.days[t].day) for t in ticks]

    def style(ax: object, title: str) -> None:
        from matplotlib.axes import Axes

        assert isinstance(ax, Axes)
        ax.set_facecolor(CARD)
        ax.set_title(title, loc="left", fontsize=14, weight="bold", color=INK, pad=10)
        ax.tick_params(colors=MUTED, labelsize=11, length=0)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.spines["bottom"].set_color(GRID)

    per_day = figure.add_subplot(grid[0, 0])
    answered = [d.answered for d in i.days]
    declined = [d.declined for d in i.days]
    per_day.bar(x, answered, color=ANSWERED, label="answered", width=0.75)
    per_day.bar(x, declined, bottom=answered, color=DECLINED, label="declined", width=0.75)
    style(per_day, "Questions per day")
    per_day.set_xticks(ticks, tick_labels)
    per_day.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    per_day.grid(axis="y", color=GRID, linewidth=0.8)
    per_day.set_axisbelow(True)
    per_day.legend(frameon=False, fontsize=11, loc="upper left", ncols=2, labelcolor=INK,
                   bbox_to_anchor=(0, 1.02))  # fmt: skip
    per_day.set_ylim(0, max([1, *(d.questions for d in i.days)]) * 1.3)

    votes = figure.add_subplot(grid[0, 1])
    votes.bar(x, [d.helpful for d in i.days], color=HELPFUL, label="helpful", width=0.75)
    votes.bar(x, [-d.unhelpful for d in i.days], color=UNHELPFUL, label="not helpful", width=0.75)
    votes.axhline(0, color=MUTED, linewidth=0.8)
    style(votes, "Votes per day")
    votes.set_xticks(ticks, tick_labels)
    votes.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    votes.yaxis.set_major_formatter(lambda value, _: f"{abs(int(value))}")  # "not helpful" counts down
    votes.grid(axis="y", color=GRID, linewidth=0.8)
    votes.set_axisbelow(True)
    up = max([1, *(d.helpful for d in i.days)])
    down = max([1, *(d.unhelpful for d in i.days)])
    votes.set_ylim(-down * 1.2, up * 1.5)  # room above for the legend
    votes.legend(frameon=False, fontsize=11, loc="upper left", ncols=2, labelcolor=INK,
                 bbox_to_anchor=(0, 1.02))  # fmt: skip

    def ranked(ax_slot: object, title: str, rows: list[tuple[str, int]], colour: str, empty: str) -> None:
        """A bar per row, its label above it (long labels need the panel's whole width)."""
        ax = figure.add_subplot(ax_slot)  # type: ignore[call-overload]
        style(ax, title)
        ax.spines["bottom"].set_visible(False)
        ax.set_xticks([])
        ax.set_yticks([])
        if not rows:
            ax.text(0, 0.8, empty, fontsize=12.5, color=MUTED, transform=ax.transAxes, va="center")
            return
        most = max(n for _, n in rows)
        slots = max(len(rows), MAX_THEMES)
        for rank, (label, n) in enumerate(rows):
            y = slots - 1 - rank
            ax.barh(y - 0.18, n, color=colour, height=0.32)
            ax.text(n + most * 0.02, y - 0.18, str(n), va="center", fontsize=11.5, color=INK, weight="bold")
            ax.text(0, y + 0.22, label, va="center", fontsize=11.5, color=INK)
        ax.set_xlim(0, most * 1.12)
        ax.set_ylim(-0.6, slots - 0.35)

    ranked(
        grid[1, 0],
        f"Unanswered ({i.declined}), top themes",
        [(_plain(f"“{t.example}”", 52), t.count) for t in i.themes],
        DECLINED,
        "Every question was answered.",
    )
    ranked(
        grid[1, 1],
        "Sections asked about most",
        [(_plain(name, 52), n) for name, n in i.sections],
        ANSWERED,
        "No answered questions yet.",
    )
    out = io.BytesIO()
    figure.savefig(out, format="png", facecolor=CARD)
    return out.getvalue()
