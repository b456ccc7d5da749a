"""Pointing a real discord.py client at a :class:`~standin.server.DiscordStandin`.

``point_discord_at(standin)``
    Context manager: sets ``discord.http.Route.BASE`` to ``standin.api_base``,
    ``DiscordWebSocket.DEFAULT_GATEWAY`` to ``standin.gateway_url`` and ``discord.Asset.BASE`` (the
    CDN: avatars, icons) to ``standin.cdn_base``, and restores them on exit. Keep it active for the
    bot's whole life: every REST call and every re-IDENTIFY reads them. CDN reads end in the
    stand-in's catch-all (recorded as unknown routes) instead of going to the internet.

``running_bot(bot, standin, token="standin-token")``
    Async context manager: inside ``point_discord_at``, starts ``bot.start(token)`` in a task,
    waits until the bot is ready (on_ready fired), yields it, then ``await bot.close()`` and waits
    for the task. If the bot fails to start, the failure is raised instead of a timeout.

    Two discord.py delays are shortened by default, both meant for the real Discord:
    ``fast_ready`` lowers ``guild_ready_timeout`` to 0.05 s (discord.py waits 2 s after the last
    GUILD_CREATE before on_ready; bots can also pass ``guild_ready_timeout=`` to ``Client``), and
    ``fast_reidentify`` skips the 5 s sleep of ``Client.before_identify_hook`` before every
    non-initial IDENTIFY (after an invalid session), unless the bot's class overrides that hook.

``await eventually(condition, timeout=2.0)``
    Polls ``condition()`` (every 10 ms) until it is truthy, for bot-side effects that send nothing
    to Discord (a cache update, a database write); raises AssertionError on timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import discord
import yarl
from discord.asset import Asset
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .server import DiscordStandin

ClientT = TypeVar("ClientT", bound=discord.Client)


@contextlib.contextmanager
def point_discord_at(standin: DiscordStandin) -> Iterator[None]:
    """Route discord.py's REST and gateway connections to ``standin`` until exit."""
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, Asset.BASE
    Route.BASE = standin.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(standin.gateway_url)
    Asset.BASE = standin.cdn_base
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, Asset.BASE = saved


@contextlib.asynccontextmanager
async def running_bot(
    bot: ClientT,
    standin: DiscordStandin,
    *,
    token: str = "standin-token",
    ready_timeout: float = 5.0,
    fast_ready: bool = True,
    fast_reidentify: bool = True,
) -> AsyncIterator[ClientT]:
    """Run ``bot`` against ``standin`` for the duration of the block (see the module docstring)."""
    if fast_ready:
        # Private attribute: the only way to shorten on_ready's delay for a bot built elsewhere.
        bot._connection.guild_ready_timeout = min(bot._connection.guild_ready_timeout, 0.05)
    if fast_reidentify and type(bot).before_identify_hook is discord.Client.before_identify_hook:
        # discord.py looks the hook up on the instance, so this shadows the 5 s sleep for this bot only.
        bot.before_identify_hook = _identify_at_once  # type: ignore[method-assign]
    with point_discord_at(standin):
        task = asyncio.create_task(bot.start(token), name="standin-bot")
        try:
            await _wait_ready(bot, task, ready_timeout)
            yield bot
        finally:
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5.0)


async def _identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
    return None


async def _wait_ready(bot: discord.Client, task: asyncio.Task[None], timeout: float) -> None:
    # Poll: bot.wait_until_ready() cannot be awaited before login has set the client up.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not bot.is_ready():
        if task.done():
            task.result()  # raises the start-up failure
            raise RuntimeError("the bot stopped before it was ready")
        if loop.time() > deadline:
            raise TimeoutError(f"the bot was not ready after {timeout}s")
        await asyncio.sleep(0.01)


async def eventually(
    condition: Callable[[], object], *, timeout: float = 2.0, interval: float = 0.01
) -> None:
    """Wait until ``condition()`` is truthy; AssertionError if it is not within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition still false after {timeout}s")
        await asyncio.sleep(interval)
