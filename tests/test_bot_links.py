"""A phishing document through the real bot: no masked link, autolink, URL or invite comes out live.

A moderator adds a server document whose title, heading and passage hold a masked link hiding its
target, autolinks and invites; members ask about it with /ask (embed and text), a mention and a
miss; the moderator lists documents, misses, feedback, blocks and the audit log. Every message the
bot sent to the Discord stand-in is checked as sent over HTTP (tests/discord_markdown.py says what
counts as live).
"""

from __future__ import annotations

import re

from conftest import RunBot, custom_ids, invoke
from discord_markdown import INVITE, MASKED_LINK, live_links, plain_text, rendered_markup
from standin import CHANNEL_MESSAGE, DiscordStandin, SentMessage, payloads

PHISHING = "[click here to verify your account](https://evil.example/login)"
DOCUMENT = f"""---
title: Canteen {PHISHING} <https://evil.example/t>
source: https://discord.gg/canteen
---
## Orders [here](https://evil.example/h) discord.gg/heading

The canteen serves paella on Fridays. To order paella, {PHISHING} and join discord.gg/paella, \
https://discord.com/invite/paella or discordapp.com/invite/paella2.

Nested [[verify](https://evil.example/a)](https://evil.example/b) and <https://evil.example/v> paella.
"""
QUESTION = "How do I verify my account to order paella?"
HOSTILE_MISS = "How do I bake sourdough bread? [tips](https://bread.test/n)"  # not in the documents
HOSTILE_REASON = f"sent {PHISHING} and https://discord.com/invite/spam"
NO_EMBED_LINKS = payloads.DEFAULT_EVERYONE_PERMISSIONS & ~(1 << 14)
# Markup the bot writes on purpose in /admin listings: who did it (never pinged) and when.
OURS = re.compile(r"<@\d{17,20}>|<t:\d+:R>")


def rendered(sent: SentMessage) -> list[str]:
    """The parts of a message Discord renders as markdown (embed footers are plain text)."""
    parts = [sent.content or ""]
    for embed in sent.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [part for field in embed.get("fields", []) for part in (field["name"], field["value"])]
    return parts


def reference_id(sent: SentMessage) -> str | None:
    ref = sent.message_reference
    return None if ref is None else str(ref.get("message_id"))


async def test_a_phishing_document_is_quoted_with_no_live_link_or_invite(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod, alice = standin.find_member("mod"), standin.member
    shown: dict[str, SentMessage] = {}
    async with run_bot() as bot:
        assert bot.user is not None
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        attachment = standin.add_attachment("canteen.md", DOCUMENT.encode(), "text/markdown")
        shown["added"] = await invoke(
            standin, "admin", {"file": attachment}, subcommand="documents add", member=mod
        )
        shown["/ask"] = await invoke(standin, "ask", {"question": QUESTION})
        shown["/ask as text"] = await invoke(
            standin, "ask", {"question": QUESTION}, app_permissions=NO_EMBED_LINKS
        )
        shown["miss"] = await invoke(standin, "ask", {"question": HOSTILE_MISS})
        assert shown["/ask"].message is not None
        up = next(i for i in custom_ids(shown["/ask"]) if i.startswith("ask:vote:up:"))
        vote = standin.component_interaction(up, shown["/ask"].message)
        await standin.dispatch("INTERACTION_CREATE", vote)
        shown["vote"] = await standin.wait_for_sent_message(lambda m: m.interaction_id == vote["id"])
        for asked in (QUESTION, HOSTILE_MISS):
            mark = standin.mark()
            message = standin.message_create(f"<@{bot.user.id}> {asked}")
            await standin.dispatch("MESSAGE_CREATE", message)
            shown[f"mention: {asked}"] = await standin.wait_for_sent_message(
                lambda m, id=message["id"]: m.kind == CHANNEL_MESSAGE and reference_id(m) == id, since=mark
            )
        shown["/article"] = await invoke(standin, "article")
        shown["/article as text"] = await invoke(standin, "article", app_permissions=NO_EMBED_LINKS)
        await invoke(
            standin, "admin", {"member": alice, "reason": HOSTILE_REASON}, subcommand="block", member=mod
        )
        for listing in ("documents list", "misses", "feedback", "blocked", "audit"):
            shown[listing] = await invoke(standin, "admin", subcommand=listing, member=mod)

    # Where the probe found the phishing link live: /ask's embed and the mention reply.
    for what in ("/ask", "/ask as text", f"mention: {QUESTION}"):
        for text in rendered(shown[what]):
            assert not MASKED_LINK.search(rendered_markup(text)), (what, "live masked link", text)
            assert not INVITE.search(text), (what, "live invite", text)
    # What the phishing passage is quoted as: the words bold, the text as written, nothing live.
    [embed] = shown["/ask"].embeds
    assert "**verify** your **account**" in embed["description"]
    assert PHISHING in plain_text(embed["description"])
    assert PHISHING in plain_text(shown["/ask as text"].content or "")
    assert PHISHING in plain_text(shown[f"mention: {QUESTION}"].content or "")
    assert (shown["miss"].content or "").startswith("I couldn't find that in the article.")
    assert "bread.test" in (shown["misses"].content or "") and "👍 1" in (shown["feedback"].content or "")
    assert "evil.example/login" in (shown["blocked"].content or "")
    assert "canteen.md" in (shown["documents list"].content or "")
    for what, sent in shown.items():
        for text in rendered(sent):
            assert live_links(text, ours=OURS) == [], (what, text)
    for sent in standin.sent_messages():  # every message the bot sent, these and any other
        assert sent.allowed_mentions is not None and sent.allowed_mentions.get("parse") == []
        for text in rendered(sent):
            assert live_links(text, ours=OURS) == [], text
    assert standin.violations == []
