"""Shards: the settings, one process over every shard (SQLite), and one process per shard range on
one PostgreSQL database (item 5 of issue 10: two real `python -m bot run` processes).

Servers are split as Discord splits them: guild id >> 22 % shard count. The stand-in serves each
shard's IDENTIFY with that shard's servers only and sends each server's events to its shard.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import discord
import pytest
from bot_process import ROOT, BotProcess
from standin import CHANNEL_MESSAGE, DiscordStandin, SentMessage, eventually, payloads, running_bot, shard_of
from standin.payloads import Payload
from storage_backends import PostgresBackend
from test_storage_startup import assert_never_online, start_refused

from bot.client import ArticleBot, ShardedArticleBot, describe_shards, make_bot
from bot.settings import Settings, SettingsError
from bot.storage import SQLiteStorage
from bot.storage import postgres as postgres_backend

BOT_OWNER_ID = 999_000_000_000_000_001
BURST = 24  # blocks sent at the process that is killed
KILL_AFTER = 8  # acknowledged blocks before the kill


# -- settings -----------------------------------------------------------------------------------
def shards(env: dict[str, str]) -> tuple[int | None, tuple[int, ...] | None]:
    settings = Settings.from_env(env, require_token=False)
    return settings.shard_count, settings.shard_ids


def test_shard_settings_read_counts_ranges_and_lists() -> None:
    assert shards({}) == (None, None)  # unsharded, as before
    assert shards({"ARTICLEBOT_SHARD_COUNT": "2"}) == (2, (0, 1))  # every shard in this process
    assert shards({"ARTICLEBOT_SHARD_COUNT": "4", "ARTICLEBOT_SHARD_IDS": "0-1"}) == (4, (0, 1))
    assert shards({"ARTICLEBOT_SHARD_COUNT": "4", "ARTICLEBOT_SHARD_IDS": "0,2"}) == (4, (0, 2))
    assert shards({"ARTICLEBOT_SHARD_COUNT": "8", "ARTICLEBOT_SHARD_IDS": " 6-7, 1 ,3"}) == (8, (1, 3, 6, 7))
    assert describe_shards((1, 3, 6, 7)) == "1,3,6-7"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ARTICLEBOT_SHARD_IDS": "0"}, "ARTICLEBOT_SHARD_IDS needs ARTICLEBOT_SHARD_COUNT"),
        ({"ARTICLEBOT_SHARD_COUNT": "0"}, "ARTICLEBOT_SHARD_COUNT must be a number of shards from 1 to 4096"),
        ({"ARTICLEBOT_SHARD_COUNT": "two"}, "ARTICLEBOT_SHARD_COUNT must be a number of shards"),
        ({"ARTICLEBOT_SHARD_COUNT": "2", "ARTICLEBOT_SHARD_IDS": "2"}, "'2' is not a range of shards 0 to 1"),
        (
            {"ARTICLEBOT_SHARD_COUNT": "4", "ARTICLEBOT_SHARD_IDS": "3-1"},
            "'3-1' is not a range of shards 0 to 3",
        ),
        ({"ARTICLEBOT_SHARD_COUNT": "4", "ARTICLEBOT_SHARD_IDS": "0-"}, "shard numbers and ranges like 0-1"),
        ({"ARTICLEBOT_SHARD_COUNT": "4", "ARTICLEBOT_SHARD_IDS": "a"}, "shard numbers and ranges like 0-1"),
    ],
)
def test_bad_shard_settings_are_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env, require_token=False)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_without_shard_settings_the_bot_is_the_unsharded_one(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "bot.db")
    plain = make_bot(Settings(token="t"), storage)
    sharded = make_bot(Settings(token="t", shard_count=2, shard_ids=(1,)), storage)
    assert type(plain) is ArticleBot and not isinstance(plain, discord.AutoShardedClient)
    assert isinstance(sharded, ShardedArticleBot) and isinstance(sharded, discord.AutoShardedClient)
    assert (sharded.shard_count, sharded.shard_ids) == (2, [1])


# -- a world of servers on two shards -----------------------------------------------------------
@dataclass
class Server:
    guild: Payload
    channel: Payload
    mod: Payload
    owner: Payload  # the bot's owner, a member here
    people: list[Payload]

    @property
    def id(self) -> int:
        return int(self.guild["id"])


def server_on(shard: int, name: str, people: int = 4) -> Server:
    owner = payloads.user(f"{name}-owner")
    bot_owner = payloads.member(payloads.user("bot-owner", id=str(BOT_OWNER_ID)))
    moderator = payloads.role("Moderator", permissions=discord.Permissions(manage_guild=True), position=1)
    mod = payloads.member(payloads.user(f"{name}-mod"), roles=[moderator])
    members = [payloads.member(payloads.user(f"{name}-member-{i}")) for i in range(people)]
    guild = payloads.guild(
        name,
        id=payloads.snowflake_on_shard(shard, 2),
        owner_id=owner["id"],
        roles=[moderator],
        channels=[payloads.text_channel("general")],
        members=[payloads.member(owner), mod, bot_owner, *members],
    )
    return Server(guild, guild["channels"][0], mod, bot_owner, members)


async def mention(standin: DiscordStandin, server: Server, asker: Payload, question: str) -> SentMessage:
    """A member mentions the bot in ``server``; the bot's reply to it (its nonce is the message id)."""
    message = standin.message_create(
        f"{payloads.mention(standin.bot_user)} {question}", channel=server.channel, author=asker
    )
    await standin.dispatch("MESSAGE_CREATE", message)
    return await standin.wait_for_sent_message(
        lambda m: m.kind == CHANNEL_MESSAGE and (m.request.json or {}).get("nonce") == message["id"],
        timeout=10,
    )


