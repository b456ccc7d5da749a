"""Running the bot, registering its commands, and its invite link: what `python -m bot run`,
`sync` and `invite` do, kept apart from argument parsing."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import signal
import socket
from collections.abc import Sequence
from urllib.parse import urlencode

import aiohttp
import discord

from .client import describe_shards, make_bot
from .settings import README_HINT, Settings
from .storage import ShardClaims, SQLiteStorage, Storage, StorageError

log = logging.getLogger(__name__)

TOKEN_REJECTED = f"Discord rejected DISCORD_TOKEN: reset it on the Bot page and update .env ({README_HINT})"
TRY_AGAIN = "check the network connection (and any proxy or firewall), then start again"
# Why Discord ends a session for good (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
FATAL_CLOSE_CODES = {
    4004: TOKEN_REJECTED,
    4010: "Discord closed the gateway: invalid shard (code 4010)",
    4011: "Discord closed the gateway: the bot is in too many servers to run without sharding (code 4011)",
    4012: "Discord closed the gateway: API version no longer supported (code 4012); upgrade discord.py",
    4013: "Discord closed the gateway: invalid intents (code 4013); upgrade articlebot",
    4014: "Discord refused an intent (code 4014): articlebot needs no privileged intent; upgrade articlebot",
}
# What logging in or staying connected can end in; each becomes one line (failure_line), exit 2.
# discord.py itself reconnects after network trouble once connected: these end the process only
# at login (no network, DNS, refused, timeout) or when Discord closes the session for good.
DISCORD_FAILURES = (
    discord.LoginFailure,
    discord.ConnectionClosed,
    discord.PrivilegedIntentsRequired,  # close code 4014, raised apart
    discord.GatewayNotFound,
    discord.HTTPException,
    aiohttp.ClientError,  # ClientConnectorError: refused, DNS; ServerTimeoutError
    asyncio.TimeoutError,
)


def failure_line(error: BaseException) -> str:
    """The one line an operator reads for ``error``: what failed and what to do. Never the token:
    only codes, host names and the operating system's reason go in."""
    if isinstance(error, discord.LoginFailure):
        return TOKEN_REJECTED
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return FATAL_CLOSE_CODES[4014]
    if isinstance(error, discord.ConnectionClosed):
        known = FATAL_CLOSE_CODES.get(error.code or 0)
        return known or f"Discord closed the gateway with code {error.code}: try again later"
    if isinstance(error, discord.GatewayNotFound):
        return "Discord did not give a gateway to connect to: try again later (discordstatus.com)"
    if isinstance(error, discord.HTTPException):
        said = f": {error.text[:200]}" if error.text else ""
        return f"Discord answered HTTP {error.status}{said}; try again later (discordstatus.com)"
    if isinstance(error, aiohttp.ClientConnectorError):
        reason = error.os_error
        if isinstance(reason, socket.gaierror):
            return f"cannot reach Discord: no address for {error.host} (DNS lookup failed); {TRY_AGAIN}"
        why = os.strerror(reason.errno).lower() if reason.errno else type(reason).__name__
        return f"cannot reach Discord at {error.host}:{error.port} ({why}); {TRY_AGAIN}"
    if isinstance(error, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return f"cannot reach Discord: no answer in time; {TRY_AGAIN}"
    return f"lost the connection to Discord ({type(error).__name__}); {TRY_AGAIN}"


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
    if (
        settings.shard_count is not None
        and not settings.runs_every_shard
        and isinstance(storage, SQLiteStorage)
    ):
        # One process per SQLite file (its lock): the other shards' servers would go unanswered.
        raise StorageError(
            f"ARTICLEBOT_SHARD_IDS={describe_shards(settings.shard_ids or ())} runs only some of "
            f"{settings.shard_count} shards, but a SQLite database serves one process: run every "
            "shard in this process (leave ARTICLEBOT_SHARD_IDS unset) or use PostgreSQL "
            "(ARTICLEBOT_DATABASE=postgresql://…) for one process per shard range"
        )
    try:
        # First of all: a second process for the same shards stops here, never online. Unsharded
        # is shard 0 of 1 (Discord sends it every server): a second unsharded process on the same
        # PostgreSQL, or one next to sharded ones, would answer servers twice.
        await storage.claim_shards(settings.shard_ids or (0,), settings.shard_count or 1)
        await storage.open()
    except BaseException:
        await storage.close()  # gives the claims back
        raise
    if settings.shard_count is not None and (claims := await storage.shard_claims()) is not None:
        for level, line in coverage_lines(claims, settings.shard_count, settings.shard_ids or ()):
            log.log(level, "%s", line)
    bot = make_bot(settings, storage)  # its setup_hook finds the storage open already
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


def coverage_lines(claims: ShardClaims, shard_count: int, mine: Sequence[int]) -> list[tuple[int, str]]:
    """What a sharded process logs at start: the shards of the count that live processes claim
    (this one's included), and a warning naming those none does, whose servers nobody answers."""
    others = sorted(set(claims.shard_ids) - set(mine))
    lines = [
        (
            logging.INFO,
            f"shards of {shard_count} claimed by live processes: "
            f"{describe_shards(claims.shard_ids) or 'none'} (this process: {describe_shards(mine)}; "
            f"others: {describe_shards(others) or 'none'})",
        )
    ]
    if uncovered := claims.uncovered(shard_count):
        shards = describe_shards(uncovered)
        lines.append(
            (
                logging.WARNING,
                f"shard{'s' if len(uncovered) > 1 else ''} {shards} of {shard_count} claimed by no live "
                f"process: their servers go unanswered until one runs with ARTICLEBOT_SHARD_IDS={shards} "
                "(`articlebot shards` shows the claims now)",
            )
        )
    return lines


async def sync(settings: Settings, storage: Storage, guild_id: int | None) -> list[str]:
    """Register the command tree with Discord (HTTP only, no gateway); returns the names.

    Registering needs the commands, not the database or the index: ``storage`` is never opened,
    so ``sync`` works while the bot runs (and holds the database's lock).
    """
    bot = make_bot(settings, storage, commands_only=True)
    async with bot:
        await bot.login(settings.token)  # runs setup_hook: the cogs add their commands
        if guild_id:
            guild = discord.Object(id=guild_id)
            bot.tree.copy_global_to(guild=guild)
            commands = await bot.tree.sync(guild=guild)
        else:
            commands = await bot.tree.sync()
    return [c.name for c in commands]
