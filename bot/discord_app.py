"""Running the bot, registering its commands, and its invite link: what `python -m bot run`,
`sync` and `invite` do, kept apart from argument parsing."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import signal
from urllib.parse import urlencode

import discord

from .client import ArticleBot
from .settings import Settings
from .storage import Storage

log = logging.getLogger(__name__)


def permissions() -> discord.Permissions:
    """The least the bot needs: see channels, send (also in threads), embed answers, reply."""
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        read_message_history=True,  # a reply to a message needs it
    )


def invite_url(client_id: int) -> str:
    query = urlencode(
        {"client_id": client_id, "scope": "bot applications.commands", "permissions": permissions().value}
    )
    return f"https://discord.com/oauth2/authorize?{query}"


def application_id_from_token(token: str) -> int | None:
    """A bot token's first part is its user id (= the application id) in base64."""
    head = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(decoded) if decoded.isdigit() else None


async def run(settings: Settings, storage: Storage) -> None:
    """Run until SIGINT or SIGTERM, then close the gateway and the database cleanly.

    The database is opened (and checked, and locked to this process) before logging in: a bot
    that could not remember anything never goes online. ``StorageError`` says why.
    """
    await storage.open()
    bot = ArticleBot(settings, storage)  # its setup_hook finds the storage open already
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.token))
        stopper = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("shutting down: finishing answers in flight")
            await bot.shutdown()
        else:
            stopper.cancel()
        await runner  # re-raises LoginFailure and friends


async def sync(settings: Settings, storage: Storage, guild_id: int | None) -> list[str]:
    """Register the command tree with Discord (HTTP only, no gateway); returns the names."""
    await storage.open()  # before logging in, as ``run`` does
    bot = ArticleBot(settings, storage)
    async with bot:
        await bot.login(settings.token)  # runs setup_hook: the cogs add their commands
        if guild_id:
            guild = discord.Object(id=guild_id)
            bot.tree.copy_global_to(guild=guild)
            commands = await bot.tree.sync(guild=guild)
        else:
            commands = await bot.tree.sync()
    return [c.name for c in commands]
