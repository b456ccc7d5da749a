"""Moderators: /admin, who may use it, and what it changes; plus the rules every answer obeys."""

from __future__ import annotations

from pathlib import Path

import discord
from conftest import BOT_OWNER_ID, ROOT, RunBot, all_text, bot_runner, custom_ids, invoke
from standin import CHANNEL_MESSAGE, DiscordStandin, payloads

from bot.storage import SQLiteStorage

MANAGE_GUILD = int(discord.Permissions(manage_guild=True).value)


async def test_admin_is_refused_to_members_even_when_discord_shows_it_to_them(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    alice = standin.member  # no roles, no Manage Server
    async with run_bot():
        # A server admin can show /admin to anyone through Integrations settings; the permissions
        # Discord then sends are still the member's own, and the bot checks those at run time.
        refused = await invoke(standin, "admin", subcommand="status", member=alice)
        # A role named like a moderator role does nothing until /admin modrole set names it.
        helper = payloads.role("Helpers", position=1)
        standin.guild["roles"].append(helper)
        await standin.dispatch("GUILD_ROLE_CREATE", {"guild_id": standin.guild["id"], "role": helper})
        alice["roles"].append(helper["id"])
        still_refused = await invoke(standin, "admin", subcommand="status", member=alice)
        owner = standin.find_member("owner")
        await invoke(standin, "admin", {"role": helper}, subcommand="modrole set", member=owner)
        allowed = await invoke(standin, "admin", subcommand="status", member=alice)
    for sent in (refused, still_refused):
        assert sent.ephemeral and sent.content.startswith("Only moderators can use this")
    assert allowed.ephemeral and allowed.content.startswith("**articlebot status**")


async def test_status_settings_and_audit(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod = standin.find_member("mod")  # has Manage Server through the Moderator role
    async with run_bot() as bot:
        await invoke(standin, "ask", {"question": "Who owns X?"})
        await invoke(
            standin, "ask", {"question": "How do I bake bread?"}, member=standin.find_member("owner")
        )
        await bot.library.vectors_ready()  # encoded in a worker thread after the corpus loaded
        status = await invoke(standin, "admin", subcommand="status", member=mod)
        changed = await invoke(
            standin,
            "admin",
            {"passages": 2, "cooldown": 0, "strictness": 0.8},
            subcommand="settings set",
            member=mod,
        )
        audit = await invoke(standin, "admin", subcommand="audit", member=mod)
        misses = await invoke(standin, "admin", subcommand="misses", member=mod)
    assert "Documents: 1 (0 of this server's own), 23 passages" in status.content
    assert "last 24 h: 1 answered, 1 missed" in status.content and "Median answer time:" in status.content
    assert "· semantic: available (model all-MiniLM-L6-v2-onnx-int8)" in status.content  # the mode that runs
    assert "Passages per answer: 2" in changed.content and "Cooldown per member: 0 s" in changed.content
    assert "`settings.set` passages\\_per\\_answer: 3 -> 2" in audit.content  # escaped: shows as typed
    assert f"<@{mod['user']['id']}>" in audit.content
    assert "How do I bake bread?" in misses.content
    assert audit.allowed_mentions == {"parse": []}  # the audit names people without pinging them


async def test_settings_survive_a_restart(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod = standin.find_member("mod")
    async with run_bot():
        await invoke(
            standin, "admin", {"passages": 1, "visibility": "private"}, subcommand="settings set", member=mod
        )
    async with run_bot():
        shown = await invoke(standin, "admin", subcommand="settings show", member=mod)
        answer = await invoke(standin, "ask", {"question": "Why is Musk struggling?"})
    assert "Passages per answer: 1" in shown.content and "Default visibility: private" in shown.content
    assert answer.ephemeral and len(answer.embeds[0]["fields"]) == 1


async def test_out_of_range_settings_are_refused_by_discord_and_by_us(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod = standin.find_member("mod")
    async with run_bot():
        empty = await invoke(standin, "admin", subcommand="settings set", member=mod)
    assert empty.content.startswith("Nothing to change")
    put = next(r for r in standin.requests if r.method == "PUT" and "commands" in r.path)
    admin = next(c for c in put.json if c["name"] == "admin")
    settings = next(o for o in admin["options"] if o["name"] == "settings")
    set_ = next(o for o in settings["options"] if o["name"] == "set")
    bounds = {o["name"]: (o.get("min_value"), o.get("max_value")) for o in set_["options"]}
    assert (
        bounds["passages"] == (1, 5)
        and bounds["cooldown"] == (0, 3600)
        and bounds["strictness"] == (0.0, 1.0)
    )


async def test_cooldown_is_per_member_and_private(standin: DiscordStandin, run_bot: RunBot) -> None:
    async with run_bot() as bot:
        first = await invoke(standin, "ask", {"question": "Who owns X?"})
        second = await invoke(standin, "ask", {"question": "Who owns X?"})
        other = await invoke(standin, "ask", {"question": "Who owns X?"}, member=standin.find_member("mod"))
        assert bot.user is not None
        mark = standin.mark()
        await standin.dispatch("MESSAGE_CREATE", standin.message_create(f"<@{bot.user.id}> who owns X?"))
        mention = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE, since=mark)
    assert first.embeds and not first.ephemeral
    assert second.ephemeral and second.content.startswith("Easy there: you can ask again in")
    assert other.embeds  # another member is not held back
    assert mention.content.startswith("Easy there")  # the mention path shares the cooldown


async def test_channel_rules(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod = standin.find_member("mod")
    general = standin.channel
    bot_log = next(c for c in standin.guild["channels"] if c["name"] == "bot-log")
    async with run_bot() as bot:
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        await invoke(standin, "admin", {"channel": bot_log}, subcommand="channels allow", member=mod)
        refused = await invoke(standin, "ask", {"question": "Who owns X?"}, channel=general)
        allowed = await invoke(standin, "ask", {"question": "Who owns X?"}, channel=bot_log)
        assert bot.user is not None
        await standin.dispatch("MESSAGE_CREATE", standin.message_create(f"<@{bot.user.id}> who owns X?"))
        listed = await invoke(standin, "admin", subcommand="channels list", member=mod)
    assert (
        refused.ephemeral and refused.content == f"I don't answer in this channel. Ask in <#{bot_log['id']}>."
    )
    assert allowed.embeds
    assert standin.sent_messages(kind=CHANNEL_MESSAGE) == []  # a mention in a closed channel gets nothing
    assert f"<#{bot_log['id']}>" in listed.content


async def test_blocked_member(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod, alice = standin.find_member("mod"), standin.member
    async with run_bot():
        blocked = await invoke(
            standin, "admin", {"member": alice, "reason": "spam"}, subcommand="block", member=mod
        )
        refused = await invoke(standin, "ask", {"question": "Who owns X?"})
        listed = await invoke(standin, "admin", subcommand="blocked", member=mod)
        await invoke(standin, "admin", {"member": alice}, subcommand="unblock", member=mod)
        again = await invoke(standin, "ask", {"question": "Who owns X?"})
    assert blocked.ephemeral and "is blocked" in blocked.content
    assert refused.ephemeral and "stopped the bot from answering you" in refused.content
    assert "spam" in listed.content
    assert again.embeds


async def test_documents_answer_only_in_their_own_server(tmp_path: Path, database: Path) -> None:
    second = payloads.default_guild(
        payloads.user("standin-bot", id=payloads.DEFAULT_APPLICATION_ID, bot=True)
    )
    second["name"] = "Other Guild"
    first = payloads.default_guild(payloads.user("standin-bot", id=payloads.DEFAULT_APPLICATION_ID, bot=True))
    async with DiscordStandin(guilds=[first, second]) as standin:
        run = bot_runner(standin, database)
        faq = b"---\ntitle: Server FAQ\n---\n# Meetups\n\nThe monthly meetup is held in the Lisbon library.\n"
        upload = standin.add_attachment("faq.md", faq, "text/markdown")
        mod_a = standin.find_member("mod", first)
        async with run():
            added = await invoke(
                standin, "admin", {"file": upload}, subcommand="documents add", member=mod_a,
                guild=first, channel=first["channels"][0],
            )  # fmt: skip
            in_a = await invoke(
                standin, "ask", {"question": "Where is the monthly meetup held?"}, guild=first,
                channel=first["channels"][0], member=standin.find_member("alice", first),
            )  # fmt: skip
            in_b = await invoke(
                standin, "ask", {"question": "Where is the monthly meetup held?"}, guild=second,
                channel=second["channels"][0], member=standin.find_member("alice", second),
            )  # fmt: skip
            listed_b = await invoke(
                standin, "admin", subcommand="documents list", guild=second, channel=second["channels"][0],
                member=standin.find_member("mod", second),
            )  # fmt: skip
        standin.assert_clean()
    assert added.content.startswith("Added `faq.md`, “Server FAQ”")
    assert "Lisbon library" in all_text(in_a) and "Server FAQ" in all_text(in_a)
    assert in_b.ephemeral and "Lisbon" not in all_text(in_b)
    assert "no documents of its own" in listed_b.content


async def test_document_uploads_that_cannot_be_used(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod = standin.find_member("mod")
    cases = {
        "image.png": (b"\x89PNG\r\n", "must be 1-64 letters"),
        "binary.txt": (b"\x00\x01\x02text", "binary file"),
        "latin1.txt": ("café".encode("latin-1"), "not UTF-8"),
        "empty.md": (b"", "empty file"),
        "..secret.md": (b"hello", "must be 1-64 letters"),
    }
    async with run_bot():
        replies = {}
        for name, (data, _) in cases.items():
            upload = standin.add_attachment(name, data, "application/octet-stream")
            replies[name] = await invoke(
                standin, "admin", {"file": upload}, subcommand="documents add", member=mod
            )
        big = standin.add_attachment("big.txt", b"x " * 600_000, "text/plain")
        too_big = await invoke(standin, "admin", {"file": big}, subcommand="documents add", member=mod)
        listed = await invoke(standin, "admin", subcommand="documents list", member=mod)
    for name, (_, reason) in cases.items():
        text = all_text(replies[name])
        assert text.startswith("Not added") and reason in text, (name, text)
    assert "limit is 1 MB" in all_text(too_big)
    assert "no documents of its own" in listed.content


async def test_documents_list_and_remove(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod = standin.find_member("mod")
    upload = standin.add_attachment(
        "notes.txt", b"Notes\nThe bot was set up in 2026 by the mods.\n", "text/plain"
    )
    async with run_bot():
        await invoke(standin, "admin", {"file": upload}, subcommand="documents add", member=mod)
        listed = await invoke(standin, "admin", subcommand="documents list", member=mod)
        removed = await invoke(
            standin, "admin", {"name": "notes.txt"}, subcommand="documents remove", member=mod
        )
        missing = await invoke(
            standin, "admin", {"name": "notes.txt"}, subcommand="documents remove", member=mod
        )
    assert "`notes.txt`" in listed.content
    assert removed.content == "Removed `notes.txt`." and "no document called" in missing.content


async def test_reload_is_for_bot_owners_only(standin: DiscordStandin, run_bot: RunBot) -> None:
    owner_of_server = standin.find_member("owner")
    bot_owner = payloads.member(payloads.user("botowner", id=BOT_OWNER_ID))
    standin.guild["members"].append(bot_owner)
    async with run_bot():
        refused = await invoke(standin, "admin", subcommand="reload", member=owner_of_server)
        reloaded = await invoke(standin, "admin", subcommand="reload", member=bot_owner)
    assert refused.ephemeral and refused.content == "Only the bot's owners can use this."
    assert "Reloaded: 1 documents, 23 passages." in all_text(reloaded)


async def test_mentions_in_questions_and_passages_reach_discord_inert(
    standin: DiscordStandin, run_bot: RunBot, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "article.txt").write_bytes((ROOT / "corpus" / "article.txt").read_bytes())
    (corpus / "pings.txt").write_text(
        "Pings\nThe announcement said @everyone and @here and <@&123456789012345678> read the rules.\n",
        encoding="utf-8",
    )
    everyone_role = standin.guild["id"]
    async with run_bot(corpus=corpus) as bot:
        sent = await invoke(
            standin, "ask", {"question": f"@everyone <@&{everyone_role}> what did the announcement say?"}
        )
        assert bot.user is not None
        await standin.dispatch(
            "MESSAGE_CREATE",
            standin.message_create(
                f"<@{bot.user.id}> @here what did the announcement say?", author=standin.find_member("mod")
            ),
        )
        mention = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
    for message in (sent, mention):
        assert message.allowed_mentions is not None and message.allowed_mentions.get("parse") == []
        text = all_text(message)
        assert "@everyone" not in text and "@here" not in text and "<@&123456789012345678>" not in text
        assert "@\u200beveryone" in text or "@\u200bhere" in text


async def test_an_over_long_answer_is_cut_not_rejected(
    standin: DiscordStandin, run_bot: RunBot, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    word = "supercalifragilistic"
    paragraph = " ".join([word] * 119) + "."
    (corpus / "long.txt").write_text("Long\n" + "\n".join([paragraph] * 8) + "\n", encoding="utf-8")
    mod = standin.find_member("mod")
    async with run_bot(corpus=corpus) as bot:
        await invoke(standin, "admin", {"passages": 5, "cooldown": 0}, subcommand="settings set", member=mod)
        embed = await invoke(standin, "ask", {"question": word})
        plain = await invoke(
            standin,
            "ask",
            {"question": word},
            app_permissions=payloads.DEFAULT_EVERYONE_PERMISSIONS & ~(1 << 14),
        )
        assert bot.user is not None
        await standin.dispatch("MESSAGE_CREATE", standin.message_create(f"<@{bot.user.id}> {word}"))
        mention = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
    [e] = embed.embeds
    total = len(e.get("title", "")) + len(e.get("description", "")) + len(e["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in e["fields"])
    assert total <= 6000 and all(len(f["value"]) <= 1024 for f in e["fields"])
    assert any(f["value"].endswith("…") for f in e["fields"])
    assert len(plain.content or "") <= 2000 and (plain.content or "").endswith("…")
    assert len(mention.content or "") <= 2000
    assert standin.violations == []


async def test_the_command_tree(standin: DiscordStandin, run_bot: RunBot) -> None:
    async with run_bot():
        pass
    put = next(r for r in standin.requests if r.method == "PUT" and r.path.endswith("/commands"))
    commands = put.json
    names = [(c["name"], c.get("type", 1)) for c in commands]
    assert sorted(names) == sorted(
        [("ask", 1), ("admin", 1), ("article", 1), ("help", 1), ("Ask the article", 3)]
    )
    assert len(set(names)) == len(names)

    def walk(options: list[dict[str, object]], path: str) -> list[str]:
        found = []
        for option in options:
            if option.get("type") in (1, 2):
                found.append(f"{path} {option['name']}")
                found += walk(option.get("options", []), f"{path} {option['name']}")  # type: ignore[arg-type]
            assert len(str(option.get("description", ""))) <= 100
        return found

    admin = next(c for c in commands if c["name"] == "admin")
    assert int(admin["default_member_permissions"]) == MANAGE_GUILD
    assert admin.get("contexts") == [0] or admin.get("dm_permission") is False
    subcommands = walk(admin["options"], "admin")
    assert {
        "admin status",
        "admin settings set",
        "admin channels allow",
        "admin documents add",
        "admin reload",
    } <= set(subcommands)
    assert len(subcommands) == len(set(subcommands))
    for command in commands:
        assert len(command.get("description", "")) <= 100


async def test_storage_file_holds_what_the_bot_acknowledged(
    standin: DiscordStandin, run_bot: RunBot, database: Path
) -> None:
    mod = standin.find_member("mod")
    async with run_bot():
        await invoke(standin, "admin", {"cooldown": 42}, subcommand="settings set", member=mod)
    storage = SQLiteStorage(database)
    await storage.open()
    try:
        settings = await storage.get_settings(int(standin.guild["id"]))
    finally:
        await storage.close()
    assert settings.cooldown_seconds == 42


async def test_channel_deny_clear_and_modrole_clear(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod, owner = standin.find_member("mod"), standin.find_member("owner")
    general = standin.channel
    async with run_bot():
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        denied = await invoke(standin, "admin", {"channel": general}, subcommand="channels deny", member=mod)
        refused = await invoke(standin, "ask", {"question": "Who owns X?"})
        cleared = await invoke(
            standin, "admin", {"channel": general}, subcommand="channels clear", member=mod
        )
        answered = await invoke(standin, "ask", {"question": "Who owns X?"})
        role = payloads.role("Helpers", position=1)
        standin.guild["roles"].append(role)
        await standin.dispatch("GUILD_ROLE_CREATE", {"guild_id": standin.guild["id"], "role": role})
        await invoke(standin, "admin", {"role": role}, subcommand="modrole set", member=owner)
        shown = await invoke(standin, "admin", subcommand="settings show", member=owner)
        gone = await invoke(standin, "admin", subcommand="modrole clear", member=owner)
    assert f"**Never in:** <#{general['id']}>" in denied.content
    assert refused.ephemeral and refused.content == "I don't answer in this channel."
    assert "**Never in:** none" in cleared.content and answered.embeds
    assert f"Moderator role: <@&{role['id']}>" in shown.content
    assert gone.content.startswith("Moderator role cleared")


async def test_admin_is_not_offered_in_direct_messages_but_ask_is(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    async with run_bot():
        asked = await invoke(standin, "ask", {"question": "Who owns X?"}, in_dm=True)
    assert "owned" in all_text(asked), asked.body
    put = next(r for r in standin.requests if r.method == "PUT" and r.path.endswith("/commands"))
    admin = next(c for c in put.json if c["name"] == "admin")
    assert admin.get("contexts") == [0] or admin.get("dm_permission") is False


async def test_a_long_document_name_still_fits_the_buttons(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod = standin.find_member("mod")
    name = "a" * 61 + ".md"  # the longest name allowed: 64 characters
    upload = standin.add_attachment(
        name, b"# Lunch\n\nThe canteen serves paella on Fridays.\n", "text/markdown"
    )
    async with run_bot():
        await invoke(standin, "admin", {"file": upload}, subcommand="documents add", member=mod)
        sent = await invoke(standin, "ask", {"question": "What does the canteen serve on Fridays?"})
    ids = custom_ids(sent)
    assert "paella" in all_text(sent) and all(len(i) <= 100 for i in ids)
    assert standin.violations == []


async def test_a_hostile_document_name_to_remove_is_shown_as_typed_and_inert(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    """The name a moderator types is any text: it comes back in one code span, exactly as typed."""
    mod = standin.find_member("mod")
    typed = "[verify](https://evil.example/x) @everyone `x` discord.gg/spam"
    async with run_bot():
        missing = await invoke(standin, "admin", {"name": typed}, subcommand="documents remove", member=mod)
    shown = typed.replace("`", "\u02cb")
    assert missing.content == f"This server has no document called `{shown}`."
    assert missing.content.count("`") == 2  # one code span: nothing in it renders as a link
    assert missing.allowed_mentions == {"parse": []}
