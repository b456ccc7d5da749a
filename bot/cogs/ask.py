"""Asking: /ask, mentions, the Apps-menu command, follow-ups (a reply to an answer, or its Follow up
button and modal), and the persistent More, 👍/👎 and Follow up buttons."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from .. import replies
from ..checks import NO_GUILD, Action, admit, admitted_settings
from ..client import SHORT_LIVED, admit_interaction, reply_to, report_error, respond
from ..engine import Answer, Engine
from ..storage import GuildSettings, LoggedQuestion

if TYPE_CHECKING:
    from ..client import ArticleBot

log = logging.getLogger(__name__)

SEEN_MENTIONS = 4096  # mentions remembered, so the same event delivered twice is handled once

MAX_QUESTION = 300  # /ask's limit; Discord enforces it on the option
# Discord drops an interaction not answered within 3 s of its creation. An answer found past this
# age is deferred first (its log row may still wait on a busy database); it follows once logged.
DEFER_AFTER_SECONDS = 1.0
USAGE = (
    "Ask me about the article: mention me with a question, "
    "e.g. “@{name} who called Musk a rocket man?”, or use `/ask`."
)


def age(interaction: discord.Interaction[Any]) -> float:
    """Seconds since Discord created the interaction (its id's timestamp)."""
    return (discord.utils.utcnow() - interaction.created_at).total_seconds()


class MoreButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ask:more:(?P<qid>\d+):(?P<offset>\d+)"
):
    """*More*: the next passages for a logged question. Works after a restart: the id says it all."""

    def __init__(self, question_id: int, offset: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="More",
                style=discord.ButtonStyle.secondary,
                custom_id=f"ask:more:{question_id}:{offset}",
            )
        )
        self.question_id, self.offset = question_id, offset

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> MoreButton:
        return cls(int(match["qid"]), int(match["offset"]))

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await admit_interaction(interaction, Action.MORE, "button More")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await ask_cog(interaction).more(interaction, self.question_id, self.offset)
        except Exception as error:
            await report_error(interaction, error, "button More")


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ask:vote:(?P<vote>up|down):(?P<pid>\S+)"
):
    """👍 / 👎 on a passage, stored per member and passage; a later vote replaces an earlier one."""

    def __init__(self, vote: str, passage_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                emoji="👍" if vote == "up" else "👎",
                style=discord.ButtonStyle.secondary,
                custom_id=f"ask:vote:{vote}:{passage_id}",
            )
        )
        self.vote, self.passage_id = vote, passage_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> VoteButton:
        return cls(match["vote"], match["pid"])

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await admit_interaction(interaction, Action.VOTE, "button vote")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await ask_cog(interaction).record_vote(
                interaction, self.passage_id, 1 if self.vote == "up" else -1
            )
        except Exception as error:
            await report_error(interaction, error, "button vote")


class FollowUpButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ask:follow:(?P<qid>\d+)"):
    """*Follow up*: a modal asking the next question, read with this answer as its context."""

    def __init__(self, question_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Follow up", style=discord.ButtonStyle.secondary, custom_id=f"ask:follow:{question_id}"
            )
        )
        self.question_id = question_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> FollowUpButton:
        return cls(int(match["qid"]))

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await admit_interaction(interaction, Action.FOLLOW_UP, "button Follow up")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await ask_cog(interaction).open_follow_up(interaction, self.question_id)
        except Exception as error:
            await report_error(interaction, error, "button Follow up")


class FollowUpModal(discord.ui.Modal, title="Follow up"):
    def __init__(self, question_id: int, asked: str, *, ephemeral: bool) -> None:
        super().__init__(custom_id=f"ask:followup:{question_id}")
        self.question_id, self.ephemeral = question_id, ephemeral
        self.question: discord.ui.TextInput[Any] = discord.ui.TextInput(
            custom_id="question", max_length=MAX_QUESTION, placeholder="and what did he reply?"
        )
        self.add_item(
            discord.ui.Label(
                text="Your next question",
                description=replies.truncate(f"Following up on “{asked}”", 100, markdown=False),
                component=self.question,
            )
        )

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        # A modal submission is no application command: the tree's gate never sees it. It asks a
        # question, so it passes the gate as /ask does (block, channel, cooldown).
        return await admit_interaction(interaction, Action.ASK, "modal Follow up")

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        try:
            await ask_cog(interaction).follow_up_submitted(
                interaction, self.question_id, self.question.value, ephemeral=self.ephemeral
            )
        except Exception as error:
            await report_error(interaction, error, "modal Follow up")


