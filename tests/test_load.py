"""Under load: every question answered exactly once, and rightly, through 429s and reconnects.

A smaller run of ``benchmarks/bench_load.py`` (same machinery: ``benchmarks/load_driver.py``),
in-process against the stand-in; the fixture's ``assert_clean`` at teardown fails the test on any
request Discord would reject, including an interaction answered after its 3 s deadline.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from bot_process import ROOT, BotProcess
from conftest import RunBot, invoke
from standin import CHANNEL_MESSAGE, FOLLOWUP, INTERACTION_CALLBACK, DiscordStandin, Request, SentMessage
from storage_backends import PostgresBackend

from benchmarks.load_driver import (
    LoadPlan,
    add_servers,
    answer_kinds,
    expected_answers,
    load_questions,
    populate,
    register_commands,
    run_load,
    set_cooldown,
    wait_for_vectors,
)
from bot.storage import GuildSettings

PLAN = LoadPlan(
    questions=200,
    members=20,
    channels=5,
    rate_limit_fraction=0.1,
    answer_timeout=10.0,
    reconnect_timeout=10.0,
    run_timeout=60.0,
)


async def test_200_questions_are_each_answered_exactly_once_through_429s_and_reconnects(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    world = populate(standin, PLAN.members, PLAN.channels)  # before the bot connects: in GUILD_CREATE
    questions = load_questions()
    async with run_bot() as bot:
        await set_cooldown(standin, world, 0)  # back-to-back questions get answers, not "wait"
        await wait_for_vectors(standin, world)  # expected answers are semantic
        # The real engine, in-process, on the corpus the bot reads, with the server's settings:
        # what each reply must quote.
        settings = await bot.storage.get_settings(int(standin.guild["id"]))
        expected = expected_answers(questions, bot.library.corpus, settings)
        result = await run_load(standin, PLAN, world, questions)

    problems = result.problems()
    assert not problems, "\n".join(problems[:20])
    assert result.exactly_once == PLAN.questions
    # Each kind of reconnect happened: op 7 and the dropped connection resumed, op 9 re-identified.
    assert [d.kind for d in result.disruptions] == ["resume", "invalid_session", "drop"]
    assert result.resumes == 2 and result.identifies == 1
    assert result.rate_limited > 0  # the 429s were served, and retried
    # Real answers: each one quotes the passage the engine gives for its question, or is the
    # honest "not in the article" where the engine declines; no cooldown, no error.
    wrong = result.wrong_answers(expected)
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong[:20])
    outcomes = result.outcomes()
    assert outcomes["cooldown"] == outcomes["error"] == 0
    assert outcomes["answered"] > outcomes["declined"] > 0
    assert sum(outcomes.values()) == PLAN.questions  # every reply was one of those checked
    # /ask is answered by its callback or, when already 1 s old (a busy process), deferred in time
    # and completed by its follow-up; mentions by a channel reply.
    kinds = answer_kinds(result)
    assert set(kinds) <= {INTERACTION_CALLBACK, FOLLOWUP, CHANNEL_MESSAGE}
    assert kinds[INTERACTION_CALLBACK] + kinds[FOLLOWUP] == sum(1 for a in result.asks if a.kind == "slash")
    assert kinds[CHANNEL_MESSAGE] == sum(1 for a in result.asks if a.kind == "mention")
    assert result.late_interactions == 0  # Discord's 3 s, for every first callback (the stand-in's check)


async def test_two_shard_processes_on_postgresql_answer_each_question_exactly_once(
    tmp_path: Path, postgres: PostgresBackend
) -> None:
    """``bench_load.py --database postgresql --shards 2`` in small: two real processes, one shard
    each, two servers split between them; every reconnect hits both processes' sessions."""
    plan = replace(PLAN, shard_count=2)
    # Two bots, PostgreSQL and the stand-in on a shared 2-core machine can be starved past Discord's
    # 3 s for an /ask (as the benchmark was once, at load average 4.5): the deadline is the first
    # test's; here what is checked is that the two processes answer every question exactly once.
    async with DiscordStandin(interaction_deadline=None) as standin:
        world = add_servers(standin, 2, plan.members, plan.channels, 2)
        await register_commands(standin, world, tmp_path / "sync.db")
        async with contextlib.AsyncExitStack() as stack:
            for shard in (0, 1):
                env = {
                    "ARTICLEBOT_DATABASE": postgres.url,
                    "ARTICLEBOT_SHARD_COUNT": "2",
                    "ARTICLEBOT_SHARD_IDS": str(shard),
                }
                await stack.enter_async_context(
                    BotProcess(standin, database=tmp_path / f"{shard}.db", env=env)
                )
            await set_cooldown(standin, world, 0)
            await wait_for_vectors(standin, world)  # expected answers are semantic
            questions = load_questions()
            expected = expected_answers(questions, ROOT / "corpus", GuildSettings(cooldown_seconds=0))
            result = await run_load(standin, plan, world, questions)
        standin.assert_clean()
    problems = result.problems()
    assert not problems, "\n".join(problems[:20])
    assert result.exactly_once == plan.questions
    assert not result.wrong_answers(expected)
    asked_in = {ask.guild["id"] for ask in result.asks}
    assert asked_in == {server.guild["id"] for server in world.servers}  # both shards' servers
    assert [d.shards for d in result.disruptions] == [2, 2, 2]
    assert result.resumes == 4 and result.identifies == 2  # each process resumed twice, identified once


# -- found under load: five 429s in a row ---------------------------------------------------------
# discord.py retries a 429 four times (five tries in all, HTTPClient.request and the webhook
# adapter alike), then raises HTTPException(429). At 10 % 429s that is one call in 100,000: about
# one lost answer in every 15 full benchmarks of 3 x 2,000 questions. rate_limit_next(5) makes it
# certain here.


def channel_message_post(request: Request) -> bool:
    return request.method == "POST" and request.route == "/channels/{channel_id}/messages"


def replied_to(sent: SentMessage) -> str:
    return str((sent.message_reference or {}).get("message_id"))  # discord.py sends a number


def interaction_callback(request: Request) -> bool:
    return request.route == "/interactions/{interaction_id}/{interaction_token}/callback"


async def test_a_mention_is_answered_even_when_its_reply_is_rate_limited_five_times(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    async with run_bot() as bot:
        assert bot.user is not None
        standin.rate_limit_next(5, predicate=channel_message_post)
        message = standin.message_create(f"<@{bot.user.id}> who owns X?")
        await standin.dispatch("MESSAGE_CREATE", message)
        reply = await standin.wait_for_sent_message(
            lambda m: m.kind == CHANNEL_MESSAGE and replied_to(m) == message["id"], timeout=3.0
        )
    assert "Musk" in (reply.content or "")


async def test_ask_gets_its_answer_even_when_the_callback_is_rate_limited_five_times(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    async with run_bot():
        standin.rate_limit_next(5, predicate=interaction_callback)
        sent = await invoke(standin, "ask", {"question": "Who owns X?"})
    assert sent.embeds and not sent.ephemeral, sent.content