async def admin(
    standin: DiscordStandin,
    server: Server,
    subcommand: str,
    options: object = None,
    *,
    member: Payload | None = None,
) -> str:
    event = standin.slash_interaction(
        "admin",
        options,
        subcommand=subcommand,
        guild=server.guild,
        channel=server.channel,
        member=member or server.mod,
    )
    await standin.dispatch("INTERACTION_CREATE", event)
    sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"], timeout=10)
    return sent.content or ""


# -- one process, every shard, SQLite -----------------------------------------------------------
async def test_on_sqlite_one_process_runs_every_shard(tmp_path: Path) -> None:
    first, second = server_on(0, "first"), server_on(1, "second")
    async with DiscordStandin(guilds=[first.guild, second.guild]) as standin:
        settings = Settings(token="t", database=str(tmp_path / "bot.db"), shard_count=2, shard_ids=(0, 1))
        bot = make_bot(settings, SQLiteStorage(tmp_path / "bot.db"))
        async with running_bot(bot, standin):
            in_first = await mention(standin, first, first.people[0], "who called Musk a rocket man?")
            in_second = await mention(standin, second, second.people[0], "who called Musk a rocket man?")
        identified = sorted(m["d"]["shard"] for m in standin.gateway_received if m["op"] == 2)
    assert identified == [[0, 2], [1, 2]]
    for reply, server in ((in_first, first), (in_second, second)):
        assert reply.channel_id == server.channel["id"] and "**rocket man**" in reply.content


async def test_on_sqlite_a_process_for_some_shards_is_refused(tmp_path: Path) -> None:
    async with DiscordStandin() as standin:
        env = {"ARTICLEBOT_SHARD_COUNT": "2", "ARTICLEBOT_SHARD_IDS": "1"}
        code, stderr = await start_refused(standin, tmp_path / "bot.db", env_extra=env)
        assert_never_online(standin)
    assert code == 2 and "Traceback" not in stderr, stderr
    assert stderr.splitlines() == [
        "error: ARTICLEBOT_SHARD_IDS=1 runs only some of 2 shards, but a SQLite database serves one "
        "process: run every shard in this process (leave ARTICLEBOT_SHARD_IDS unset) or use PostgreSQL "
        "(ARTICLEBOT_DATABASE=postgresql://…) for one process per shard range"
    ]


# -- two processes, one PostgreSQL --------------------------------------------------------------
def process_env(postgres: PostgresBackend, shard_ids: str) -> dict[str, str]:
    return {
        "ARTICLEBOT_DATABASE": postgres.url,
        "ARTICLEBOT_SHARD_COUNT": "2",
        "ARTICLEBOT_SHARD_IDS": shard_ids,
        "ARTICLEBOT_OWNER_IDS": str(BOT_OWNER_ID),
    }


def connected_line(process: BotProcess) -> str:
    [line] = [line for line in process.output().splitlines() if " connected as " in line]
    return line


