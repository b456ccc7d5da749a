"""The Discord client: intents, mentions policy, cogs, the admission gate and the one error function."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from . import __version__
from .checks import ADMITTED, Action, Cooldowns, OnCooldown, Refusal, admit, command_action
from .library import Library
from .settings import Settings
from .storage import Change, Storage, StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")

EXTENSIONS = ("bot.cogs.ask", "bot.cogs.admin", "bot.cogs.meta")
SHUTDOWN_GRACE = 5.0
# Names discord.py gives the tasks that run events, slash commands and component callbacks.
HANDLER_TASKS = (
    "CommandTree-invoker",
    "discord.py: on_",
    "discord-ui-view-dispatch-",
    "discord-ui-dynamic-item-",
)
WS_NORMAL_CLOSURE = (1000).to_bytes(2, "big")  # a CLOSE frame's payload: the close code
# discord.py tries a rate-limited call five times, then raises; these are the bot's own tries on top.
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_BACKOFF = 0.25  # seconds, times the try's number
GENERIC_ERROR = "Something went wrong on my side; the moderators can find the details in the bot's log."
NOT_HERE = "You can't use this command here."  # discord.py's own checks, e.g. /admin in a DM
SHORT_LIVED = 20.0  # seconds before a public notice (miss, cooldown, error) deletes itself


def intents() -> discord.Intents:
    """Servers and their messages; no privileged intent. Discord still sends the text of a message
    that mentions the bot without ``message_content``, which is all the mention path needs."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    return wanted


# A text bot: discord.py's "voice will NOT be supported" warnings at start-up are noise here.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


class ArticleTree(app_commands.CommandTree["ArticleBot"]):
    async def interaction_check(self, interaction: discord.Interaction[ArticleBot], /) -> bool:
        """Every slash command and Apps-menu command goes through the admission gate first."""
        if interaction.type is not discord.InteractionType.application_command:
            return True  # autocomplete answers nothing (and the bot defines none)
        name = interaction.command.qualified_name if interaction.command else "?"
        return await admit_interaction(interaction, command_action(interaction), f"command /{name}")

    async def on_error(
        self, interaction: discord.Interaction[ArticleBot], error: app_commands.AppCommandError, /
    ) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        await report_error(interaction, error, f"command /{command}")


