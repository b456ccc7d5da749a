"""A Discord stand-in for end-to-end tests of a real discord.py bot (gateway + REST on 127.0.0.1).

Import it as ``standin`` (``tests/`` is on ``sys.path`` under pytest's default import mode)::

    from standin import CHANNEL_MESSAGE, DiscordStandin, payloads, running_bot
    from standin.fixtures import standin_fixture  # noqa: F401  (or pytest_plugins in conftest.py)

    async def test_reply(standin: DiscordStandin) -> None:
        async with running_bot(make_bot(), standin):
            hello = standin.message_create(f"{payloads.mention(standin.bot_user)} hi")
            await standin.dispatch("MESSAGE_CREATE", hello)
            sent = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
            assert sent.content == "hello"
            # fixture teardown: standin.assert_clean() fails the test on any Violation

Modules
    ``server``   -- :class:`DiscordStandin`: the server, its controls and its recordings.
    ``records``  -- :class:`Request`, :class:`SentMessage`, :class:`Violation`, ...
    ``payloads`` -- builders for guilds, channels, members, messages and interactions.
    ``spec``     -- request validation against Discord's OpenAPI spec and documented limits.
    ``harness``  -- :func:`point_discord_at`, :func:`running_bot` and :func:`eventually`.
    ``fixtures`` -- the ``standin`` pytest fixture.

Each module's docstring documents its API in full.
"""

from . import payloads
from .harness import eventually, point_discord_at, running_bot
from .records import (
    CHANNEL_MESSAGE,
    CHANNEL_MESSAGE_EDIT,
    FOLLOWUP,
    INTERACTION_CALLBACK,
    WEBHOOK_EDIT,
    GatewayConnection,
    Request,
    SentMessage,
    UploadedFile,
    Violation,
)
from .server import DiscordStandin, shard_of
from .spec import Problem, SpecValidator

__all__ = [
    "CHANNEL_MESSAGE",
    "CHANNEL_MESSAGE_EDIT",
    "FOLLOWUP",
    "INTERACTION_CALLBACK",
    "WEBHOOK_EDIT",
    "DiscordStandin",
    "GatewayConnection",
    "Problem",
    "Request",
    "SentMessage",
    "SpecValidator",
    "UploadedFile",
    "Violation",
    "eventually",
    "payloads",
    "point_discord_at",
    "running_bot",
    "shard_of",
]
