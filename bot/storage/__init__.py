"""Storage for everything the bot remembers: the interface, its rules, two backends, and a factory."""

from __future__ import annotations

from .base import (
    Admission,
    AuditEntry,
    Block,
    Change,
    ChangeListener,
    ChannelRules,
    DocumentLimitError,
    DocumentLimits,
    DocumentUsage,
    FeedbackTally,
    GuildSettings,
    LoggedQuestion,
    QuestionStats,
    ShardClaims,
    Storage,
    StorageError,
    StoredDocument,
    Visibility,
    Vote,
)
from .rules import megabytes, validate_document_name, validate_settings
from .schema import SETTING_NAMES
from .sqlite import SQLiteStorage

__all__ = [
    "SETTING_NAMES",
    "Admission",
    "AuditEntry",
    "Block",
    "Change",
    "ChangeListener",
    "ChannelRules",
    "DocumentLimitError",
    "DocumentLimits",
    "DocumentUsage",
    "FeedbackTally",
    "GuildSettings",
    "LoggedQuestion",
    "QuestionStats",
    "SQLiteStorage",
    "ShardClaims",
    "Storage",
    "StorageError",
    "StoredDocument",
    "Visibility",
    "Vote",
    "megabytes",
    "open_storage",
    "validate_document_name",
    "validate_settings",
]


def open_storage(url_or_path: str, *, pool_size: int | None = None) -> Storage:
    """Pick the backend for ``url_or_path``: a file path, ``sqlite:///path`` or ``postgresql://…``.

    ``sqlite:///data/bot.db`` is relative, ``sqlite:////var/lib/bot.db`` absolute (the usual
    SQLAlchemy spelling). ``postgresql://user:password@host:port/database`` (or ``postgres://``)
    is PostgreSQL, with a pool of ``pool_size`` connections. The backend is returned unopened:
    ``await storage.open()`` before use.
    """
    scheme, sep, rest = url_or_path.partition("://")
    if sep and scheme.lower() in ("postgresql", "postgres"):
        # Imported here: asyncpg is only loaded by a bot that uses PostgreSQL.
        from .postgres import DEFAULT_POOL_SIZE, PostgresStorage

        if not rest.strip("/"):
            raise ValueError("a PostgreSQL URL needs at least a host: postgresql://user:password@host/db")
        return PostgresStorage(url_or_path, pool_size=pool_size or DEFAULT_POOL_SIZE)
    if not sep:
        path = url_or_path
    elif scheme.lower() != "sqlite":
        raise ValueError(
            f"unsupported storage scheme {scheme!r}; use a file path, sqlite:///path or postgresql://…"
        )
    elif not rest.startswith("/"):
        raise ValueError(f"sqlite URLs need three slashes: sqlite:///path (got {url_or_path!r})")
    else:
        path = rest[1:]
    if not path:
        raise ValueError("storage path is empty")
    return SQLiteStorage(path)
