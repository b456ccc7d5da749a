"""Shared test setup: the Discord stand-in fixture (tests/standin) and a real ArticleBot against it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from standin import DiscordStandin, SentMessage, running_bot

from bot.client import ArticleBot
from bot.settings import Settings
from bot.storage import SQLiteStorage

pytest_plugins = ["standin.fixtures", "storage_backends"]

ROOT = Path(__file__).resolve().parents[1]
BOT_OWNER_ID = 999_000_000_000_000_001  # a bot owner who is not the server's owner

RunBot = Callable[..., AbstractAsyncContextManager[ArticleBot]]


@pytest.fixture(scope="session", autouse=True)
def vector_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every engine of the session caches its vectors here, never in the repository's data/."""
    directory = tmp_path_factory.mktemp("vectors")
    before = os.environ.get("ARTICLEBOT_VECTOR_CACHE")
    os.environ["ARTICLEBOT_VECTOR_CACHE"] = str(directory)
    os.environ["TESTS_VECTOR_CACHE"] = str(directory)  # survives the ARTICLEBOT_* a child's env drops
    yield directory
    os.environ.pop("TESTS_VECTOR_CACHE", None)
    if before is None:
        os.environ.pop("ARTICLEBOT_VECTOR_CACHE", None)
    else:
        os.environ["ARTICLEBOT_VECTOR_CACHE"] = before


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "articlebot.db"


def bot_runner(standin: DiscordStandin, database: Path) -> RunBot:
    """``async with runner() as bot``: a real ArticleBot, its commands synced, on a real SQLite file.

    Enter it again (after the first has exited) for a restart on the same database.
    """

    @asynccontextmanager
    async def start(
        corpus: Path = ROOT / "corpus", owner_ids: frozenset[int] = frozenset({BOT_OWNER_ID})
    ) -> AsyncIterator[ArticleBot]:
        settings = Settings(token="standin-token", database=str(database), corpus=corpus, owner_ids=owner_ids)
        bot = ArticleBot(settings, SQLiteStorage(database))
        async with running_bot(bot, standin) as running:
            await running.tree.sync()
            yield running

    return start


@pytest.fixture
def run_bot(standin: DiscordStandin, database: Path) -> RunBot:
    return bot_runner(standin, database)


async def invoke(standin: DiscordStandin, name: str, options: Any = None, **kwargs: Any) -> SentMessage:
    """Run a slash command as a member would and return the bot's first reply to it."""
    event = standin.slash_interaction(name, options, **kwargs)
    await standin.dispatch("INTERACTION_CREATE", event)
    return await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])


def all_text(sent: SentMessage) -> str:
    """Everything a member would read in one sent message: content and every embed's text."""
    parts = [sent.content or ""]
    for embed in sent.embeds:
        parts += [
            embed.get("title", ""),
            embed.get("description", ""),
            embed.get("footer", {}).get("text", ""),
        ]
        parts += [f"{f['name']} {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(parts)


def custom_ids(sent: SentMessage) -> list[str]:
    return [c["custom_id"] for row in sent.components for c in row["components"]]
