"""One admission gate (block, channel, cooldown) for every path, and one way errors become replies.

The real bot against the stand-in: commands, the Apps menu, mentions and the persistent *More* and
👍/👎 buttons. Which part of the rule applies to which action is the table in bot/checks.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import discord
import pytest
from conftest import BOT_OWNER_ID, ROOT, RunBot, custom_ids, invoke
from standin import CHANNEL_MESSAGE, DiscordStandin, SentMessage, running_bot

from bot import client
from bot.checks import Blocked, ChannelClosed
from bot.client import GENERIC_ERROR, ArticleBot
from bot.settings import Settings
from bot.storage import Admission, SQLiteStorage, StorageError

BLOCKED = str(Blocked())


async def press(
    standin: DiscordStandin, custom_id: str, message: dict[str, Any], **kwargs: Any
) -> SentMessage:
    """Click a button as a member would; the bot's reply to that click."""
    click = standin.component_interaction(custom_id, message, **kwargs)
    await standin.dispatch("INTERACTION_CREATE", click)
    reply = await standin.wait_for_sent_message(lambda m: m.interaction_id == click["id"])
    # exactly one reply: a refusal must not be followed by the passages or a second message
    assert len(standin.sent_messages(interaction_id=click["id"])) == 1
    return reply


async def public_answer(standin: DiscordStandin, member: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The mod's public answer with its buttons: (message, More's id, 👍's id)."""
    sent = await invoke(standin, "ask", {"question": "Why is Musk struggling?"}, member=member)
    assert sent.message is not None and sent.embeds
    more_id, up_id, _, _ = custom_ids(sent)
    return sent.message, more_id, up_id


async def mention(standin: DiscordStandin, bot: ArticleBot, text: str, **kwargs: Any) -> dict[str, Any]:
    assert bot.user is not None
    message = standin.message_create(f"<@{bot.user.id}> {text}".strip(), **kwargs)
    await standin.dispatch("MESSAGE_CREATE", message)
    return message


async def deleted(standin: DiscordStandin, sent: SentMessage) -> None:
    """Wait until the bot deletes the message it sent (a self-deleting public notice)."""
    assert sent.message is not None
    path = f"/channels/{sent.channel_id}/messages/{sent.message['id']}"
    await standin.wait_for_request(lambda r: r.method == "DELETE" and r.path.endswith(path))


# -- the buttons go through the gate ---------------------------------------------------------------
async def test_a_blocked_member_cannot_use_more_or_the_votes(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod, alice = standin.find_member("mod"), standin.member
    guild_id = int(standin.guild["id"])
    async with run_bot() as bot:
        message, more_id, up_id = await public_answer(standin, mod)
        await invoke(standin, "admin", {"member": alice, "reason": "spam"}, subcommand="block", member=mod)
        more = await press(standin, more_id, message, member=alice)
        vote = await press(standin, up_id, message, member=alice)
        feedback = await bot.storage.feedback_summary(guild_id)
        # the mod, not blocked, still can: the refusal is alice's, not the button's
        mods_vote = await press(standin, up_id, message, member=mod)
    assert more.ephemeral and more.content == BLOCKED and not more.embeds and not more.components
    assert vote.ephemeral and vote.content == BLOCKED
    assert feedback == []  # nothing stored for the blocked member
    assert mods_vote.content.startswith("Thanks, your 👍")


async def test_more_and_votes_are_refused_in_a_closed_channel(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod = standin.find_member("mod")
    bot_log = next(c for c in standin.guild["channels"] if c["name"] == "bot-log")
    async with run_bot() as bot:
        message, more_id, up_id = await public_answer(standin, mod)  # in #general, still open
        await invoke(standin, "admin", {"channel": bot_log}, subcommand="channels allow", member=mod)
        more = await press(standin, more_id, message)
        vote = await press(standin, up_id, message)
        feedback = await bot.storage.feedback_summary(int(standin.guild["id"]))
    closed = str(ChannelClosed([int(bot_log["id"])]))
    assert closed == f"I don't answer in this channel. Ask in <#{bot_log['id']}>."
    assert more.ephemeral and more.content == closed and not more.embeds
    assert vote.ephemeral and vote.content == closed
    assert feedback == []


# -- the cooldown, per the table ----------------------------------------------------------------------
async def test_more_and_votes_neither_wait_for_nor_spend_the_cooldown(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    alice = standin.member
    async with run_bot():
        sent = await invoke(
            standin, "ask", {"question": "Why is Musk struggling?"}
        )  # alice's cooldown starts
        assert sent.message is not None
        more_id, up_id, _, _ = custom_ids(sent)
        more = await press(standin, more_id, sent.message, member=alice)  # right after: still works
        vote = await press(standin, up_id, sent.message, member=alice)
        again = await invoke(standin, "ask", {"question": "Who owns X?"})
    assert more.embeds and more.embeds[0]["fields"][0]["name"].startswith("[4] ")
    assert vote.content.startswith("Thanks, your 👍")
    assert again.ephemeral and again.content.startswith("Easy there: you can ask again in")


async def test_pressing_more_first_leaves_the_next_question_free(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod, alice = standin.find_member("mod"), standin.member
    async with run_bot():
        message, more_id, _ = await public_answer(standin, mod)
        more = await press(standin, more_id, message, member=alice)
        asked = await invoke(standin, "ask", {"question": "Who owns X?"}, member=alice)
    assert more.embeds and asked.embeds and not asked.ephemeral


async def test_ask_the_mention_and_the_apps_menu_share_one_cooldown(
    standin: DiscordStandin, run_bot: RunBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        client, "SHORT_LIVED", 0.05, raising=False
    )  # a public notice deletes itself, here at once
    async with run_bot() as bot:
        target = standin.add_message(standin.message_create("which hashtags trended during the feud?"))
        first = standin.message_context_interaction("Ask the article", target)
        await standin.dispatch("INTERACTION_CREATE", first)
        answered = await standin.wait_for_sent_message(lambda m: m.interaction_id == first["id"])
        slash = await invoke(standin, "ask", {"question": "Who owns X?"})
        mark = standin.mark()
        await mention(standin, bot, "who owns X?")
        by_mention = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE, since=mark)
        await deleted(standin, by_mention)
    assert answered.embeds
    assert slash.ephemeral and slash.content.startswith("Easy there")
    assert by_mention.content.startswith("Easy there")


async def test_asking_about_a_message_without_text_spends_no_cooldown(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    async with run_bot():
        target = standin.add_message(standin.message_create(""))
        event = standin.message_context_interaction("Ask the article", target)
        await standin.dispatch("INTERACTION_CREATE", event)
        empty = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
        asked = await invoke(standin, "ask", {"question": "Who owns X?"})
    assert empty.ephemeral and empty.content == "That message has no text to ask about."
    assert asked.embeds


async def test_help_is_open_to_all_and_article_follows_block_and_channel(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod, alice = standin.find_member("mod"), standin.member
    bot_log = next(c for c in standin.guild["channels"] if c["name"] == "bot-log")
    async with run_bot():
        await invoke(standin, "admin", {"member": alice}, subcommand="block", member=mod)
        help_blocked = await invoke(standin, "help")
        article_blocked = await invoke(standin, "article")
        await invoke(standin, "admin", {"member": alice}, subcommand="unblock", member=mod)
        await invoke(standin, "admin", {"channel": bot_log}, subcommand="channels allow", member=mod)
        help_closed = await invoke(standin, "help")
        article_closed = await invoke(standin, "article")
        article_open = await invoke(standin, "article", channel=bot_log)
        # neither spends the cooldown: a question right after is answered
        asked = await invoke(standin, "ask", {"question": "Who owns X?"}, channel=bot_log)
    assert help_blocked.ephemeral and "/ask" in (help_blocked.content or "")
    assert article_blocked.ephemeral and article_blocked.content == BLOCKED
    assert help_closed.ephemeral and "/ask" in (help_closed.content or "")
    assert article_closed.content == str(ChannelClosed([int(bot_log["id"])]))
    assert article_open.embeds
    assert asked.embeds


async def test_admin_is_exempt_so_a_moderator_can_reopen_a_channel_from_anywhere(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod, owner = standin.find_member("mod"), standin.find_member("owner")
    bot_log = next(c for c in standin.guild["channels"] if c["name"] == "bot-log")
    async with run_bot() as bot:
        await invoke(standin, "ask", {"question": "Who owns X?"}, member=mod)  # the mod's cooldown runs
        await invoke(standin, "admin", {"member": mod}, subcommand="block", member=owner)
        await invoke(standin, "admin", {"channel": bot_log}, subcommand="channels allow", member=mod)
        # blocked, on cooldown, in the closed #general: /admin still works
        cleared = await invoke(
            standin, "admin", {"channel": bot_log}, subcommand="channels clear", member=mod
        )
        rules = await bot.storage.get_channel_rules(int(standin.guild["id"]))
    assert cleared.ephemeral and "Easy there" not in (cleared.content or "")
    assert BLOCKED not in (cleared.content or "")
    assert rules.permits(int(standin.channel["id"]))


async def test_every_command_has_its_own_row_in_the_table(standin: DiscordStandin, run_bot: RunBot) -> None:
    """A new command cannot slip past the gate by being missing from the table."""
    from bot.checks import COMMAND_ACTIONS  # imported here so the other tests run on the old code

    async with run_bot() as bot:
        names = {c.name for kind in discord.AppCommandType for c in bot.tree.get_commands(type=kind)}
    assert names == {"ask", "article", "help", "admin", "Ask the article"}
    assert names <= set(COMMAND_ACTIONS)


# -- the mention path still refuses as before ------------------------------------------------------
async def test_a_blocked_member_s_mentions_are_ignored(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod, alice = standin.find_member("mod"), standin.member
    async with run_bot() as bot:
        await invoke(standin, "admin", {"member": alice}, subcommand="block", member=mod)
        await mention(standin, bot, "who owns X?")
        await mention(standin, bot, "")
        # a marker: the mod's mention is answered, and it is the only reply
        await mention(standin, bot, "who owns X?", author=mod)
        await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
    [only] = standin.sent_messages(kind=CHANNEL_MESSAGE)
    assert only.content is not None and "**owned** by Musk" in only.content


async def test_a_bare_mention_gets_the_usage_line_and_costs_no_cooldown(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    async with run_bot() as bot:
        await mention(standin, bot, "")
        usage = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
        asked = await invoke(standin, "ask", {"question": "Who owns X?"})
    assert usage.content is not None and usage.content.startswith("Ask me about the article")
    assert asked.embeds


async def test_mentions_turned_off_are_ignored_and_cost_no_cooldown(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod = standin.find_member("mod")
    async with run_bot() as bot:
        await invoke(standin, "admin", {"mentions": False}, subcommand="settings set", member=mod)
        await mention(standin, bot, "who owns X?")
        asked = await invoke(standin, "ask", {"question": "Who owns X?"})
    assert standin.sent_messages(kind=CHANNEL_MESSAGE) == []
    assert asked.embeds


# -- one error function for every path --------------------------------------------------------------
class FailingStorage(SQLiteStorage):
    """The real SQLite storage, except that the named methods raise ``failure`` while it is set.

    No real failure on this branch raises StorageError yet (the storage work converts the driver's
    errors); this stands in for it at the exact storage calls each path makes.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failure: BaseException | None = None
        self.failing: set[str] = set()

    def _maybe_fail(self, name: str) -> None:
        if self.failure is not None and name in self.failing:
            raise self.failure

    async def admission(self, guild_id: int, user_id: int) -> Admission:
        self._maybe_fail("admission")
        return await super().admission(guild_id, user_id)

    async def record_feedback(self, guild_id: int, passage_id: str, user_id: int, vote: int) -> None:
        self._maybe_fail("record_feedback")
        await super().record_feedback(guild_id, passage_id, user_id, vote)

    async def list_blocks(self, guild_id: int) -> Any:
        self._maybe_fail("list_blocks")
        return await super().list_blocks(guild_id)


@asynccontextmanager
async def bot_on(standin: DiscordStandin, storage: SQLiteStorage) -> AsyncIterator[ArticleBot]:
    settings = Settings(
        token="standin-token",
        database=str(storage.path),
        corpus=ROOT / "corpus",
        owner_ids=frozenset({BOT_OWNER_ID}),
    )
    async with running_bot(ArticleBot(settings, storage), standin) as bot:
        await bot.tree.sync()
        yield bot


FAILURES = {
    "storage": StorageError("database data/articlebot.db is read-only: make it writable, then restart"),
    "other": RuntimeError("engine on fire"),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
async def test_every_path_reports_a_failure_through_the_one_function(
    standin: DiscordStandin,
    database: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    monkeypatch.setattr(client, "SHORT_LIVED", 0.05, raising=False)
    failure = FAILURES[kind]
    mod = standin.find_member("mod")
    storage = FailingStorage(database)
    async with bot_on(standin, storage) as bot:
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        message, more_id, up_id = await public_answer(standin, mod)
        storage.failure = failure
        with caplog.at_level(logging.INFO):
            # inside a command's body, and inside a button's
            storage.failing = {"list_blocks", "record_feedback"}
            command_body = await invoke(standin, "admin", subcommand="blocked", member=mod)
            button_body = await press(standin, up_id, message)
            # at the gate itself: it reads the server's settings (and blocks, channel rules) for
            # /ask, More and a mention
            storage.failing = {"admission"}
            command_gate = await invoke(standin, "ask", {"question": "Who owns X?"})
            button_gate = await press(standin, more_id, message)
            # interactions are told privately: a storage failure's own line, else the generic one
            private = str(failure) if kind == "storage" else GENERIC_ERROR
            for reply in (command_body, button_body, command_gate, button_gate):
                assert reply.ephemeral and reply.content == private and not reply.embeds
            asked = await mention(standin, bot, "who owns X?")
            by_mention = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
        await deleted(standin, by_mention)  # the public notice does not stay in the channel
    # a mention has no private channel: the generic line, as a reply, for everyone to see briefly
    assert by_mention.content == GENERIC_ERROR
    assert by_mention.message_reference is not None
    assert str(by_mention.message_reference["message_id"]) == asked["id"]
    assert by_mention.allowed_mentions is not None and by_mention.allowed_mentions["parse"] == []

    logged = [r for r in caplog.records if r.name == "bot.client" and r.levelno == logging.ERROR]
    where = f"in guild {standin.guild['id']} channel {standin.channel['id']}"
    assert [r.getMessage().split(" failed ")[0] for r in logged] == [
        "command /admin blocked",
        "button vote",
        "command /ask",
        "button More",
        "mention",
    ]
    for record in logged:
        assert where in record.getMessage() and str(failure) in record.getMessage()
        # a StorageError is already the one line to act on; anything else keeps its traceback
        assert (record.exc_info is None) == (kind == "storage")