class ArticleBot(commands.Bot):
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        library: Library | None = None,
        *,
        commands_only: bool = False,
    ) -> None:
        sharding: dict[str, Any] = {}
        if settings.shard_count is not None and isinstance(self, commands.AutoShardedBot):
            sharding = {"shard_count": settings.shard_count, "shard_ids": list(settings.shard_ids or ())}
        super().__init__(
            command_prefix=commands.when_mentioned,  # unused: no text commands, only slash and mentions
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),  # nothing the bot sends can ping
            help_command=None,
            owner_ids=set(settings.owner_ids),  # the application's owners join at login (setup_hook)
            tree_cls=ArticleTree,
            **sharding,
        )
        self.settings = settings
        self.storage = storage
        self.library = library or Library(settings.corpus, storage)
        self.cooldowns = Cooldowns()
        self.started_at = time.time()
        self.version = __version__
        self.commands_only = commands_only  # `sync`: the command tree, no database, no index

    async def setup_hook(self) -> None:
        self.owner_ids = self.owners_of(self.application)
        if not self.commands_only:
            await self.storage.open()
            await self.library.load()
            await self.storage.watch(self.storage_changed)  # other processes on the same database
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def storage_changed(self, change: Change) -> None:
        """Another process changed what this one answers from (PostgreSQL's NOTIFY)."""
        try:
            if change.kind == "documents" and change.guild_id is not None:
                self.library.forget(change.guild_id)
                log.info("server %s's documents changed in another process", change.guild_id)
            elif change.kind in ("corpus", "resync"):
                # resync: notifications may have been missed while the database was away.
                await self.library.load()
                log.info(
                    "corpus reloaded (%s)",
                    "an owner's reload elsewhere" if change.kind == "corpus" else "resync",
                )
            elif change.kind == "shards_lost":
                log.error("another process took this process's shards while the database was away; stopping")
                await self.close()
        except Exception:
            log.exception("could not apply a change from another process (%s)", change)

    async def close(self) -> None:
        try:
            ws = self.ws
            closing = asyncio.ensure_future(super().close())
            await asyncio.sleep(0)  # close() has marked the client closed: no reconnect from here
            if ws is not None and ws.open:
                # discord.py asks for close code 1000, but its gateway reader, woken by that close,
                # sends 4000 first: Discord keeps a 4000 session alive (the bot shown online) for
                # minutes. A CLOSE frame with 1000 sent first ends the session at once.
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.socket.send_frame(WS_NORMAL_CLOSURE, aiohttp.WSMsgType.CLOSE)
            await closing
        finally:
            await self.storage.close()

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Let the answers in flight finish (up to ``grace`` seconds), then close gateway and database.

        discord.py runs each event, command and button press in its own named task; those are the
        work in flight. Closing first would cut their REST calls off mid-answer.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        me = asyncio.current_task()
        while loop.time() < deadline:
            busy = [t for t in asyncio.all_tasks() if t is not me and t.get_name().startswith(HANDLER_TASKS)]
            if not busy:
                break
            await asyncio.wait(busy, timeout=deadline - loop.time())
        await self.close()

    def owners_of(self, app: discord.AppInfo | None) -> set[int]:
        """ARTICLEBOT_OWNER_IDS plus the application's owner, or its team's owner, admins and
        developers (whom discord.py counts as owners too)."""
        owners = set(self.settings.owner_ids)
        if app is None:
            log.warning("the application is unknown; bot owners are ARTICLEBOT_OWNER_IDS only")
        elif app.team is not None:
            if app.team.owner_id is not None:
                owners.add(app.team.owner_id)
            roles = (discord.TeamMemberRole.admin, discord.TeamMemberRole.developer)
            owners.update(m.id for m in app.team.members if m.role in roles)
        else:
            owners.add(app.owner.id)
        return owners

    async def is_owner(self, user: discord.abc.User, /) -> bool:
        # Known since login, from the application discord.py fetched there. discord.py's own
        # is_owner fetches it again on every call until one returns: a burst of /admin commands
        # at start-up sent one request each and missed the interaction deadline.
        return user.id in (self.owner_ids or ())

    async def on_ready(self) -> None:
        user = self.user
        if user is None:  # ready means logged in: cannot happen
            return
        servers = len(self.guilds)
        if self.settings.shard_count is not None:
            shards = f"shards {describe_shards(self.settings.shard_ids or ())} of {self.settings.shard_count}"
        else:
            shards = f"shard {self.shard_id or 0} of {self.shard_count or 1}"
        log.info(
            "connected as %s (id %s) in %d server%s, %s",
            user,
            user.id,
            servers,
            "" if servers == 1 else "s",
            shards,
        )
        if not servers:
            from .discord_app import invite_url  # discord_app imports this module

            log.info(
                "the bot is in no server yet; add it to one with %s",
                invite_url(self.application_id or user.id),
            )

    async def on_message(self, message: discord.Message, /) -> None:
        """No text commands: mentions are answered by the ask cog's listener."""


class ShardedArticleBot(ArticleBot, commands.AutoShardedBot):
    """The bot over the shards ``ARTICLEBOT_SHARD_IDS`` of ``ARTICLEBOT_SHARD_COUNT``: discord.py's
    AutoShardedBot, one gateway connection per shard, the same cogs and storage."""


def make_bot(settings: Settings, storage: Storage, **options: Any) -> ArticleBot:
    """A plain ArticleBot unless sharding is configured: unsharded runs stay exactly as they were."""
    kind = ShardedArticleBot if settings.shard_count is not None else ArticleBot
    return kind(settings, storage, **options)


def describe_shards(shard_ids: Sequence[int]) -> str:
    """``0-3``, ``0,2``, ``1``: how ARTICLEBOT_SHARD_IDS would say it."""
    ranges = []
    # Consecutive ids share id - position, so each group is one run.
    for _, run in itertools.groupby(enumerate(sorted(shard_ids)), key=lambda pair: pair[1] - pair[0]):
        ids = [shard_id for _, shard_id in run]
        ranges.append(f"{ids[0]}-{ids[-1]}" if len(ids) > 1 else str(ids[0]))
    return ",".join(ranges)


async def outlast_rate_limits(send: Callable[[], Awaitable[T]]) -> T:
    """``send()``, and again if discord.py gave up on a 429 after its own five tries.

    A 429 means Discord created nothing, so sending again cannot duplicate a message. Bounded:
    ``RATE_LIMIT_RETRIES`` more tries, backing off, then the HTTPException goes up as before.
    """
    for attempt in range(1, RATE_LIMIT_RETRIES + 1):
        try:
            return await send()
        except discord.HTTPException as error:
            if error.status != 429:
                raise
            log.warning("still rate limited after discord.py's retries; sending again (%d)", attempt)
            await asyncio.sleep(RATE_LIMIT_BACKOFF * attempt)
    return await send()


