"""Who may do what: the moderator check, blocks, channel rules and cooldowns, each in one place.

Every refusal is an ``app_commands.CheckFailure`` subclass carrying the sentence the member sees;
the one error handler (``ArticleBot.on_app_command_error``) shows it privately.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands

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