async def test_two_processes_split_the_servers_and_share_one_database(
    tmp_path: Path, postgres: PostgresBackend
) -> None:
    a, b = server_on(0, "alpha", people=BURST + 2), server_on(1, "beta")
    assert (shard_of(a.id, 2), shard_of(b.id, 2)) == (0, 1)
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    zebra = "Where did the zebra summit meet?"
    store = postgres.storage()  # the test's own view of the database (a third process)
    async with DiscordStandin(guilds=[a.guild, b.guild]) as standin:
        first = BotProcess(
            standin, database=tmp_path / "shard0.db", corpus=corpus, env=process_env(postgres, "0")
        )
        second = BotProcess(
            standin, database=tmp_path / "shard1.db", corpus=corpus, env=process_env(postgres, "1")
        )
        async with first, second:
            await eventually(lambda: standin.shard_connected(0) and standin.shard_connected(1), timeout=10)
            for process in (first, second):
                await eventually(lambda p=process: " connected as " in p.output(), timeout=10)
            # Each process is in its own shard's server only, and answers there.
            assert "in 1 server, shards 0 of 2" in connected_line(first)
            assert "in 1 server, shards 1 of 2" in connected_line(second)
            for server in (a, b):
                assert (await admin(standin, server, "settings set", {"cooldown": 0})).startswith("Saved.")
                answer = await mention(standin, server, server.people[0], "who called Musk a rocket man?")
                assert answer.channel_id == server.channel["id"] and "**rocket man**" in answer.content
            assert (await mention(standin, b, b.people[0], zebra)).content.startswith("I couldn't find that")

            # An owner's reload through the first process reaches the second.
            (corpus / "zebra.md").write_text(
                "# The zebra summit\n\nThe zebra summit of 2031 met in Oslo, under a dome of glass.\n",
                encoding="utf-8",
            )
            reloaded = await admin(standin, a, "reload", member=a.owner)
            assert reloaded.startswith("Reloaded: 2 documents"), reloaded
            await eventually(
                lambda: "corpus reloaded (an owner's reload elsewhere)" in second.output(), timeout=5
            )
            assert "met in Oslo" in (await mention(standin, b, b.people[1], zebra)).content

            # A server's documents changed by another process: the second stops answering from its
            # cached engine and answers from the new document.
            await store.open()
            await store.add_document(
                b.id, "lighthouse.md", "Lighthouse", "The kraken lighthouse is painted teal.", 1
            )
            await eventually(
                lambda: f"server {b.id}'s documents changed in another process" in second.output(), timeout=5
            )
            assert (
                "painted teal"
                in (await mention(standin, b, b.people[2], "What colour is the kraken lighthouse?")).content
            )

            # A burst of blocks at the first process, killed mid-burst.
            sent: dict[str, int] = {}
            for member in a.people[:BURST]:
                event = standin.slash_interaction(
                    "admin",
                    {"member": member},
                    subcommand="block",
                    guild=a.guild,
                    channel=a.channel,
                    member=a.mod,
                )
                sent[event["id"]] = int(member["user"]["id"])
                await standin.dispatch("INTERACTION_CREATE", event)
                await asyncio.sleep(0.01)

                def acked() -> set[int]:
                    return {
                        sent[m.interaction_id]
                        for m in standin.sent_messages()
                        if m.interaction_id in sent and re.match(r"<@\d+> is blocked", m.content or "")
                    }

                if len(acked()) >= KILL_AFTER:
                    break
            else:
                # A loaded machine: all sent before KILL_AFTER came back. Kill as soon as they have.
                await eventually(lambda: len(acked()) >= KILL_AFTER, timeout=20, interval=0.005)
            first.kill()
            assert await first.wait() == -signal.SIGKILL
            await asyncio.sleep(0.2)  # replies the first finished sending may still be in flight
            acknowledged = acked()
            assert KILL_AFTER <= len(acknowledged) < BURST
            # The second is untouched and keeps answering its server.
            assert (
                "**rocket man**"
                in (await mention(standin, b, b.people[3], "who called Musk a rocket man?")).content
            )

            # A new process for shard 0 (its claim died with the first) finds every acknowledged block.
            third = BotProcess(
                standin, database=tmp_path / "shard0-again.db", corpus=corpus, env=process_env(postgres, "0")
            )
            async with third:
                await eventually(lambda: standin.shard_connected(0), timeout=10)
                listed = await admin(standin, a, "blocked")
                # And a fourth for the same shard is refused in one line, never online.
                connections = len(standin.gateway_connections)
                code, stderr = await start_refused(
                    standin, tmp_path / "unused.db", env_extra=process_env(postgres, "0")
                )
                assert len(standin.gateway_connections) == connections
        blocks = {blocked.user_id for blocked in await store.list_blocks(a.id)}
        settings = [await store.get_settings(server.id) for server in (a, b)]
        await store.close()
    assert acknowledged <= blocks  # nothing acknowledged is lost
    for user_id in acknowledged:
        assert f"<@{user_id}>" in listed
    assert [s.cooldown_seconds for s in settings] == [0, 0]
    assert code == 2 and len(stderr.splitlines()) == 1, stderr
    assert "shard 0 of 2 is already served by another articlebot process" in stderr


