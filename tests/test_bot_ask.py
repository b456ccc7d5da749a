"""Members asking: /ask, mentions, the Apps menu, buttons; the real bot against the stand-in."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import RunBot, all_text, custom_ids, invoke
from standin import CHANNEL_MESSAGE, DiscordStandin, Request, eventually, payloads


async def test_ask_answers_publicly_with_citations_and_buttons(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    async with run_bot():
        sent = await invoke(standin, "ask", {"question": "What did Trump call Musk at the campaign rally?"})
    assert sent.callback_type == 4 and not sent.ephemeral
    [embed] = sent.embeds
    assert embed["description"].startswith("**Answer:**")
    assert "**Trump**" in embed["description"] and "**called** him “a rocket man" in embed["description"]
    assert embed["fields"][0]["name"].startswith("[1] The Rift Begins · passage 8 of 23 · confidence")
    assert embed["footer"]["text"].startswith("Source: Musk vs. Trump")
    assert len(embed["fields"]) == 3  # the default: three passages
    ids = custom_ids(sent)
    assert re.fullmatch(r"ask:more:\d+:3", ids[0])
    assert ids[1].startswith("ask:vote:up:article:") and ids[2].startswith("ask:vote:down:article:")
    assert ids[3] == f"ask:follow:{ids[0].split(':')[2]}"  # Follow up: the same question's id
    assert sent.allowed_mentions == {"parse": []}


async def test_a_miss_is_private_with_a_hint(standin: DiscordStandin, run_bot: RunBot) -> None:
    async with run_bot():
        sent = await invoke(standin, "ask", {"question": "How do I bake sourdough bread?"})
    assert sent.ephemeral and not sent.embeds
    assert sent.content.startswith("I couldn't find that in the article.")
    assert "The Rift Begins" in sent.content and "/article" in sent.content


async def test_private_option_and_server_default_visibility(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod = standin.find_member("mod")
    async with run_bot():
        private = await invoke(standin, "ask", {"question": "Who owns X?", "private": True})
        await invoke(standin, "admin", {"visibility": "private"}, subcommand="settings set", member=mod)
        by_default = await invoke(standin, "ask", {"question": "Who owns X?"}, member=mod)
    assert private.ephemeral and by_default.ephemeral


async def test_more_and_votes_work_after_a_restart(standin: DiscordStandin, run_bot: RunBot) -> None:
    async with run_bot():
        sent = await invoke(standin, "ask", {"question": "Why is Musk struggling?"})
    assert sent.message is not None
    more_id, up_id, _, _ = custom_ids(sent)
    async with run_bot():  # a new process on the same database: no view was re-registered by hand
        click = standin.component_interaction(more_id, sent.message)
        await standin.dispatch("INTERACTION_CREATE", click)
        more = await standin.wait_for_sent_message(lambda m: m.interaction_id == click["id"])
        vote = standin.component_interaction(up_id, sent.message)
        await standin.dispatch("INTERACTION_CREATE", vote)
        thanks = await standin.wait_for_sent_message(lambda m: m.interaction_id == vote["id"])
        mod = standin.find_member("mod")
        tally = await invoke(standin, "admin", subcommand="feedback", member=mod)
    assert more.ephemeral and more.embeds[0]["fields"][0]["name"].startswith("[4] ")
    assert custom_ids(more)[0].endswith(":6")
    assert thanks.ephemeral and thanks.content.startswith("Thanks, your 👍 for *What Happens Next?")
    assert "👍 1 · 👎 0" in tally.content


async def test_mention_replies_in_compact_form(standin: DiscordStandin, run_bot: RunBot) -> None:
    async with run_bot() as bot:
        assert bot.user is not None
        message = standin.message_create(f"<@{bot.user.id}> who called Musk a rocket man?")
        await standin.dispatch("MESSAGE_CREATE", message)
        sent = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
    assert sent.message_reference is not None and sent.message_reference["message_id"] in (
        message["id"],
        int(message["id"]),
    )
    assert sent.content.startswith("**Answer:**") and "**rocket man**" in sent.content
    assert "— *The Rift Begins · passage 8 of 23*" in sent.content
    assert sent.allowed_mentions == {"parse": [], "replied_user": False} or sent.allowed_mentions == {
        "parse": []
    }
    assert not sent.embeds


async def test_mention_alone_gets_usage_and_role_mention_counts(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    # The role Discord creates for a bot when it joins ("managed", tagged with the bot's id).
    own_role = payloads.role("standin-bot", managed=True, position=2)
    own_role["tags"] = {"bot_id": standin.bot_user["id"]}
    standin.guild["roles"].append(own_role)
    standin.bot_member["roles"].append(own_role["id"])
    async with run_bot() as bot:
        assert bot.user is not None
        await standin.dispatch("MESSAGE_CREATE", standin.message_create(f"<@{bot.user.id}>"))
        usage = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
        role = bot.guilds[0].self_role
        assert role is not None
        mark = standin.mark()
        # Whether Discord shows a role mention's text to a bot without the message-content intent is
        # not documented; the stand-in hides it by default. Here it shows it, to test the answer path.
        standin.enforce_message_content_intent = False
        await standin.dispatch("MESSAGE_CREATE", standin.message_create(f"<@&{role.id}> who owns X?"))
        answer = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE, since=mark)
    assert usage.content.startswith("Ask me about the article")
    assert "**owned** by Musk" in answer.content


async def test_bots_and_everyone_never_trigger_it(standin: DiscordStandin, run_bot: RunBot) -> None:
    other_bot = payloads.member(payloads.user("otherbot", bot=True))
    async with run_bot() as bot:
        assert bot.user is not None
        await standin.dispatch(
            "MESSAGE_CREATE", standin.message_create(f"<@{bot.user.id}> who owns X?", author=other_bot)
        )
        await standin.dispatch("MESSAGE_CREATE", standin.message_create("@everyone who owns X?"))
        await standin.dispatch("MESSAGE_CREATE", standin.message_create("@here who owns X?"))
        await standin.dispatch("MESSAGE_CREATE", standin.message_create("who owns X?"))
        # a marker: the next real mention is answered, and it is the only reply
        await standin.dispatch("MESSAGE_CREATE", standin.message_create(f"<@{bot.user.id}> who owns X?"))
        await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
    assert len(standin.sent_messages(kind=CHANNEL_MESSAGE)) == 1


async def test_apps_menu_asks_with_the_message_text(standin: DiscordStandin, run_bot: RunBot) -> None:
    async with run_bot():
        target = standin.add_message(standin.message_create("which hashtags trended during the feud?"))
        event = standin.message_context_interaction("Ask the article", target)
        await standin.dispatch("INTERACTION_CREATE", event)
        sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    assert "#TrumpVsMusk" in all_text(sent)


async def test_article_and_help(standin: DiscordStandin, run_bot: RunBot) -> None:
    async with run_bot():
        article = await invoke(standin, "article")
        help_ = await invoke(standin, "help")
    assert article.ephemeral and "The Rift Begins" in all_text(article) and "23 passages" in all_text(article)
    assert help_.ephemeral and "/ask" in help_.content and "Apps" in help_.content


async def test_without_embed_links_answers_in_plain_text(standin: DiscordStandin, run_bot: RunBot) -> None:
    no_embeds = payloads.DEFAULT_EVERYONE_PERMISSIONS & ~(1 << 14)
    async with run_bot():
        sent = await invoke(standin, "ask", {"question": "Who owns X?"}, app_permissions=no_embeds)
    assert not sent.embeds and sent.content.startswith("**Answer:**") and "[1]" in sent.content


async def test_a_cold_server_index_answers_privately_in_time(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    async with run_bot() as bot:
        bot.library.forget(int(standin.guild["id"]))  # as just after a restart, before on_guild_available ran
        sent = await invoke(standin, "ask", {"question": "Who owns X?"})
    callback = next(r for r in standin.requests if "/callback" in r.path)
    assert callback.json == {"type": 5, "data": {"flags": 64}}  # deferred, privately, within 3 s
    assert sent.ephemeral and "owned" in all_text(sent)


def created_seconds_ago(event: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The interaction event as if Discord had created it ``seconds`` ago (its id's timestamp)."""
    snowflake = int(event["id"])
    event["id"] = str((((snowflake >> 22) - int(seconds * 1000)) << 22) | (snowflake & 0x3FFFFF))
    return event


