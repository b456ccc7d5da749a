"""/admin: moderators see and steer the bot in their own server, and only there.

Hidden from members by ``default_permissions(manage_guild)`` and checked again at run time on
every command (``interaction_check``): Manage Server, the server's moderator role, or a bot owner.
Every reply is private; every change is written with its audit entry before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import time
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from .. import insights, replies
from ..checks import NotModerator, NotOwner, is_moderator
from ..client import respond
from ..engine import CorpusError
from ..engine.documents import decode, parse_text
from ..storage import Change, ChannelRules, GuildSettings, StorageError, megabytes, validate_document_name
from ..storage.schema import (
    COOLDOWN_SECONDS,
    DEFAULT_VISIBILITY,
    FOLLOW_UP_MINUTES,
    MENTION_REPLIES,
    PASSAGES_PER_ANSWER,
    SETTINGS,
    STRICTNESS,
    Setting,
)
from .ask import Ask

if TYPE_CHECKING:
    from ..client import ArticleBot

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1_000_000  # refused before downloading; storage's limits check it again
LIST_LIMIT = 15


def ago(moment: dt.datetime | float) -> str:
    seconds = (
        (time.time() - moment)
        if isinstance(moment, float)
        else (dt.datetime.now(dt.UTC) - moment).total_seconds()
    )
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def when(moment: dt.datetime) -> str:
    return discord.utils.format_dt(moment, "R")


INSIGHTS_ALT = "Chart: questions per day (answered, declined), votes per day, unanswered themes, top sections"


def insights_text(found: insights.Insights, days: int) -> str:
    """The chart's figures in words, escaped (members' questions are quoted) and within the limit."""
    lines = [replies.escape(line) for line in insights.summary_lines(found, days)]
    if not found.empty:
        lines[0] = f"**{lines[0]}**"
    return replies.truncate("\n".join(lines), replies.CONTENT_LIMIT)


async def say(interaction: discord.Interaction[ArticleBot], text: str) -> None:
    """Every /admin reply: private, inert, within Discord's limit."""
    await respond(interaction, ephemeral=True, content=replies.truncate(text, replies.CONTENT_LIMIT))


# Storage speaks in setting names; moderators typed the command's option names.
OPTION_NAMES = {s.name: s.option for s in SETTINGS if s.option and s.option != s.name}


def option_names(message: str) -> str:
    for setting, option in OPTION_NAMES.items():
        message = message.replace(setting, option)
    return message


