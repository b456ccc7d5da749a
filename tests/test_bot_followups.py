"""Follow-ups: a reply to one of the bot's answers, or its *Follow up* button, asks with that answer
as context; only the bot's own answers, within the server's window, through the admission gate."""

from __future__ import annotations

import copy
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import discord
from conftest import RunBot, custom_ids, invoke
from standin import CHANNEL_MESSAGE, DiscordStandin, SentMessage

from bot.client import ArticleBot

QUIET = 1.0  # seconds to wait for a reply that must not come


async def mention(standin: DiscordStandin, bot: ArticleBot, text: str, **fields: Any) -> SentMessage:
    assert bot.user is not None
    mark = standin.mark()
    await standin.dispatch("MESSAGE_CREATE", standin.message_create(f"<@{bot.user.id}> {text}", **fields))
    return await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE, since=mark)


async def reply(
    standin: DiscordStandin,
    to: dict[str, Any],
    text: str,
    *,
    pings_bot: bool = True,
    expect_none: bool = False,
    **fields: Any,
) -> SentMessage | None:
    """A member's Discord reply to ``to``; a reply pings (mentions) the author of what it replies to.
    None when the bot sent nothing (waiting ``QUIET`` seconds when nothing is expected)."""
    mark = standin.mark()
    mentions = [standin.bot_member] if pings_bot else fields.pop("mentions", [])
    event = standin.message_create(text, reply_to=to, mentions=mentions, **fields)
    await standin.dispatch("MESSAGE_CREATE", event)
    try:
        return await standin.wait_for_sent_message(
            lambda m: m.kind == CHANNEL_MESSAGE, since=mark, timeout=QUIET if expect_none else 5
        )
    except TimeoutError:
        return None


def logged(database: Path) -> list[tuple[str, int, int | None]]:
    with sqlite3.connect(database) as db:
        return list(db.execute("SELECT question, answered, follow_up_of FROM questions ORDER BY id"))


async def test_a_reply_to_the_bots_answer_follows_it_up(
    standin: DiscordStandin, run_bot: RunBot, database: Path
) -> None:
    async with run_bot() as bot:
        await invoke(
            standin, "admin", {"cooldown": 0}, subcommand="settings set", member=standin.find_member("mod")
        )
        alone = await mention(standin, bot, "and what did he reply?")
        first = await mention(standin, bot, "Who called Musk a rocket man?")
        assert first.message is not None
        follow = await reply(standin, first.message, "and what did he reply?")
    assert alone.content.startswith("I couldn't find that in the article.")
    assert "rocket man" in first.content and any(i.startswith("ask:follow:") for i in custom_ids(first))
    assert follow is not None
    assert follow.content.startswith("-# ↪ Following up on “Who called Musk a rocket man?”")
    assert "a chaos machine out of date" in follow.content
    assert "— *The Rift Begins · passage 8 of 23*" in follow.content
    assert follow.allowed_mentions in ({"parse": []}, {"parse": [], "replied_user": False})
    rows = logged(database)
    first_id = rows.index(("Who called Musk a rocket man?", 1, None)) + 1
    assert rows[-1] == ("and what did he reply?", 1, first_id)


async def test_replies_to_anyone_else_or_out_of_the_window_are_no_follow_ups(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod = standin.find_member("mod")
    async with run_bot() as bot:
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        first = await mention(standin, bot, "Who called Musk a rocket man?")
        assert first.message is not None
        # Another member's message, replied to (the reply pings that member, not the bot): nothing.
        theirs = standin.message_create("Who called Musk a rocket man?", author=mod)
        await standin.dispatch("MESSAGE_CREATE", theirs)
        to_member = await reply(
            standin, theirs, "and what did he reply?", pings_bot=False, expect_none=True, mentions=[mod]
        )
        # The bot's answer, two hours later: past the default hour, so a plain question (declined).
        old = copy.deepcopy(first.message)
        old["id"] = str(discord.utils.time_snowflake(discord.utils.utcnow() - dt.timedelta(hours=2)))
        too_old = await reply(standin, old, "and what did he reply?")
        # Follow-ups turned off: the same reply to a fresh answer is a plain question too.
        await invoke(standin, "admin", {"followups": 0}, subcommand="settings set", member=mod)
        off = await reply(standin, first.message, "and what did he reply?")
        plain = await mention(standin, bot, "Who called Musk a rocket man?")
    assert to_member is None
    for sent in (too_old, off):
        assert sent is not None and sent.content.startswith("I couldn't find that in the article.")
    assert not any(i.startswith("ask:follow:") for i in custom_ids(plain))  # off: no button either


async def test_a_blocked_member_or_a_closed_channel_gets_no_follow_up(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod = standin.find_member("mod")
    bot_log = next(c for c in standin.guild["channels"] if c["name"] == "bot-log")
    async with run_bot() as bot:
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        first = await mention(standin, bot, "Who called Musk a rocket man?")
        assert first.message is not None
        await invoke(standin, "admin", {"member": standin.member}, subcommand="block", member=mod)
        blocked = await reply(standin, first.message, "and what did he reply?", expect_none=True)
        await invoke(standin, "admin", {"member": standin.member}, subcommand="unblock", member=mod)
        await invoke(standin, "admin", {"channel": bot_log}, subcommand="channels allow", member=mod)
        closed = await reply(standin, first.message, "and what did he reply?", expect_none=True)
    assert blocked is None and closed is None


async def test_the_follow_up_button_opens_a_modal_that_asks_with_context(
    standin: DiscordStandin, run_bot: RunBot, database: Path
) -> None:
    async with run_bot():
        await invoke(
            standin, "admin", {"cooldown": 0}, subcommand="settings set", member=standin.find_member("mod")
        )
        first = await invoke(standin, "ask", {"question": "Who called Musk a rocket man?"})
        assert first.message is not None
        follow_id = next(i for i in custom_ids(first) if i.startswith("ask:follow:"))
        click = standin.component_interaction(follow_id, first.message)
        await standin.dispatch("INTERACTION_CREATE", click)
        opened = await standin.wait_for_request(
            lambda r: r.interaction_id == click["id"] and (r.json or {}).get("type") == 9
        )
        modal = opened.json["data"]
        label = modal["components"][0]  # a Label holding the text input
        field = label["component"]
        submit = standin.modal_submit_interaction(
            modal["custom_id"], {field["custom_id"]: "and what did he reply?"}
        )
        await standin.dispatch("INTERACTION_CREATE", submit)
        answer = await standin.wait_for_sent_message(lambda m: m.interaction_id == submit["id"])
    assert modal["title"] == "Follow up" and label["description"].startswith("Following up on “Who called")
    assert (answer.content or "").startswith("-# ↪ Following up on “Who called Musk a rocket man?”")
    assert not answer.ephemeral  # as public as the answer it follows
    [embed] = answer.embeds
    assert "a chaos machine out of date" in embed["description"]
    assert logged(database)[-1][2] == logged(database).index(("Who called Musk a rocket man?", 1, None)) + 1