def follow_up_window(settings: GuildSettings) -> dt.timedelta | None:
    """How long after an answer a reply to it is a follow-up; None when follow-ups are off."""
    return dt.timedelta(minutes=settings.follow_up_minutes) if settings.follow_up_minutes else None


_ANSWER_ID = re.compile(r"ask:(?:more|follow):(\d+)")


def answered_question_id(message: discord.Message) -> int | None:
    """The logged question one of the bot's answers answers: its buttons carry the id."""
    for row in message.components:
        for item in getattr(row, "children", ()):
            if match := _ANSWER_ID.match(getattr(item, "custom_id", None) or ""):
                return int(match[1])
    return None


def ask_cog(interaction: discord.Interaction[Any]) -> Ask:
    cog = interaction.client.get_cog("Ask")
    assert isinstance(cog, Ask)
    return cog


def answer_view(
    question_id: int | None,
    answer: Answer,
    k: int,
    offset: int,
    *,
    follow_up: bool = False,
    more: bool = True,
) -> discord.ui.View:
    """More (when there may be more, and the question was logged: the button carries its id), votes,
    and Follow up (when the server has follow-ups on; a reply to the answer finds its id there)."""
    view = discord.ui.View(timeout=None)
    if more and question_id is not None and len(answer.hits) >= k:
        view.add_item(MoreButton(question_id, offset + k))
    if answer.hits:
        top = answer.hits[0].passage.id
        view.add_item(VoteButton("up", top))
        view.add_item(VoteButton("down", top))
    if question_id is not None and follow_up:
        view.add_item(FollowUpButton(question_id))
    return view


_MARKUP = re.compile(r"<(@[!&]?|#)(\d{15,21})>|<a?:(\w+):\d{15,21}>")


def readable(text: str, guild: discord.Guild | None) -> str:
    """Discord markup in a question turned into the words people see: <@&id> -> @Moderators.

    The engine should search for what the member read, never for snowflake digits.
    """

    def name(match: re.Match[str]) -> str:
        if match[3]:
            return f":{match[3]}:"
        kind, target = match[1], int(match[2])
        if guild is None:
            return ""
        if kind == "#":
            channel = guild.get_channel(target)
            return f"#{channel.name}" if channel else ""
        if kind == "@&":
            role = guild.get_role(target)
            return f"@{role.name}" if role else ""
        member = guild.get_member(target)
        return f"@{member.display_name}" if member else ""

    return _MARKUP.sub(name, text)


def strip_mentions(content: str, ids: set[int]) -> str:
    """The question without the mentions of the bot (user or role) that triggered it."""
    pattern = r"<@[!&]?(?:" + "|".join(str(i) for i in ids) + r")>"
    return re.sub(pattern, " ", content).strip()