def guild_id_of(interaction: discord.Interaction[ArticleBot]) -> int:
    assert interaction.guild_id is not None  # guild_only
    return interaction.guild_id


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Admin(
    commands.GroupCog, group_name="admin", group_description="Moderator tools: see and steer the bot"
):
    settings_group = app_commands.Group(
        name="settings", description="Show or change how the bot answers here"
    )
    channels_group = app_commands.Group(name="channels", description="Choose the channels the bot answers in")
    modrole_group = app_commands.Group(name="modrole", description="The role whose members can use /admin")
    documents_group = app_commands.Group(name="documents", description="This server's own documents")

    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[ArticleBot], /) -> bool:  # type: ignore[override]
        if not await is_moderator(self.bot, interaction):
            raise NotModerator()
        return True

    # -- status ---------------------------------------------------------------------------------
    @app_commands.command(
        name="status", description="Documents, index, questions answered and missed, uptime"
    )
    async def status(self, interaction: discord.Interaction[ArticleBot]) -> None:
        guild_id = guild_id_of(interaction)
        storage = self.bot.storage
        engine = await self.bot.library.for_guild(guild_id)
        own = await storage.list_documents(guild_id)
        day = await storage.question_stats(guild_id, since=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        total = await storage.question_stats(guild_id)
        usage = await storage.document_usage(guild_id)
        median = f"{total.median_ms:.1f} ms" if total.median_ms is not None else "no questions yet"
        lines = [
            "**articlebot status**",
            f"Documents: {len(engine.documents)} ({len(own)} of this server's own), "
            f"{len(engine.passages)} passages",
            f"This server's documents: {usage.count} of {usage.limits.max_documents}, "
            f"{megabytes(usage.total_bytes)} of {megabytes(usage.limits.max_total_bytes)} MB",
            f"Index loaded {ago(self.bot.library.loaded_at)} · {engine.mode}",
            f"Questions, last 24 h: {day.answered} answered, {day.missed} missed",
            f"Questions, all time: {total.answered} answered, {total.missed} missed",
            f"Median answer time: {median}",
            f"Up since {ago(self.bot.started_at)} · version {self.bot.version}",
        ]
        ask = self.bot.get_cog("Ask")
        if isinstance(ask, Ask) and ask.unlogged_questions:
            lines.append(
                f"⚠ {ask.unlogged_questions} questions since the start could not be logged (storage "
                "error): they were answered, but are missing from these counts. Tell the bot's operator."
            )
        await say(interaction, "\n".join(lines))

    # -- settings -------------------------------------------------------------------------------
    @staticmethod
    def _settings_text(s: GuildSettings) -> str:
        role = f"<@&{s.moderator_role_id}>" if s.moderator_role_id else "none (Manage Server only)"
        return "\n".join(
            [
                "**Settings**",
                f"Passages per answer: {s.passages_per_answer}",
                f"Default visibility: {s.default_visibility}",
                f"Reply to mentions: {'on' if s.mention_replies else 'off'}",
                f"Cooldown per member: {s.cooldown_seconds} s",
                f"Strictness of “not in the article”: {s.strictness:.2f} (0 lenient … 1 strict)",
                "Follow-ups by reply: "
                + (f"within {s.follow_up_minutes} min of an answer" if s.follow_up_minutes else "off"),
                f"Moderator role: {role}",
            ]
        )

    @settings_group.command(name="show", description="Show this server's settings")
    async def settings_show(self, interaction: discord.Interaction[ArticleBot]) -> None:
        settings = await self.bot.storage.get_settings(guild_id_of(interaction))
        await say(interaction, self._settings_text(settings))

    @settings_group.command(name="set", description="Change one or more settings")
    # The options' ranges and descriptions come from the one settings schema (bot/storage/schema.py);
    # the parameter names are its ``option`` names.
    @app_commands.describe(**{setting.option: setting.description for setting in SETTINGS if setting.option})
    async def settings_set(
        self,
        interaction: discord.Interaction[ArticleBot],
        passages: app_commands.Range[int, PASSAGES_PER_ANSWER.low, PASSAGES_PER_ANSWER.high] | None = None,
        visibility: Literal["public", "private"] | None = None,
        mentions: bool | None = None,
        cooldown: app_commands.Range[int, COOLDOWN_SECONDS.low, COOLDOWN_SECONDS.high] | None = None,
        strictness: app_commands.Range[float, STRICTNESS.low, STRICTNESS.high] | None = None,
        followups: app_commands.Range[int, FOLLOW_UP_MINUTES.low, FOLLOW_UP_MINUTES.high] | None = None,
    ) -> None:
        options: dict[Setting[Any], object] = {
            PASSAGES_PER_ANSWER: passages,
            DEFAULT_VISIBILITY: visibility,
            MENTION_REPLIES: mentions,
            COOLDOWN_SECONDS: cooldown,
            STRICTNESS: strictness,
            FOLLOW_UP_MINUTES: followups,
        }
        changes = {setting.name: value for setting, value in options.items() if value is not None}
        if not changes:
            await say(
                interaction, "Nothing to change: pick at least one option. `/admin settings show` lists them."
            )
            return
        try:
            committed = await self.bot.storage.update_settings(
                guild_id_of(interaction), interaction.user.id, **changes
            )
        except ValueError as exc:
            await say(interaction, f"Not changed: {option_names(str(exc))}.")
            return
        # What this command wrote, not a re-read: another moderator may have changed it since.
        await say(interaction, "Saved.\n" + self._settings_text(committed))

    # -- channels -------------------------------------------------------------------------------
    @staticmethod
    def _channels_text(rules: ChannelRules) -> str:
        allowed = ", ".join(f"<#{c}>" for c in sorted(rules.allowed)) or "every channel not denied"
        denied = ", ".join(f"<#{c}>" for c in sorted(rules.denied)) or "none"
        return f"**Answers in:** {allowed}\n**Never in:** {denied}"

    @channels_group.command(name="list", description="Show where the bot answers")
    async def channels_list(self, interaction: discord.Interaction[ArticleBot]) -> None:
        rules = await self.bot.storage.get_channel_rules(guild_id_of(interaction))
        await say(interaction, self._channels_text(rules))

    async def _channel_rule(
        self,
        interaction: discord.Interaction[ArticleBot],
        channel: discord.abc.GuildChannel,
        rule: Literal["allow", "deny", "clear"],
    ) -> None:
        committed = await self.bot.storage.set_channel_rule(
            guild_id_of(interaction), channel.id, rule, interaction.user.id
        )  # the rules as this command's transaction left them
        await say(interaction, "Saved.\n" + self._channels_text(committed))

    @channels_group.command(
        name="allow", description="Answer in this channel (once any is allowed, only there)"
    )
    async def channels_allow(
        self, interaction: discord.Interaction[ArticleBot], channel: discord.TextChannel
    ) -> None:
        await self._channel_rule(interaction, channel, "allow")

    @channels_group.command(name="deny", description="Never answer in this channel")
    async def channels_deny(
        self, interaction: discord.Interaction[ArticleBot], channel: discord.TextChannel
    ) -> None:
        await self._channel_rule(interaction, channel, "deny")

    @channels_group.command(name="clear", description="Remove this channel's rule")
    async def channels_clear(
        self, interaction: discord.Interaction[ArticleBot], channel: discord.TextChannel
    ) -> None:
        await self._channel_rule(interaction, channel, "clear")

    # -- moderator role -------------------------------------------------------------------------
    @modrole_group.command(name="set", description="Members with this role can use /admin")
    async def modrole_set(self, interaction: discord.Interaction[ArticleBot], role: discord.Role) -> None:
        await self.bot.storage.update_settings(
            guild_id_of(interaction), interaction.user.id, moderator_role_id=role.id
        )
        await say(interaction, f"Moderator role set to {role.mention}: its members can now use `/admin`.")

    @modrole_group.command(name="clear", description="Only Manage Server (and bot owners) can use /admin")
    async def modrole_clear(self, interaction: discord.Interaction[ArticleBot]) -> None:
        await self.bot.storage.update_settings(
            guild_id_of(interaction), interaction.user.id, moderator_role_id=None
        )
        await say(interaction, "Moderator role cleared: `/admin` is for Manage Server and bot owners.")

    # -- documents ------------------------------------------------------------------------------
    @documents_group.command(
        name="add", description="Add a .txt or .md file (UTF-8, up to 1 MB) for this server"
    )
    @app_commands.describe(file="A .txt (one paragraph a line) or .md document")
    async def documents_add(
        self, interaction: discord.Interaction[ArticleBot], file: discord.Attachment
    ) -> None:
        guild_id = guild_id_of(interaction)
        name = PurePath(file.filename.replace("\\", "/")).name  # never a path, whatever the client sent
        try:
            validate_document_name(name)
        except ValueError as exc:
            await say(interaction, f"Not added: {exc}.")
            return
        if file.size > MAX_DOCUMENT_BYTES:
            await say(interaction, f"Not added: `{name}` is {file.size / 1e6:.1f} MB; the limit is 1 MB.")
            return
        await interaction.response.defer(
            ephemeral=True, thinking=True
        )  # download and index can take a moment
        try:
            data = await file.read()
            if len(data) > MAX_DOCUMENT_BYTES:
                raise ValueError("larger than 1 MB")
            text = decode(data)
            doc = parse_text(text, doc_id="upload", default_title=name, markdown=name.lower().endswith(".md"))
            if not doc.blocks:
                raise ValueError("no paragraphs, only headings")
        except ValueError as exc:
            await say(interaction, f"Not added: `{name}`: {exc}.")
            return
        except discord.HTTPException:
            await say(interaction, "Not added: I could not download the file from Discord; try again.")
            return
        try:
            await self.bot.storage.add_document(guild_id, name, doc.title, text, interaction.user.id)
        except ValueError as exc:  # over the server's document limits: the sentence says which
            await say(interaction, f"Not added: {exc}.")
            return
        # A StorageError (full or read-only disk) goes to report_error like every command's: the
        # moderator reads its sentence privately, the operator finds it in the log.
        self.bot.library.forget(guild_id)
        engine = await self.bot.library.for_guild(guild_id)  # built now, so the next question is fast
        count = sum(1 for p in engine.passages if p.document_id.startswith(f"g{guild_id}-"))
        await say(
            interaction,
            f"Added `{name}`, “{replies.escape(doc.title)}”: searched with the article in this server only "
            f"({count} passages from this server's documents).",
        )

    @documents_group.command(name="list", description="This server's own documents")
    async def documents_list(self, interaction: discord.Interaction[ArticleBot]) -> None:
        docs = await self.bot.storage.list_documents(guild_id_of(interaction))
        if not docs:
            await say(
                interaction, "This server has no documents of its own; `/admin documents add` adds one."
            )
            return
        lines = [
            f"`{d.name}` “{replies.escape(d.title)}”, {d.size_bytes / 1000:.1f} kB, "
            f"added by <@{d.added_by}> {when(d.added_at)}"
            for d in docs
        ]
        await say(interaction, "**This server's documents**\n" + "\n".join(lines))

    @documents_group.command(name="remove", description="Remove one of this server's documents")
    async def documents_remove(self, interaction: discord.Interaction[ArticleBot], name: str) -> None:
        guild_id = guild_id_of(interaction)
        if await self.bot.storage.remove_document(guild_id, name, interaction.user.id):
            self.bot.library.forget(guild_id)
            await say(interaction, f"Removed {replies.code(name)}.")
        else:
            await say(interaction, f"This server has no document called {replies.code(name)}.")

    @documents_remove.autocomplete("name")
    async def _document_names(
        self, interaction: discord.Interaction[ArticleBot], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        docs = await self.bot.storage.list_documents(interaction.guild_id)
        return [
            app_commands.Choice(name=d.name, value=d.name) for d in docs if current.lower() in d.name.lower()
        ][:25]

    # -- what members asked ---------------------------------------------------------------------
    @app_commands.command(name="misses", description="The latest questions the bot could not answer")
    async def misses(self, interaction: discord.Interaction[ArticleBot]) -> None:
        misses = await self.bot.storage.recent_misses(guild_id_of(interaction), LIST_LIMIT)
        if not misses:
            await say(interaction, "No unanswered questions yet.")
            return
        lines = [
            f"{when(m.asked_at)} <@{m.user_id}>: {replies.truncate(replies.escape(m.question), 150)}"
            for m in misses
        ]
        await say(interaction, "**Latest questions without an answer**\n" + "\n".join(lines))

    @app_commands.command(name="feedback", description="👍 and 👎 per passage")
    async def feedback(self, interaction: discord.Interaction[ArticleBot]) -> None:
        guild_id = guild_id_of(interaction)
        tallies = await self.bot.storage.feedback_summary(guild_id, LIST_LIMIT)
        if not tallies:
            await say(interaction, "No feedback yet.")
            return
        engine = await self.bot.library.for_guild(guild_id)
        lines = []
        for t in tallies:
            passage = engine.passage(t.passage_id)
            # Escaped first, then cut: the cut never splits an escape.
            label = (
                f"{replies.escape(passage.place)}: “{replies.truncate(replies.escape(passage.text), 60)}”"
                if passage
                else f"{replies.escape(t.passage_id)} (text changed)"
            )
            lines.append(f"👍 {t.up} · 👎 {t.down} · {label}")
        await say(interaction, "**Feedback per passage**\n" + "\n".join(lines))

    @app_commands.command(
        name="insights", description="A chart of questions, answers, votes and gaps, with the figures"
    )
    @app_commands.describe(days=f"How many days back, today included (1-{insights.MAX_DAYS}, default 14)")
    async def insights_command(
        self,
        interaction: discord.Interaction[ArticleBot],
        days: app_commands.Range[int, 1, insights.MAX_DAYS] = insights.DEFAULT_DAYS,
    ) -> None:
        guild_id = guild_id_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)  # encoding and drawing take a moment
        first, questions, votes = await insights.read(self.bot.storage, guild_id, days)
        engine = await self.bot.library.for_guild(guild_id)
        # The semantic model only where this server's engine already runs it: never loaded for this.
        embedder = engine.vectors.embedder if engine.vectors is not None else None
        found = await asyncio.to_thread(insights.build, first, days, questions, votes, engine, embedder)
        text = insights_text(found, days)
        if found.empty:
            await say(interaction, text)
            return
        png = await asyncio.to_thread(insights.render_png, found, days)
        await respond(
            interaction,
            ephemeral=True,
            content=text,
            file=discord.File(io.BytesIO(png), filename="insights.png", description=INSIGHTS_ALT),
        )

    # -- members --------------------------------------------------------------------------------
    @app_commands.command(name="block", description="Stop the bot answering a member in this server")
    async def block(
        self, interaction: discord.Interaction[ArticleBot], member: discord.Member, reason: str = ""
    ) -> None:
        await self.bot.storage.block_user(
            guild_id_of(interaction), member.id, interaction.user.id, reason[:200]
        )
        await say(interaction, f"{member.mention} is blocked: the bot won't answer them here.")

    @app_commands.command(name="unblock", description="Let a blocked member ask again")
    async def unblock(self, interaction: discord.Interaction[ArticleBot], member: discord.Member) -> None:
        if await self.bot.storage.unblock_user(guild_id_of(interaction), member.id, interaction.user.id):
            await say(interaction, f"{member.mention} can ask again.")
        else:
            await say(interaction, f"{member.mention} was not blocked.")

    @app_commands.command(name="blocked", description="Members the bot does not answer here")
    async def blocked(self, interaction: discord.Interaction[ArticleBot]) -> None:
        blocks = await self.bot.storage.list_blocks(guild_id_of(interaction))
        lines = [
            f"<@{b.user_id}> by <@{b.blocked_by}> {when(b.at)}"
            + (f": {replies.escape(b.reason)}" if b.reason else "")
            for b in blocks
        ]
        await say(interaction, "**Blocked members**\n" + "\n".join(lines) if lines else "Nobody is blocked.")

    @app_commands.command(name="audit", description="Every admin change here, with who and when")
    async def audit(self, interaction: discord.Interaction[ArticleBot]) -> None:
        entries = await self.bot.storage.audit_log(guild_id_of(interaction), LIST_LIMIT)
        lines = [f"{when(e.at)} <@{e.actor_id}> `{e.action}` {replies.escape(e.detail)}" for e in entries]
        await say(interaction, "**Audit log**\n" + "\n".join(lines) if lines else "No admin changes yet.")

    # -- owners ---------------------------------------------------------------------------------
    @app_commands.command(name="reload", description="Bot owners: re-read the corpus from disk")
    async def reload(self, interaction: discord.Interaction[ArticleBot]) -> None:
        if not await self.bot.is_owner(interaction.user):
            raise NotOwner()
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            engine = await self.bot.library.load()  # in a worker thread: answers keep flowing meanwhile
        except CorpusError as exc:
            await say(interaction, f"Reload failed, the old index stays: {replies.escape(str(exc))}")
            return
        try:
            await self.bot.storage.announce(Change("corpus"))  # every other process reloads too
        except StorageError as exc:
            await say(interaction, f"Reloaded here, but the other processes were not told: {exc}")
            return
        stats = engine.stats()
        warnings = f"\nSkipped: {replies.escape('; '.join(stats.load_errors))}" if stats.load_errors else ""
        await say(interaction, f"Reloaded: {stats.documents} documents, {stats.passages} passages.{warnings}")


async def setup(bot: ArticleBot) -> None:
    await bot.add_cog(Admin(bot))
