"""The running bot when its storage fails at run time, its default document caps, and "Saved.".

The real ArticleBot against the stand-in, on a real SQLite file. A full disk is SQLite's own
SQLITE_FULL: the bot's connection is capped at its current size (``PRAGMA max_page_count``) and
the last free space filled, so the bot's next write really fails as on a full disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from conftest import BOT_OWNER_ID, ROOT, RunBot, all_text, custom_ids, invoke
from standin import CHANNEL_MESSAGE, DiscordStandin, running_bot
from test_storage_failures import fill_to_page_cap

from bot.client import ArticleBot
from bot.settings import Settings
from bot.storage import ChannelRules, GuildSettings, SQLiteStorage, Storage

FULL = "I couldn't save that: the bot's disk is full. Nothing was changed; tell the bot's operator."


def sqlite_of(bot: ArticleBot) -> SQLiteStorage:
    assert isinstance(bot.storage, SQLiteStorage)
    return bot.storage


async def test_documents_add_on_a_full_disk_tells_the_moderator(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod = standin.find_member("mod")
    # Longer than a page (4 kB), so it cannot squeeze into space left on an existing one.
    text = b"# Meetups\n\n" + b"The meetup is in the Lisbon library, on the first floor.\n" * 200
    upload = standin.add_attachment("faq.md", text)
    async with run_bot() as bot:
        await fill_to_page_cap(sqlite_of(bot))
        added = await invoke(standin, "admin", {"file": upload}, subcommand="documents add", member=mod)
        listed = await invoke(standin, "admin", subcommand="documents list", member=mod)
        asked = await invoke(standin, "ask", {"question": "Where is the meetup?"})
    assert added.ephemeral and added.content == FULL
    assert "no documents of its own" in listed.content
    assert "Lisbon" not in all_text(asked)  # the index was not rebuilt with an unsaved document


async def test_answers_do_not_depend_on_logging_the_question(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    mod = standin.find_member("mod")
    async with run_bot() as bot:
        assert bot.user is not None
        await fill_to_page_cap(sqlite_of(bot))
        asked = await invoke(standin, "ask", {"question": "Who owns X?"})
        mark = standin.mark()
        await standin.dispatch(
            "MESSAGE_CREATE",
            standin.message_create(f"<@{bot.user.id}> who called Musk a rocket man?", author=mod),
        )
        mentioned = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE, since=mark)
        status = await invoke(standin, "admin", subcommand="status", member=mod)
    assert "Musk" in all_text(asked) and "X" in all_text(asked) and not asked.ephemeral
    ids = custom_ids(asked)
    # Votes need only the passage; More needs the logged question, which could not be written.
    assert any(i.startswith("ask:vote:up:") for i in ids) and not any(i.startswith("ask:more:") for i in ids)
    assert "rocket man" in mentioned.content.lower()
    assert "2 questions since the start could not be logged" in status.content


async def test_the_21st_document_is_refused_with_the_cap_and_the_use(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    """The probe's 30 documents were all accepted; the default cap is 20."""
    mod = standin.find_member("mod")
    async with run_bot():
        for i in range(20):
            upload = standin.add_attachment(f"doc{i}.txt", f"Doc {i}\nDocument number {i}.\n".encode())
            added = await invoke(standin, "admin", {"file": upload}, subcommand="documents add", member=mod)
            assert added.content.startswith(f"Added `doc{i}.txt`"), added.content
        extra = standin.add_attachment("doc20.txt", b"Doc 20\nOne too many.\n")
        refused = await invoke(standin, "admin", {"file": extra}, subcommand="documents add", member=mod)
        listed = await invoke(standin, "admin", subcommand="documents list", member=mod)
    assert refused.ephemeral and refused.content == (
        "Not added: this server already has 20 of 20 documents; remove one first (`/admin documents remove`)."
    )
    assert "doc19.txt" in listed.content and "doc20.txt" not in listed.content


# -- "Saved." shows what this command committed ----------------------------------------------------
SECOND_MOD = 4242


class AnotherModeratorRightAfter(SQLiteStorage):
    """A real storage where a second moderator's change lands just after each change of the first:
    the interleaving two moderators at once produce, made certain instead of left to timing."""

    async def update_settings(self, guild_id: int, actor_id: int, **changes: object) -> GuildSettings:
        committed = await super().update_settings(guild_id, actor_id, **changes)
        if actor_id != SECOND_MOD and "passages_per_answer" in changes:
            await super().update_settings(guild_id, SECOND_MOD, passages_per_answer=5, cooldown_seconds=99)
        return committed

    async def set_channel_rule(  # type: ignore[override]
        self, guild_id: int, channel_id: int, rule: str, actor_id: int
    ) -> ChannelRules:
        committed = await super().set_channel_rule(guild_id, channel_id, rule, actor_id)  # type: ignore[arg-type]
        if actor_id != SECOND_MOD:
            await super().set_channel_rule(guild_id, channel_id + 1, "deny", SECOND_MOD)
        return committed


@asynccontextmanager
async def bot_on(standin: DiscordStandin, storage: Storage, database: Path) -> AsyncIterator[ArticleBot]:
    settings = Settings(
        token="standin-token",
        database=str(database),
        corpus=ROOT / "corpus",
        owner_ids=frozenset({BOT_OWNER_ID}),
    )
    async with running_bot(ArticleBot(settings, storage), standin) as bot:
        await bot.tree.sync()
        yield bot


async def test_saved_shows_what_this_command_committed(standin: DiscordStandin, database: Path) -> None:
    mod = standin.find_member("mod")
    general = standin.channel
    async with bot_on(standin, AnotherModeratorRightAfter(database), database) as bot:
        saved = await invoke(standin, "admin", {"passages": 2}, subcommand="settings set", member=mod)
        allowed = await invoke(
            standin, "admin", {"channel": general}, subcommand="channels allow", member=mod
        )
        now = await bot.storage.get_settings(int(standin.guild["id"]))
    assert now.passages_per_answer == 5  # the other moderator's change is the current one...
    # ...but this moderator is shown what their own command saved, not a value they never set.
    assert "Passages per answer: 2" in saved.content and "Cooldown per member: 10 s" in saved.content
    assert allowed.content == f"Saved.\n**Answers in:** <#{general['id']}>\n**Never in:** none"