async def test_a_process_whose_shard_was_taken_while_the_database_was_away_stops(
    postgres: PostgresBackend, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_on(0, "alpha")
    storage = postgres.storage()
    await storage.claim_shards([0], 1)  # as `run` does, before the bot starts
    settings = Settings(token="t", database=postgres.url, shard_count=1, shard_ids=(0,))
    rival = await asyncpg.connect(postgres.url)
    admin_conn = await asyncpg.connect(postgres.url)
    try:
        standin = DiscordStandin(guilds=[server.guild])
        async with standin, running_bot(make_bot(settings, storage), standin) as bot:
            assert (
                "**rocket man**"
                in (await mention(standin, server, server.people[0], "who called Musk a rocket man?")).content
            )
            waiting = asyncio.create_task(
                rival.fetchval("SELECT pg_advisory_lock($1, 0)", postgres_backend.SHARD_LOCK_NAMESPACE)
            )
            await asyncio.sleep(0.2)
            [row] = await admin_conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'articlebot coordination'"
            )
            await admin_conn.execute("SELECT pg_terminate_backend($1)", row["pid"])
            await asyncio.wait_for(waiting, 5)  # the rival holds shard 0 now
            await eventually(bot.is_closed, timeout=10)
    finally:
        await rival.close()
        await admin_conn.close()
    assert any(
        "took this process's shards" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records
    )


async def test_a_second_unsharded_process_on_one_postgresql_is_refused(
    tmp_path: Path, postgres: PostgresBackend
) -> None:
    """Unsharded is shard 0 of 1, Discord's every server: two such processes would answer twice."""
    env = {"ARTICLEBOT_DATABASE": postgres.url}
    async with DiscordStandin() as standin, BotProcess(standin, database=tmp_path / "first.db", env=env):
        connections = len(standin.gateway_connections)
        code, stderr = await start_refused(standin, tmp_path / "second.db", env_extra=env)
        assert len(standin.gateway_connections) == connections
        sharded = {**env, "ARTICLEBOT_SHARD_COUNT": "2", "ARTICLEBOT_SHARD_IDS": "1"}
        code_sharded, stderr_sharded = await start_refused(standin, tmp_path / "third.db", env_extra=sharded)
    assert code == 2 and len(stderr.splitlines()) == 1, stderr
    assert "error: shard 0 of 1 is already served by another articlebot process" in stderr
    assert code_sharded == 2 and len(stderr_sharded.splitlines()) == 1, stderr_sharded
    assert "runs with ARTICLEBOT_SHARD_COUNT=1, this one with 2" in stderr_sharded


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` as an operator runs it, with ``env`` as its environment's settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ARTICLEBOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_process_warns_of_the_shards_no_live_process_claims(
    tmp_path: Path, postgres: PostgresBackend
) -> None:
    def env(shard_ids: str) -> dict[str, str]:
        return {**process_env(postgres, shard_ids), "ARTICLEBOT_SHARD_COUNT": "3"}

    async with DiscordStandin() as standin:
        async with BotProcess(standin, database=tmp_path / "first.db", env=env("0")) as first:
            shards = run_cli({"ARTICLEBOT_DATABASE": postgres.url}, "shards")  # the count from the claims
            async with BotProcess(standin, database=tmp_path / "second.db", env=env("2")) as second:
                shards_later = run_cli(env("0"), "shards")
        shards_none = run_cli({"ARTICLEBOT_DATABASE": postgres.url, "ARTICLEBOT_SHARD_COUNT": "3"}, "shards")
    [claimed] = [line for line in first.output().splitlines() if "claimed by live processes" in line]
    assert claimed.endswith("shards of 3 claimed by live processes: 0 (this process: 0; others: none)")
    [warning] = [line for line in first.output().splitlines() if " WARNING " in line]
    assert warning.endswith(
        "shards 1-2 of 3 claimed by no live process: their servers go unanswered until one runs with "
        "ARTICLEBOT_SHARD_IDS=1-2 (`articlebot shards` shows the claims now)"
    )
    [warning] = [line for line in second.output().splitlines() if " WARNING " in line]
    assert "shard 1 of 3 claimed by no live process" in warning
    assert "claimed by live processes: 0,2 (this process: 2; others: 0)" in second.output()

    where = f"PostgreSQL {postgres.server.address}/{postgres.database}"
    assert (shards.returncode, shards.stderr) == (1, "")
    assert shards.stdout.splitlines() == [
        f"{where}: shards of 3 claimed by live processes: 0",
        "not claimed by any: 1-2 (their servers go unanswered)",
    ]
    assert shards_later.returncode == 1 and "not claimed by any: 1 (" in shards_later.stdout
    assert shards_none.returncode == 1 and "claimed by live processes: none" in shards_none.stdout
    assert "not claimed by any: 0-2" in shards_none.stdout


def test_shards_on_sqlite_says_there_is_nothing_to_claim(tmp_path: Path) -> None:
    shown = run_cli({"ARTICLEBOT_DATABASE": str(tmp_path / "bot.db")}, "shards")
    assert shown.returncode == 2 and shown.stdout == ""
    assert shown.stderr.startswith("error: ARTICLEBOT_DATABASE is SQLite: one process serves it")
