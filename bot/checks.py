"""Who may do what: the moderator check, blocks, channel rules and cooldowns, each in one place.

``admit`` is the one admission rule. Every way in calls it before anything else runs: the command
tree's ``interaction_check`` (slash commands and the Apps menu), the *More*, 👍/👎 and *Follow up* buttons'
``interaction_check`` (discord.py runs the tree's check for application commands only, never for
components), and the mention listener. Which parts apply to which action:

=================  ===========================================  =====  =======  ========  ========
action             paths                                        block  channel  mentions  cooldown
=================  ===========================================  =====  =======  ========  ========
ASK                /ask, Apps menu → *Ask the article*          yes    yes      -         spends
MENTION            a mention with a question                    yes    yes      on        spends
MENTION_USAGE      a bare mention (gets the usage line)         yes    yes      on        -
MORE               the *More* button                            yes    yes      -         -
FOLLOW_UP          the *Follow up* button (opens the modal)     yes    yes      -         -
VOTE               the vote buttons (thumbs up / down)          yes    yes      -         -
READ               /article; the Apps menu on a message         yes    yes      -         -
                   without text (gets "no text")
HELP               /help                                        -      -        -         -
ADMIN              /admin                                       -      -        -         -
=================  ===========================================  =====  =======  ========  ========

Why:
- The cooldown guards what asking costs everyone: a public answer in the channel and a row in the
  question log. Only a question spends it; asking nothing (bare mention, empty message) does not.
- A follow-up is a question: a reply to an answer is a MENTION (Discord's reply mentions the bot),
  the *Follow up* modal's submission an ASK. The button that opens the modal asks nothing yet, so
  it is gated as *More* is and spends nothing.
- *More* is private, logged nowhere, and the next click an answer invites: a cooldown on it would
  refuse that click seconds after every answer. It neither waits for nor spends the cooldown.
- A vote replaces the member's earlier vote on that passage, so repeating it floods nothing; block
  and channel apply because a blocked member's or a closed channel's votes are what moderators
  refused.
- /article quotes the server's own documents (titles, sections): the bot answering, so block and
  channel apply; it is private and searches nothing, so no cooldown.
- /help is fixed text on how to ask, shown privately; refusing it would only hide the rules from
  someone about to meet them.
- /admin has its own moderator check on every command, and a moderator must be able to undo a
  channel rule or a block from anywhere, even from a closed channel or while blocked.
- "mentions on" is the server's *replies to mentions* setting, checked before the cooldown so a
  mention the bot ignores costs nothing.

Every refusal is an ``app_commands.CheckFailure`` subclass carrying the sentence the member sees;
the one error function (``bot.client.report_error``) shows it privately to interactions and
decides what a mention, which has no private channel, is told.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from .storage import GuildSettings

if TYPE_CHECKING:
    from .client import ArticleBot


class Refusal(app_commands.CheckFailure):
    """A check said no; ``str(self)`` is what the member is told, privately."""


class NotModerator(Refusal):
    def __init__(self) -> None:
        super().__init__(
            "Only moderators can use this: Manage Server, the server's moderator role, or a bot owner."
        )


class NotOwner(Refusal):
    def __init__(self) -> None:
        super().__init__("Only the bot's owners can use this.")


class Blocked(Refusal):
    def __init__(self) -> None:
        super().__init__("A moderator has stopped the bot from answering you in this server.")


class ChannelClosed(Refusal):
    def __init__(self, allowed: list[int]) -> None:
        where = ", ".join(f"<#{c}>" for c in allowed[:10])
        hint = f" Ask in {where}." if where else ""
        super().__init__(f"I don't answer in this channel.{hint}")


class OnCooldown(Refusal):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"Easy there: you can ask again in {max(1, round(retry_after))} s.")


class MentionsOff(Refusal):
    def __init__(self) -> None:
        super().__init__("Replies to mentions are off in this server; use `/ask`.")


class Action(enum.Enum):
    """What a member is doing; ``RULES`` says which parts of the admission rule apply to it."""

    ASK = "ask"
    MENTION = "mention"
    MENTION_USAGE = "mention usage"
    MORE = "more"
    FOLLOW_UP = "follow up"
    VOTE = "vote"
    READ = "read"
    HELP = "help"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Rule:
    block: bool = False
    channel: bool = False
    mentions_on: bool = False
    cooldown: bool = False


# The table in the module docstring, as code.
RULES: dict[Action, Rule] = {
    Action.ASK: Rule(block=True, channel=True, cooldown=True),
    Action.MENTION: Rule(block=True, channel=True, mentions_on=True, cooldown=True),
    Action.MENTION_USAGE: Rule(block=True, channel=True, mentions_on=True),
    Action.MORE: Rule(block=True, channel=True),
    Action.FOLLOW_UP: Rule(block=True, channel=True),
    Action.VOTE: Rule(block=True, channel=True),
    Action.READ: Rule(block=True, channel=True),
    Action.HELP: Rule(),
    Action.ADMIN: Rule(),
}

# Each top-level application command's action; a test checks that every registered one is here.
COMMAND_ACTIONS: dict[str, Action] = {
    "ask": Action.ASK,
    "Ask the article": Action.ASK,
    "article": Action.READ,
    "help": Action.HELP,
    "admin": Action.ADMIN,
}
UNLISTED_COMMAND = Action.READ  # a command missing from the table still gets block and channel
NO_GUILD = 0  # cooldowns (and questions) in DMs are kept under server 0
ADMITTED = "articlebot.admitted"  # Interaction.extras key: the settings the gate read


def command_action(interaction: discord.Interaction[Any]) -> Action:
    """The action of an application-command interaction, from the table."""
    data: dict[str, Any] = dict(interaction.data or {})
    action = COMMAND_ACTIONS.get(str(data.get("name", "")), UNLISTED_COMMAND)
    if action is Action.ASK and data.get("type") == discord.AppCommandType.message.value:
        # The Apps menu on a message without text asks nothing: it is told so, and spends nothing.
        messages = data.get("resolved", {}).get("messages", {})
        target = messages.get(str(data.get("target_id")), {})
        if not str(target.get("content") or "").strip():
            return Action.READ
    return action


async def admit(
    bot: ArticleBot, action: Action, guild_id: int | None, channel_id: int, user_id: int
) -> GuildSettings:
    """The one admission rule: the server's settings if ``action`` may go ahead, else a Refusal.

    Checks, in order, the parts ``RULES[action]`` names: blocked member, closed channel, replies to
    mentions off, cooldown (spent here, so a refused action never spends it). In DMs there is no
    server: no block, channel rule or setting applies, only the default cooldown.
    """
    rule = RULES[action]
    settings = GuildSettings()
    if guild_id is not None and (rule.block or rule.channel or rule.mentions_on or rule.cooldown):
        found = await bot.storage.admission(guild_id, user_id)  # one transaction per question
        settings = found.settings
        if rule.block and found.blocked:
            raise Blocked()
        if rule.channel and not found.channel_rules.permits(channel_id):
            raise ChannelClosed(sorted(found.channel_rules.allowed))
        if rule.mentions_on and not settings.mention_replies:
            raise MentionsOff()
    if rule.cooldown:
        wait = bot.cooldowns.retry_after(guild_id or NO_GUILD, user_id, settings.cooldown_seconds)
        if wait:
            raise OnCooldown(wait)
    return settings


def admitted_settings(interaction: discord.Interaction[Any]) -> GuildSettings:
    """The settings the gate read for this interaction; refuses to go on for one it never saw."""
    settings = interaction.extras.get(ADMITTED)
    if not isinstance(settings, GuildSettings):
        raise RuntimeError("interaction did not pass the admission gate")
    return settings


class Cooldowns:
    """Per-server, per-member cooldowns whose length the server's moderators set."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, int], float] = {}

    def retry_after(self, guild_id: int, user_id: int, seconds: int) -> float:
        """0 if the member may ask now (and the ask is counted), else how long to wait."""
        now = time.monotonic()
        last = self._last.get((guild_id, user_id))
        if seconds > 0 and last is not None and now - last < seconds:
            return seconds - (now - last)
        self._last[(guild_id, user_id)] = now
        if len(self._last) > 50_000:  # forget the oldest half rather than grow without end
            for key in sorted(self._last, key=self._last.__getitem__)[:25_000]:
                del self._last[key]
        return 0.0


async def is_moderator(bot: ArticleBot, interaction: discord.Interaction[ArticleBot]) -> bool:
    """Manage Server in this channel, the server's moderator role, or a bot owner.

    Checked at run time on every /admin command: ``default_permissions`` only hides the commands,
    and a server's admins can show them to anyone through Discord's integration settings.
    """
    if await bot.is_owner(interaction.user):
        return True
    if interaction.guild_id is None or not isinstance(interaction.user, discord.Member):
        return False
    if interaction.permissions.manage_guild:
        return True
    settings = await bot.storage.get_settings(interaction.guild_id)
    role = settings.moderator_role_id
    return role is not None and any(r.id == role for r in interaction.user.roles)
