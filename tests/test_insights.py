"""/admin insights and `python -m bot insights`: the figures, the themes, the chart."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, RunBot, invoke
from PIL import Image
from standin import DiscordStandin

from bot import insights
from bot.engine import Engine
from bot.engine.semantic import shared_embedder
from bot.storage import LoggedQuestion, SQLiteStorage, Vote

NOW = dt.datetime.now(dt.UTC)
BREAD = [
    "How do I bake sourdough bread?",
    "Best recipe for banana bread?",
    "bread recipe with sourdough starter",
]
STOCK = ["What is Tesla's stock price today?", "Tesla stock price this week?", "Should I buy Tesla stock?"]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_path(ROOT / "corpus", semantic=False)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def assert_a_real_chart(data: bytes) -> None:
    width, height = png_size(data)
    assert 800 <= width <= 1200 and 500 <= height <= 1000  # Discord shows it about this wide
    pixels = Image.open(io.BytesIO(data)).convert("RGB")
    colours = pixels.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 50  # bars, text and anti-aliasing, not a blank card
    assert any(c[1] == (0x2F, 0x6D, 0xB5) for c in colours)  # the answered bars are drawn


def question(
    day: int,
    answered: bool,
    text: str = "q",
    *,
    top_passage_id: str | None = None,
    section: str | None = None,
    follow_up_of: int | None = None,
) -> LoggedQuestion:
    at = NOW - dt.timedelta(days=day)
    return LoggedQuestion(
        0, 1, 2, 3, text, answered, top_passage_id, 1.0, at, section=section, follow_up_of=follow_up_of
    )


# -- counting ---------------------------------------------------------------------------------------
def test_counts_per_day_votes_sections_and_most_disliked(engine: Engine) -> None:
    rift = next(p for p in engine.passages if p.section == "The Rift Begins")
    questions = [
        question(0, True, section="The Rift Begins"),
        question(0, True, top_passage_id=rift.id),  # logged before schema 2: section from its passage
        question(0, False, "How do I bake bread?"),
        question(2, True, section="What Happens Next?", follow_up_of=7),
        question(20, True),  # outside the window
    ]
    votes = [
        Vote(rift.id, -1, NOW),
        Vote(rift.id, -1, NOW - dt.timedelta(days=1)),
        Vote(rift.id, +1, NOW),
        Vote("gone:1", +1, NOW),
    ]
    first, _ = insights.window(7, NOW)
    found = insights.build(first, 7, questions, votes, engine)
    assert len(found.days) == 7 and found.days[-1].day == NOW.date()
    assert (found.days[-1].answered, found.days[-1].declined) == (2, 1)
    assert (found.days[-1].helpful, found.days[-1].unhelpful) == (2, 1)
    assert (found.answered, found.declined, found.follow_ups) == (3, 1, 1)
    assert found.sections == [("The Rift Begins", 2), ("What Happens Next?", 1)]
    assert found.disliked == [insights.Disliked(rift.place, down=2, up=1)]
    lines = insights.summary_lines(found, 7)
    assert "Questions: 4 · answered 3 (75%) · declined 1 · follow-ups 1" in lines
    assert "Votes: 2 helpful, 2 not helpful" in lines


def test_an_empty_window_says_so(engine: Engine) -> None:
    first, _ = insights.window(14, NOW)
    found = insights.build(first, 14, [question(30, True)], [], engine)
    assert found.empty
    assert insights.summary_lines(found, 14)[0].startswith("No questions yet in the last 14 days")


@pytest.mark.parametrize("days", [0, insights.MAX_DAYS + 1])
def test_a_window_out_of_range_is_refused(days: int) -> None:
    with pytest.raises(ValueError, match="days must be between 1 and"):
        insights.window(days)


# -- themes -----------------------------------------------------------------------------------------
# Words: paraphrases that share rare words. Meaning: one that shares only "bread" still joins.
SHARED_WORDS = ["How do I bake sourdough bread?", "sourdough bread recipe?", "how long to bake bread"]


@pytest.mark.parametrize(
    ("semantic", "bread"), [(False, SHARED_WORDS), (True, BREAD)], ids=["words", "meaning"]
)
def test_similar_unanswered_questions_form_one_theme(semantic: bool, bread: list[str]) -> None:
    embedder = shared_embedder() if semantic else None
    themes = insights.group_themes([*bread, *STOCK, "Will it rain in Paris tomorrow?"], embedder)
    counts = sorted(t.count for t in themes)
    assert counts == [1, 3, 3]
    examples = {t.example for t in themes if t.count == 3}
    assert any(e in bread for e in examples) and any(e in STOCK for e in examples)


def test_a_theme_example_never_names_a_member() -> None:
    (theme,) = insights.group_themes(["@Alice how do I bake bread?", "@Bob how do I bake bread?"])
    assert "Alice" not in theme.example and "Bob" not in theme.example


def test_the_chart_is_a_png_of_discord_size(engine: Engine) -> None:
    first, _ = insights.window(14, NOW)
    questions = [question(d % 14, d % 3 != 0, BREAD[d % 3], section="The Rift Begins") for d in range(40)]
    assert_a_real_chart(insights.render_png(insights.build(first, 14, questions, [], engine), 14))


# -- /admin insights through the stand-in -----------------------------------------------------------
async def fill(database: Path, guild_id: int) -> dict[str, int]:
    """A week of questions and votes in server 'Stand-in Guild'; returns the counts written."""
    moment = NOW
    store = SQLiteStorage(database, clock=lambda: moment)
    await store.open()
    written = {"answered": 0, "declined": 0, "helpful": 0, "unhelpful": 0}
    try:
        for day in range(7):
            for n in range(day + 2):
                moment = NOW - dt.timedelta(days=day, minutes=n)
                answered = n % 3 != 0
                text = "Who owns X?" if answered else BREAD[n % 3]
                await store.log_question(guild_id, 10, 7, text, answered, None, 2.0, section="The Battle")
                written["answered" if answered else "declined"] += 1
            if day % 2 == 0:
                await store.record_feedback(guild_id, f"article:p{day}", 7, -1 if day == 2 else 1)
                written["unhelpful" if day == 2 else "helpful"] += 1
        moment = NOW - dt.timedelta(days=40)  # outside the fortnight: not counted
        await store.log_question(guild_id, 10, 7, "old?", True, None, 2.0)
    finally:
        await store.close()
    return written


async def test_admin_insights_sends_one_png_and_the_same_figures(
    standin: DiscordStandin, run_bot: RunBot, database: Path
) -> None:
    written = await fill(database, int(standin.guild["id"]))
    mod = standin.find_member("mod")
    async with run_bot():
        sent = await invoke(standin, "admin", subcommand="insights", member=mod)
        reply = await standin.wait_for_sent_message(
            lambda m: m.interaction_id == sent.interaction_id and bool(m.files)
        )
    assert reply.ephemeral
    (upload,) = reply.files
    assert upload.filename == "insights.png"
    assert_a_real_chart(upload.data)
    text = reply.content or ""
    total = written["answered"] + written["declined"]
    assert f"Questions: {total} · answered {written['answered']}" in text
    assert f"declined {written['declined']} · follow-ups 0" in text
    assert f"Votes: {written['helpful']} helpful, {written['unhelpful']} not helpful" in text
    assert "The Battle (" in text and "e.g. “" in text
    assert reply.allowed_mentions == {"parse": []}
    assert not re.search(r"<@!?\d+>", text)  # nobody named, nobody pinged


async def test_admin_insights_is_refused_to_members_and_empty_servers_get_no_chart(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod = standin.find_member("mod")
    async with run_bot():
        refused = await invoke(standin, "admin", subcommand="insights", member=standin.member)
        mark = standin.mark()
        await invoke(standin, "admin", {"days": 3}, subcommand="insights", member=mod)
        empty = await standin.wait_for_sent_message(lambda m: bool(m.content), since=mark)
    assert refused.ephemeral and refused.content.startswith("Only moderators can use this")
    assert not refused.files
    assert empty.content.startswith("No questions yet in the last 3 days") and not empty.files


# -- the terminal -----------------------------------------------------------------------------------
def test_cli_writes_the_chart_and_prints_the_figures(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    written = asyncio.run(fill(database, 42))
    out = tmp_path / "chart.png"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTICLEBOT_")}
    env.update(ARTICLEBOT_DATABASE=str(database), ARTICLEBOT_VECTOR_CACHE=os.environ["TESTS_VECTOR_CACHE"])
    command = [sys.executable, "-m", "bot", "insights", "--guild", "42", "--out", str(out)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"answered {written['answered']}" in result.stdout and f"Chart written to {out}" in result.stdout
    assert_a_real_chart(out.read_bytes())
    nothing = subprocess.run(
        [*command[:4], "--guild", "7", "--out", str(tmp_path / "none.png")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert nothing.returncode == 1 and nothing.stdout.startswith("No questions yet")
    assert not (tmp_path / "none.png").exists()


def test_sixty_busy_days_fit_one_message_and_keep_the_summary(engine: Engine) -> None:
    from bot.cogs.admin import insights_text

    days = insights.MAX_DAYS
    first, _ = insights.window(days, NOW)
    questions = [question(d, d % 4 != 0, f"{BREAD[d % 3]} number {d}") for d in range(days) for _ in range(3)]
    votes = [Vote(f"article:p{d}", 1 if d % 3 else -1, NOW - dt.timedelta(days=d)) for d in range(days)]
    text = insights_text(insights.build(first, days, questions, votes, engine), days)
    assert len(text) <= 2000
    assert "Unanswered, grouped by words:" in text and "Votes: 40 helpful, 20 not helpful" in text
