"""Storage for everything the bot remembers: the interface, its rules, two backends, and a factory."""

from __future__ import annotations

from .base import (
    AuditEntry,
    Block,
    ChannelRules,
    DocumentLimitError,
    DocumentLimits,
    DocumentUsage,
    FeedbackTally,
    GuildSettings,
    LoggedQuestion,
    QuestionStats,
    Storage,
    StorageError,
    StoredDocument,
    Visibility,
)
from .rules import megabytes, validate_document_name, validate_settings
from .schema import SETTING_NAMES
from .sqlite import SQLiteStorage

__all__ = [
    "SETTING_NAMES",
    "AuditEntry",
    "Block",
    "ChannelRules",
    "DocumentLimitError",
    "DocumentLimits",
    "DocumentUsage",
    "FeedbackTally",
    "GuildSettings",
    "LoggedQuestion",
    "QuestionStats",
    "SQLiteStorage",
    "Storage",
    "StorageError",
    "StoredDocument",
    "Visibility",
    "megabytes",
    "open_storage",
    "validate_document_name",
    "validate_settings",
]


def open_storage(url_or_path: str) -> Storage:
    """Pick the backend for ``url_or_path``: a plain file path or ``sqlite:///path``.

    ``sqlite:///data/bot.db`` is relative, ``sqlite:////var/lib/bot.db`` absolute (the usual
    SQLAlchemy spelling). The backend is returned unopened: ``await storage.open()`` before use.
    """
    scheme, sep, rest = url_or_path.partition("://")
    if not sep:
        path = url_or_path
    elif scheme.lower() != "sqlite":
        # A PostgreSQL backend (postgresql://) will be added later, implementing the same Storage.
        raise ValueError(f"unsupported storage scheme {scheme!r}; use a file path or sqlite:///path")
    elif not rest.startswith("/"):
        raise ValueError(f"sqlite URLs need three slashes: sqlite:///path (got {url_or_path!r})")
    else:
        path = rest[1:]
    if not path:
        raise ValueError("storage path is empty")
    return SQLiteStorage(path)
