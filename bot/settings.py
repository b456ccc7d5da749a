"""Settings from the environment and ``.env``, and logging that never shows the token."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from dotenv import load_dotenv

DEFAULT_DATABASE = "sqlite:///data/articlebot.db"
DEFAULT_DATABASE_POOL = 4  # connections per process, PostgreSQL only; a bot's queries are short
MAX_DATABASE_POOL = 100
MAX_SHARD_COUNT = 4096  # far past any bot's needs (Discord: one shard per 1,000-2,500 servers)
README_HINT = "see README.md, 'Run it on Discord'"
# Three base64url segments: the bot's user id, a timestamp, an HMAC. Lengths vary over the years,
# so check the shape, not exact sizes.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{18,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}")


class SettingsError(Exception):
    """A setting is missing or malformed. The message is one line and never contains the token."""


@dataclass(frozen=True, slots=True)
class Settings:
    token: str = field(repr=False)
    database: str = DEFAULT_DATABASE
    database_pool: int = DEFAULT_DATABASE_POOL
    corpus: Path = field(default_factory=lambda: default_corpus())
    owner_ids: frozenset[int] = frozenset()
    dev_guild_id: int | None = None
    log_level: str = "INFO"
    # None: one process, one connection, as Discord gives an unsharded bot. Set: this process runs
    # shards ``shard_ids`` (all of them unless ARTICLEBOT_SHARD_IDS says) of ``shard_count``.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None

    @property
    def sharded(self) -> bool:
        return self.shard_count is not None

    @property
    def runs_every_shard(self) -> bool:
        return self.shard_count is None or self.shard_ids == tuple(range(self.shard_count))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, require_token: bool = True) -> Settings:
        """Read settings from ``env`` (default: the environment, ``.env`` merged in by the CLI)."""
        env = os.environ if env is None else env
        token = check_token(env.get("DISCORD_TOKEN", "")) if require_token else env.get("DISCORD_TOKEN", "")
        shard_count, shard_ids = _shards(
            env.get("ARTICLEBOT_SHARD_COUNT", ""), env.get("ARTICLEBOT_SHARD_IDS", "")
        )
        return cls(
            token=token,
            database=env.get("ARTICLEBOT_DATABASE") or DEFAULT_DATABASE,
            database_pool=_pool_size(env.get("ARTICLEBOT_DATABASE_POOL", "")),
            corpus=default_corpus(env),
            owner_ids=frozenset(_ids(env.get("ARTICLEBOT_OWNER_IDS", ""), "ARTICLEBOT_OWNER_IDS")),
            dev_guild_id=next(
                iter(_ids(env.get("ARTICLEBOT_DEV_GUILD_ID", ""), "ARTICLEBOT_DEV_GUILD_ID")), None
            ),
            log_level=_level(env.get("ARTICLEBOT_LOG_LEVEL") or "INFO"),
            shard_count=shard_count,
            shard_ids=shard_ids,
        )


def load_env_file() -> None:
    """Merge ``.env`` from the working directory into the environment; real variables win.

    Called once, first thing in the CLI's ``main()``, so every command sees the same settings.
    """
    load_dotenv(Path.cwd() / ".env", override=False)


def default_corpus(env: Mapping[str, str] | None = None) -> Path:
    """$ARTICLEBOT_CORPUS, else the article shipped with the package.

    Not ``./corpus``: a folder that happens to be called ``corpus`` wherever the command runs must
    not silently replace the article; pointing elsewhere is one setting away.
    """
    env = os.environ if env is None else env
    if configured := env.get("ARTICLEBOT_CORPUS"):
        return Path(configured)
    return packaged_corpus()


def packaged_corpus() -> Path:
    """The article's folder: ``bot/corpus`` in an installed wheel (pyproject maps the repository's
    top-level ``corpus/`` there), the repository's ``corpus/`` in a checkout or editable install."""
    installed = resources.files("bot") / "corpus"
    if installed.is_dir():
        return Path(str(installed))  # wheels install unzipped: a real folder
    return Path(__file__).resolve().parent.parent / "corpus"


def check_token(raw: str) -> str:
    token = raw.strip().strip("\"'")
    if not token:
        raise SettingsError(
            f"DISCORD_TOKEN is not set: put the bot token in .env or the environment ({README_HINT})"
        )
    if token.lower().startswith("bot "):
        raise SettingsError(
            f"DISCORD_TOKEN starts with 'Bot ': set the token alone, without the prefix ({README_HINT})"
        )
    if not _TOKEN_SHAPE.fullmatch(token):
        raise SettingsError(
            f"DISCORD_TOKEN does not look like a bot token (three parts separated by dots); "
            f"copy it again from the Bot page of your application ({README_HINT})"
        )
    return token


def _ids(raw: str, name: str) -> list[int]:
    ids = []
    for part in filter(None, (p.strip() for p in raw.replace(";", ",").split(","))):
        if not part.isdigit():
            raise SettingsError(
                f"{name} must be Discord ids (numbers) separated by commas, got {part[:24]!r}"
            )
        ids.append(int(part))
    return ids


def _pool_size(raw: str) -> int:
    if not raw.strip():
        return DEFAULT_DATABASE_POOL
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_DATABASE_POOL:
        raise SettingsError(
            f"ARTICLEBOT_DATABASE_POOL must be a number of connections from 1 to {MAX_DATABASE_POOL}, "
            f"got {raw[:24]!r}"
        )
    return int(raw)


def _shards(raw_count: str, raw_ids: str) -> tuple[int | None, tuple[int, ...] | None]:
    """ARTICLEBOT_SHARD_COUNT ("4") and ARTICLEBOT_SHARD_IDS ("0-1", "0,2", "3"; default: all)."""
    if not raw_count.strip():
        if raw_ids.strip():
            raise SettingsError(
                "ARTICLEBOT_SHARD_IDS needs ARTICLEBOT_SHARD_COUNT, the bot's total shard count"
            )
        return None, None
    count_text = raw_count.strip()
    if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_SHARD_COUNT:
        raise SettingsError(
            f"ARTICLEBOT_SHARD_COUNT must be a number of shards from 1 to {MAX_SHARD_COUNT}, "
            f"got {raw_count[:24]!r}"
        )
    count = int(count_text)
    if not raw_ids.strip():
        return count, tuple(range(count))
    ids: set[int] = set()
    for part in (p.strip() for p in raw_ids.split(",")):
        first, dash, last = part.partition("-")
        if not first.strip().isdigit() or (dash and not last.strip().isdigit()):
            raise SettingsError(
                f"ARTICLEBOT_SHARD_IDS must be shard numbers and ranges like 0-1 or 0,2, got {part[:24]!r}"
            )
        low, high = int(first), int(last) if dash else int(first)
        if low > high or high >= count:
            raise SettingsError(
                f"ARTICLEBOT_SHARD_IDS: {part!r} is not a range of shards 0 to {count - 1} "
                f"(ARTICLEBOT_SHARD_COUNT={count})"
            )
        ids.update(range(low, high + 1))
    return count, tuple(sorted(ids))


def _level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"ARTICLEBOT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {raw[:24]!r}")
    return level


class RedactingFormatter(logging.Formatter):
    """A formatter that replaces secrets (the token) wherever they appear, tracebacks included."""

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "[token redacted]")
        return text


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", [settings.token])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, root.level))  # heartbeats are noise