async def respond(interaction: discord.Interaction[Any], *, ephemeral: bool, **message: Any) -> None:
    """Answer an interaction: the first response, or a follow-up once it was deferred or answered."""
    message.setdefault("allowed_mentions", discord.AllowedMentions.none())

    async def send() -> None:
        if interaction.response.is_done():
            await interaction.followup.send(ephemeral=ephemeral, **message)
        else:
            await interaction.response.send_message(ephemeral=ephemeral, **message)

    await outlast_rate_limits(send)


async def send_private(interaction: discord.Interaction[Any], content: str) -> None:
    """Reply privately, whether or not the interaction was already answered (never twice)."""
    try:
        await respond(interaction, ephemeral=True, content=content)
    except discord.HTTPException:
        log.warning("could not tell user %s about an error (interaction expired?)", interaction.user.id)


async def reply_to(
    message: discord.Message,
    text: str,
    *,
    delete_after: float | None = None,
    view: discord.ui.View | None = None,
) -> None:
    """The one reply to ``message``: it pings no one, and is sent again if discord.py gave up on a 429.

    Its nonce is the triggering message's id, and discord.py sends every nonce with
    ``enforce_nonce``: a replayed or doubled MESSAGE_CREATE (a resume, a second process on the
    same shard) gets Discord's first reply back instead of posting a second one.
    """
    none = discord.AllowedMentions.none()
    nonce = str(message.id)
    extra: dict[str, Any] = {"view": view} if view is not None else {}
    if delete_after is not None:  # discord.py's overloads take no None here
        extra["delete_after"] = delete_after

    async def send() -> discord.Message:
        return await message.reply(text, mention_author=False, allowed_mentions=none, nonce=nonce, **extra)

    await outlast_rate_limits(send)


async def admit_interaction(interaction: discord.Interaction[Any], action: Action, what: str) -> bool:
    """The gate for an interaction (command, Apps menu, button): ``bot.checks.admit``.

    True to go on, with the settings it read in ``interaction.extras``; otherwise the refusal (or
    the failure to decide) has been reported privately and nothing else runs.
    """
    assert isinstance(interaction.client, ArticleBot)
    try:
        settings = await admit(
            interaction.client,
            action,
            interaction.guild_id,
            interaction.channel_id or 0,  # no channel: no allowed channel matches, fail closed
            interaction.user.id,
        )
    except Exception as error:  # raised out of a check, discord.py would drop it without a reply
        await report_error(interaction, error, what)
        return False
    interaction.extras[ADMITTED] = settings
    return True


async def report_error(
    target: discord.Interaction[Any] | discord.Message, error: BaseException, what: str
) -> None:
    """The one place any exception from any path (command, button, mention) becomes a reply.

    - a Refusal: its sentence; a discord.py check (e.g. guild only): a short "not here";
    - a StorageError: its one line (what failed, what to do), logged as an error;
    - anything else: the generic line, logged with its traceback.

    Interactions are told privately. A mention has no private channel: only a cooldown is said
    (everyone else's refusals stay silent: a blocked member is not called out in front of the
    channel, and a closed channel or mentions turned off mean the bot keeps quiet there), and a
    failure gets the generic line, since a storage line is for moderators and operators, who see it
    privately and in the log. Public notices delete themselves after ``SHORT_LIVED`` seconds.
    ``what`` names the path in the log ("command /ask", "button More", "mention").
    """
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    is_mention = isinstance(target, discord.Message)
    guild_id: int | None
    channel_id: int | None
    if isinstance(target, discord.Message):
        guild_id, channel_id = (target.guild.id if target.guild else None), target.channel.id
    else:
        guild_id, channel_id = target.guild_id, target.channel_id
    where = f"{what} failed in guild {guild_id} channel {channel_id}"
    if isinstance(error, Refusal):
        text = str(error)
    elif isinstance(error, app_commands.CheckFailure):
        text = NOT_HERE
    elif isinstance(error, StorageError):
        log.error("%s: %s", where, error)  # already the one line to act on; no traceback
        text = str(error)
    elif is_mention and isinstance(error, discord.Forbidden):
        log.info("%s: no permission to reply there", where)
        return  # replying would be refused the same way
    else:
        log.error("%s: %s", where, error, exc_info=error)
        text = GENERIC_ERROR
    if isinstance(target, discord.Interaction):
        await send_private(target, text)
    elif isinstance(error, Refusal) and not isinstance(error, OnCooldown):
        pass  # said in public, it would call a member out or break the bot's silence there
    else:
        public = text if isinstance(error, Refusal) else GENERIC_ERROR
        try:
            await reply_to(target, public, delete_after=SHORT_LIVED)
        except discord.HTTPException:
            log.warning("could not tell user %s why their mention got no answer", target.author.id)