class Ask(commands.Cog):
    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Ask the article", callback=self.ask_message)
        self.unlogged_questions = 0  # answered but not logged (storage failed); /admin status shows it
        self.seen_mentions: OrderedDict[int, None] = OrderedDict()

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.add_dynamic_items(MoreButton, VoteButton, FollowUpButton)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.remove_dynamic_items(MoreButton, VoteButton, FollowUpButton)

    async def answer(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        question: str,
        settings: GuildSettings,
        *,
        follows: LoggedQuestion | None = None,
    ) -> tuple[Answer, Engine, int | None]:
        """The answer, its engine, and the logged question's id (None when logging failed).

        ``follows``: the logged question this one follows up; it and its answer are the context."""
        answer, engine, elapsed_ms = await self.find(guild_id, question, settings, follows=follows)
        question_id = await self.log(guild_id, channel_id, user_id, answer, elapsed_ms, follows=follows)
        return answer, engine, question_id

    async def find(
        self,
        guild_id: int | None,
        question: str,
        settings: GuildSettings,
        *,
        follows: LoggedQuestion | None = None,
    ) -> tuple[Answer, Engine, float]:
        """The answer, its engine, and the engine's time in ms; nothing is stored yet."""
        engine = await self.bot.library.for_guild(guild_id)
        started = time.perf_counter()
        context = None
        if follows is not None:
            before = engine.ask(follows.question, k=1, strictness=settings.strictness)
            context = f"{follows.question} {before.sentence or ''}".strip()
        answer = engine.ask(
            question, k=settings.passages_per_answer, strictness=settings.strictness, context=context
        )
        return answer, engine, (time.perf_counter() - started) * 1000

    async def log(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        answer: Answer,
        elapsed_ms: float,
        *,
        follows: LoggedQuestion | None = None,
    ) -> int | None:
        """Log a question and its outcome: its id (the buttons carry it), or None when that failed."""
        hit = answer.hits[0] if answer.answered and answer.hits else None
        try:
            return await self.bot.storage.log_question(
                guild_id or NO_GUILD,
                channel_id,
                user_id,
                answer.question,
                answer.answered,
                hit.passage.id if hit else None,
                elapsed_ms,
                confidence=hit.confidence if hit else None,
                section=(hit.passage.section or hit.passage.document_title) if hit else None,
                follow_up_of=follows.id if follows else None,
            )
        except Exception:
            # Best effort: the log feeds statistics and the More button, never the answer itself.
            self.unlogged_questions += 1
            log.warning(
                "question in guild %s not logged (%d since start); answering anyway",
                guild_id,
                self.unlogged_questions,
                exc_info=True,
            )
            return None

    # -- /ask and the Apps menu -----------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask a question about the article")
    @app_commands.describe(question="What do you want to know?", private="Only you see the answer")
    async def ask(
        self,
        interaction: discord.Interaction[ArticleBot],
        question: app_commands.Range[str, 1, MAX_QUESTION],
        private: bool | None = None,
    ) -> None:
        await self.reply(interaction, readable(question, interaction.guild), private)

    async def ask_message(
        self, interaction: discord.Interaction[ArticleBot], message: discord.Message
    ) -> None:
        """Apps menu → *Ask the article*: that message's text is the question."""
        if not message.content.strip():
            await respond(interaction, ephemeral=True, content="That message has no text to ask about.")
            return
        await self.reply(interaction, readable(message.content, interaction.guild), None)

    async def reply(
        self, interaction: discord.Interaction[ArticleBot], question: str, private: bool | None
    ) -> None:
        settings = admitted_settings(interaction)  # the tree's gate: block, channel, cooldown
        if not self.bot.library.is_ready(interaction.guild_id):
            # A server's own documents are still being indexed (just after a start): the answer
            # may take seconds, so acknowledge now, privately, rather than miss Discord's 3 s.
            await interaction.response.defer(ephemeral=True, thinking=True)
        ephemeral = private if private is not None else settings.default_visibility == "private"
        await self.answer_interaction(interaction, question, settings, ephemeral=ephemeral)

    async def answer_interaction(
        self,
        interaction: discord.Interaction[Any],
        question: str,
        settings: GuildSettings,
        *,
        ephemeral: bool,
        follows: LoggedQuestion | None = None,
    ) -> None:
        """Answer in Discord's 3 s. A miss goes at once (private, and nothing in it needs the log).
        An answer waits for its log row (its buttons carry the id): when the interaction is already
        old (a busy process or database), the bot first defers, as public or private as the answer."""
        assert interaction.channel_id is not None
        where = (interaction.guild_id, interaction.channel_id, interaction.user.id)
        answer, engine, elapsed_ms = await self.find(where[0], question, settings, follows=follows)
        if not answer.answered:
            sections = [s for d in engine.documents for s in d.sections]
            await respond(interaction, ephemeral=True, content=replies.miss_text(answer, sections))
            await self.log(*where, answer, elapsed_ms, follows=follows)
            return
        if not interaction.response.is_done() and age(interaction) > DEFER_AFTER_SECONDS:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        question_id = await self.log(*where, answer, elapsed_ms, follows=follows)
        view = answer_view(
            question_id,
            answer,
            settings.passages_per_answer,
            0,
            follow_up=follows is not None or bool(settings.follow_up_minutes),
        )
        heading = follows_line(follows) if follows is not None else ""
        await self.send_answer(interaction, answer, engine, view, ephemeral=ephemeral, heading=heading)

    async def send_answer(
        self,
        interaction: discord.Interaction[Any],
        answer: Answer,
        engine: Engine,
        view: discord.ui.View,
        *,
        ephemeral: bool,
        first_rank: int = 1,
        heading: str = "",
    ) -> None:
        """An embed, or the same answer as text where the bot may not embed links; ``heading`` (a
        line of content) says what the answer follows up."""
        sources = self.bot.library.sources(engine)
        if interaction.app_permissions.embed_links:
            embed = replies.answer_embed(answer, sources=sources, first_rank=first_rank)
            extra = {"content": heading} if heading else {}
            await respond(interaction, ephemeral=ephemeral, embed=embed, view=view, **extra)
        else:
            text = replies.answer_text(answer, sources=sources, first_rank=first_rank)
            text = replies.truncate(f"{heading}\n{text}" if heading else text, replies.CONTENT_LIMIT)
            await respond(interaction, ephemeral=ephemeral, content=text, view=view)

    # -- buttons --------------------------------------------------------------------------------
    async def more(self, interaction: discord.Interaction[Any], question_id: int, offset: int) -> None:
        guild_id = interaction.guild_id
        logged = await self.bot.storage.get_question(guild_id or NO_GUILD, question_id)
        if logged is None:
            await respond(interaction, ephemeral=True, content="That question is no longer available.")
            return
        settings = admitted_settings(interaction)  # the button's gate: block, channel
        engine = await self.bot.library.for_guild(guild_id)
        k = settings.passages_per_answer
        answer = engine.ask(logged.question, k=k, strictness=0.0, offset=offset)
        if not answer.hits:
            await respond(interaction, ephemeral=True, content="That's everything the article has on this.")
            return
        view = answer_view(question_id, answer, k, offset)
        await self.send_answer(interaction, answer, engine, view, ephemeral=True, first_rank=offset + 1)

    async def record_vote(self, interaction: discord.Interaction[Any], passage_id: str, vote: int) -> None:
        await self.bot.storage.record_feedback(
            interaction.guild_id or NO_GUILD, passage_id, interaction.user.id, vote
        )
        engine = await self.bot.library.for_guild(interaction.guild_id)
        passage = engine.passage(passage_id)
        where = f" for *{replies.escape(passage.place)}*" if passage else ""
        await respond(
            interaction,
            ephemeral=True,
            content=f"Thanks, your {'👍' if vote > 0 else '👎'}{where} is recorded.",
        )

    # -- follow-ups -----------------------------------------------------------------------------
    async def followed(
        self, guild_id: int, question_id: int, answered_at: dt.datetime, settings: GuildSettings
    ) -> LoggedQuestion | str:
        """The logged question a follow-up follows, or why there is none to follow (a sentence)."""
        window = follow_up_window(settings)
        if window is None:
            return "Follow-ups are off in this server; ask with `/ask`."
        if discord.utils.utcnow() - answered_at > window:
            return "That answer is too old to follow up; ask with `/ask`."
        logged = await self.bot.storage.get_question(guild_id, question_id)
        return logged if logged is not None else "That question is no longer available."

    async def open_follow_up(self, interaction: discord.Interaction[Any], question_id: int) -> None:
        settings = admitted_settings(interaction)  # the button's gate: block, channel
        message = interaction.message
        answered_at = message.created_at if message else discord.utils.utcnow()
        found = await self.followed(interaction.guild_id or NO_GUILD, question_id, answered_at, settings)
        if isinstance(found, str):
            await respond(interaction, ephemeral=True, content=found)
            return
        ephemeral = bool(message and message.flags.ephemeral)
        await interaction.response.send_modal(FollowUpModal(question_id, found.question, ephemeral=ephemeral))

    async def follow_up_submitted(
        self, interaction: discord.Interaction[Any], question_id: int, text: str, *, ephemeral: bool
    ) -> None:
        assert interaction.channel_id is not None
        settings = admitted_settings(interaction)  # the modal's gate: block, channel, cooldown
        logged = await self.bot.storage.get_question(interaction.guild_id or NO_GUILD, question_id)
        if logged is None:
            await respond(interaction, ephemeral=True, content="That question is no longer available.")
            return
        question = readable(text, interaction.guild).strip()
        await self.answer_interaction(interaction, question, settings, ephemeral=ephemeral, follows=logged)

    async def replied_to(self, message: discord.Message) -> discord.Message | None:
        """The bot's own message ``message`` replies to, if it replies to one."""
        reference = message.reference
        if reference is None or reference.message_id is None or self.bot.user is None:
            return None
        target = reference.resolved
        if target is None and reference.channel_id == message.channel.id:
            try:  # Discord leaves it out now and then; the bot may read its channel's history
                target = await message.channel.fetch_message(reference.message_id)
            except discord.HTTPException:
                return None
        if isinstance(target, discord.Message) and target.author.id == self.bot.user.id:
            return target
        return None

    # -- warming up -----------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """Index a server's own documents when it comes online, before its first question."""
        await self.bot.library.for_guild(guild.id)

    # -- mentions -------------------------------------------------------------------------------
    def mentions_me(self, message: discord.Message) -> bool:
        """A direct mention of the bot, or of its own managed role; never @everyone / @here."""
        me = self.bot.user
        if me is None or message.guild is None:
            return False
        if any(u.id == me.id for u in message.mentions):
            return True
        own_role = message.guild.self_role
        return own_role is not None and own_role in message.role_mentions

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None or not self.mentions_me(message):
            return
        if not self.first_sight(message.id):
            # The same event again (a replay): handling it twice would spend the member's cooldown
            # and post its refusal. Another process or a restart is caught by the reply's nonce.
            return
        try:
            await self.answer_mention(message, message.guild)
        except Exception as error:
            await report_error(message, error, "mention")

    def first_sight(self, message_id: int) -> bool:
        if message_id in self.seen_mentions:
            return False
        self.seen_mentions[message_id] = None
        if len(self.seen_mentions) > SEEN_MENTIONS:
            self.seen_mentions.popitem(last=False)
        return True

    async def answer_mention(self, message: discord.Message, guild: discord.Guild) -> None:
        assert self.bot.user is not None
        ids = {self.bot.user.id} | ({guild.self_role.id} if guild.self_role else set())
        question = readable(strip_mentions(message.content, ids), guild).strip()
        action = Action.MENTION if question else Action.MENTION_USAGE
        settings = await admit(self.bot, action, guild.id, message.channel.id, message.author.id)
        if not question:
            await reply_to(message, USAGE.format(name=self.bot.user.display_name))
            return
        # A reply to one of the bot's answers, within the server's window, follows that answer up.
        follows = None
        answered = await self.replied_to(message)
        question_id = answered_question_id(answered) if answered else None
        if answered is not None and question_id is not None:
            found = await self.followed(guild.id, question_id, answered.created_at, settings)
            follows = found if isinstance(found, LoggedQuestion) else None
        answer, engine, new_id = await self.answer(
            guild.id, message.channel.id, message.author.id, question, settings, follows=follows
        )
        if not answer.answered:
            reason = replies.escape(answer.reason or "")
            text = f"I couldn't find that in the article. {reason} Try `/ask` for more."
            await reply_to(message, text, delete_after=SHORT_LIVED)
            return
        text = replies.answer_text(answer, sources=self.bot.library.sources(engine), compact=True)
        if follows is not None:
            text = replies.truncate(f"{follows_line(follows)}\n{text}", replies.CONTENT_LIMIT)
        # The Follow up button carries the question's id: a reply to this answer finds it there.
        view = answer_view(
            new_id,
            answer,
            settings.passages_per_answer,
            0,
            follow_up=bool(settings.follow_up_minutes),
            more=False,  # a compact reply shows one passage; /ask has More
        )
        await reply_to(message, text, view=view if view.children else None)


def follows_line(logged: LoggedQuestion) -> str:
    """The line that says which answer a follow-up follows."""
    asked = replies.truncate(replies.escape(logged.question), 120)
    return f"-# ↪ Following up on “{asked}”"


async def setup(bot: ArticleBot) -> None:
    await bot.add_cog(Ask(bot))