@pytest.mark.parametrize(("private", "flags"), [(None, 0), (True, 64)])
async def test_an_interaction_that_waited_its_turn_is_deferred_then_answered(
    standin: DiscordStandin, run_bot: RunBot, private: bool | None, flags: int
) -> None:
    """Created 2 s before the bot reached it (a busy process, a slow gateway): the bot defers
    before logging the answer, as public or private as the answer will be, and the answer
    completes it; answering after the log could be past Discord's 3 s."""
    async with run_bot():
        options: dict[str, Any] = {"question": "Who owns X?"} | ({"private": private} if private else {})
        event = created_seconds_ago(standin.slash_interaction("ask", options), 2.0)
        await standin.dispatch("INTERACTION_CREATE", event)
        sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    callbacks = [r for r in standin.requests if "/callback" in r.path]
    assert len(callbacks) == 1 and callbacks[0].json["type"] == 5  # deferred: one callback
    assert (callbacks[0].json.get("data") or {}).get("flags", 0) & 64 == flags
    assert sent.ephemeral == bool(private) and "owned" in all_text(sent)


async def test_a_miss_that_waited_its_turn_is_answered_at_once_privately(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    """An old interaction the article can't answer: no deferral, the private miss is the callback
    itself (a public "thinking…" would show the channel a question the bot then declines)."""
    async with run_bot():
        question = {"question": "What is the capital of Australia?"}
        event = created_seconds_ago(standin.slash_interaction("ask", question), 2.0)
        await standin.dispatch("INTERACTION_CREATE", event)
        sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    callbacks = [r for r in standin.requests if "/callback" in r.path]
    assert [c.json["type"] for c in callbacks] == [4] and sent.ephemeral
    assert sent.content.startswith("I couldn't find that in the article.")


async def test_a_doubled_mention_event_posts_one_answer(standin: DiscordStandin, run_bot: RunBot) -> None:
    """The same MESSAGE_CREATE twice in one process: handled once (not answered, then refused)."""
    async with run_bot() as bot:
        assert bot.user is not None
        message = standin.message_create(f"<@{bot.user.id}> who called Musk a rocket man?")
        await standin.dispatch("MESSAGE_CREATE", message)
        await standin.dispatch("MESSAGE_CREATE", message)
        await eventually_posts(standin, 1)
        await standin.dispatch("MESSAGE_CREATE", standin.message_create(f"<@{bot.user.id}> who owns X?"))
        await eventually_posts(standin, 2)  # a later mention's reply: the doubled one had its chance
    first, second = standin.sent_messages(CHANNEL_MESSAGE)
    assert first.content.startswith("**Answer:**") and "**rocket man**" in first.content
    assert first.request.json["nonce"] == message["id"] and first.request.json["enforce_nonce"] is True
    assert second.content.startswith("Easy there")  # the cooldown the first answer spent


async def test_a_replayed_mention_after_a_restart_gets_discords_first_reply(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    """Delivered again to a new process (a restart, another process on the shard): the nonce is the
    trigger's id, so Discord answers the second send with the first reply and creates nothing."""
    async with run_bot() as bot:
        assert bot.user is not None
        message = standin.message_create(f"<@{bot.user.id}> who called Musk a rocket man?")
        await standin.dispatch("MESSAGE_CREATE", message)
        await eventually_posts(standin, 1)
    async with run_bot():
        await standin.dispatch("MESSAGE_CREATE", message)
        posts = await eventually_posts(standin, 2)
    assert [(p.json["nonce"], p.json["enforce_nonce"]) for p in posts] == [(message["id"], True)] * 2
    assert posts[1].nonce_replayed and posts[1].response["id"] == posts[0].response["id"]
    [reply] = standin.sent_messages(CHANNEL_MESSAGE)
    assert reply.content.startswith("**Answer:**") and "**rocket man**" in reply.content
    replies_to_it = [
        m
        for m in standin.messages.values()
        if (m.get("message_reference") or {}).get("message_id") == message["id"]
    ]
    assert len(replies_to_it) == 1


async def eventually_posts(standin: DiscordStandin, count: int) -> list[Request]:
    """The bot's first ``count`` answered message creates (each one, replayed nonce or not)."""

    def posts() -> list[Request]:
        return [r for r in standin.requests if r.route == "/channels/{channel_id}/messages" and r.done]

    await eventually(lambda: len(posts()) >= count, timeout=5)
    return posts()[:count]
