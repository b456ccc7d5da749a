"""A fortnight of generated activity for one server, and its /admin insights chart.

    python benchmarks/insights_example.py [--out docs/insights-example.png] [--db PATH] [--seed N]

Questions are drawn from evals/ (answerable ones) and from a few themes the article does not
cover, each asked in several wordings; the real engine answers every one (so answered/declined
are its own decisions), the answer is logged as the bot logs it, with a clock placed on each day,
and some members vote. Then the insights are built and drawn exactly as /admin insights does, and
the build and render times printed (docs/BENCHMARKS.md). It made docs/insights-example.png.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import insights  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.engine.semantic import SemanticUnavailable, shared_embedder  # noqa: E402
from bot.storage import SQLiteStorage  # noqa: E402

GUILD = 1_100_000_000_000_000_001
CHANNEL = 1_100_000_000_000_000_002
# Topics members ask about that the article does not cover, each in a few wordings.
UNCOVERED = [
    [
        "What is Tesla's stock price today?",
        "How much are Tesla shares worth now?",
        "Should I buy Tesla stock?",
        "Where is TSLA trading this week?",
    ],
    [
        "How do I bake sourdough bread?",
        "Best recipe for banana bread?",
        "How long do I proof bread dough?",
    ],
    [
        "Who will win the 2028 presidential election?",
        "Will Musk run for president in 2028?",
        "Who are the candidates for 2028?",
    ],
    [
        "When is the next Starship launch?",
        "What time does the Starship rocket launch tomorrow?",
    ],
]


def answerable_questions() -> list[str]:
    found = []
    for name in ("dev.jsonl", "heldout.jsonl"):
        for line in (ROOT / "evals" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("answerable"):
                    found.append(row["question"])
    return found


async def generate(db: Path, engine: Engine, days: int, seed: int, now: dt.datetime) -> None:
    rng = random.Random(seed)
    moment = now
    storage = SQLiteStorage(db, clock=lambda: moment)
    await storage.open()
    try:
        covered = answerable_questions()
        first = now.date() - dt.timedelta(days=days - 1)
        for offset in range(days):
            day = first + dt.timedelta(days=offset)
            weekend = day.weekday() >= 5
            busy = rng.randint(14, 24) + (8 if weekend else 0) + (10 if offset == days // 2 else 0)
            for n in range(busy):
                seconds = rng.randint(8 * 3600, 23 * 3600)
                moment = dt.datetime.combine(day, dt.time(0), dt.UTC) + dt.timedelta(seconds=seconds + n)
                if moment > now:
                    moment = now - dt.timedelta(seconds=busy - n)
                theme = rng.random() < 0.22
                question = rng.choice(rng.choice(UNCOVERED)) if theme else rng.choice(covered)
                answer = engine.ask(question)
                top = answer.hits[0] if answer.answered and answer.hits else None
                member = 2_000 + rng.randint(0, 40)
                await storage.log_question(
                    GUILD,
                    CHANNEL,
                    member,
                    answer.question,
                    answer.answered,
                    top.passage.id if top else None,
                    rng.uniform(2, 9),
                    confidence=top.confidence if top else None,
                    section=(top.passage.section or top.passage.document_title) if top else None,
                    follow_up_of=None,
                )
                if top and rng.random() < 0.3:
                    # Mostly helpful; one passage that often answers the wrong thing gets more 👎.
                    down = rng.random() < (0.45 if top.passage.position == 3 else 0.12)
                    await storage.record_feedback(GUILD, top.passage.id, member, -1 if down else 1)
    finally:
        await storage.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "insights-example.png")
    parser.add_argument("--db", type=Path, help="keep the generated database here")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    now = dt.datetime(2026, 11, 30, 21, 0, tzinfo=dt.UTC)
    engine = Engine.from_path(ROOT / "corpus")
    with tempfile.TemporaryDirectory() as folder:
        db = args.db or Path(folder) / "insights.db"
        await generate(db, engine, args.days, args.seed, now)
        storage = SQLiteStorage(db)
        await storage.open()
        try:
            first, questions, votes = await insights.read(storage, GUILD, args.days, now)
        finally:
            await storage.close()
    try:
        embedder = shared_embedder()
    except SemanticUnavailable:
        embedder = None
    started = time.perf_counter()
    built = insights.build(first, args.days, questions, votes, engine, embedder)
    build_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    png = insights.render_png(built, args.days)
    render_ms = (time.perf_counter() - started) * 1000
    args.out.write_bytes(png)
    print("\n".join(insights.summary_lines(built, args.days)))
    print(
        f"\n{len(questions)} questions, {len(votes)} votes; build {build_ms:.0f} ms "
        f"(themes by {built.themes_by}), render {render_ms:.0f} ms, {len(png) / 1000:.0f} kB -> {args.out}"
    )


if __name__ == "__main__":
    asyncio.run(main())
