"""The storage interface the Discord layer talks to.

Everything a server's moderators change, and every question asked, goes through this one small
async interface, implemented by SQLite (``bot.storage.sqlite``) and PostgreSQL
(``bot.storage.postgres``). What the rules are (settings' ranges and defaults, document caps, the
audit log's wording) is decided once, above the backends, in ``bot.storage.rules`` and
``bot.storage.schema``: a backend stores ids and rows and asks the rules what to write.

Rules every backend keeps:
- every method is scoped by ``guild_id``: nothing one server stores is visible from another;
- a method that changes moderator-controlled state takes the acting user's id and writes the
  audit entry in the same transaction as the change;
- a method returns only after the change is durable (committed), so a reply sent after it
  never acknowledges something a crash could lose.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import schema
from .schema import Visibility as Visibility  # re-exported: the cogs import it from here


class StorageError(Exception):
    """The database cannot do what was asked: unreadable, corrupt, read-only, full, locked, too new.

    ``str(error)`` is one line a moderator or an operator can act on (what failed, what to do);
    it never holds a traceback. Backends raise it instead of their driver's own exceptions.
    """


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """Per-server settings, with the defaults a new server gets (ranges and defaults: ``schema``)."""

    passages_per_answer: int = schema.PASSAGES_PER_ANSWER.default
    default_visibility: Visibility = schema.DEFAULT_VISIBILITY.default
    mention_replies: bool = schema.MENTION_REPLIES.default
    cooldown_seconds: int = schema.COOLDOWN_SECONDS.default  # per user
    strictness: float = schema.STRICTNESS.default  # 0 (answer almost anything) .. 1 (only when sure)
    moderator_role_id: int | None = schema.MODERATOR_ROLE_ID.default
    follow_up_minutes: int = schema.FOLLOW_UP_MINUTES.default  # 0: replies are no follow-ups


@dataclass(frozen=True, slots=True)
class StoredDocument:
    guild_id: int
    name: str  # safe file-like name, unique per guild, e.g. "faq.md"
    title: str
    text: str
    added_by: int
    added_at: dt.datetime
    size_bytes: int


@dataclass(frozen=True, slots=True)
class LoggedQuestion:
    id: int
    guild_id: int
    channel_id: int
    user_id: int
    question: str
    answered: bool
    top_passage_id: str | None
    elapsed_ms: float
    asked_at: dt.datetime
    # Schema 2, for /admin insights: the top passage's confidence and section (None when declined),
    # and the question this one followed up (a reply to the bot's answer to it).
    confidence: float | None = None
    section: str | None = None
    follow_up_of: int | None = None


@dataclass(frozen=True, slots=True)
class Vote:
    """One member's current 👍 (+1) or 👎 (-1) on a passage, and when it was cast."""

    passage_id: str
    vote: int
    voted_at: dt.datetime


@dataclass(frozen=True, slots=True)
class QuestionStats:
    answered: int = 0
    missed: int = 0
    median_ms: float | None = None


@dataclass(frozen=True, slots=True)
class FeedbackTally:
    passage_id: str
    up: int
    down: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    guild_id: int
    actor_id: int
    action: str  # e.g. "settings.set", "channels.allow", "documents.add", "block"
    detail: str  # human-readable: "cooldown_seconds: 10 -> 30"
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Block:
    guild_id: int
    user_id: int
    blocked_by: int
    reason: str
    at: dt.datetime


@dataclass(slots=True)
class ChannelRules:
    """Which channels the bot answers in. With no ``allowed`` channel, every channel not denied is open."""

    allowed: set[int] = field(default_factory=set)
    denied: set[int] = field(default_factory=set)

    def permits(self, channel_id: int) -> bool:
        if channel_id in self.denied:
            return False
        return not self.allowed or channel_id in self.allowed


@dataclass(frozen=True, slots=True)
class Admission:
    """What the admission gate reads for one member's question in one server: one transaction,
    because every question pays for it, and on a busy shared database each transaction waits its
    turn for a pooled connection."""

    settings: GuildSettings
    blocked: bool
    channel_rules: ChannelRules


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """What one server may store of its own documents.

    Why these defaults: the probe's 30 documents of 1 MB took the bot from 70 MB to 1 GB, about
    30 MB of memory per MB of text indexed, and every add rebuilds the server's whole index. A
    server at the 5 MB cap measured +145 MB of memory, a 7.8 s rebuild and 2.4 ms per question
    (2 busy cores), while 20 documents of 250 kB (a long FAQ, rules, a wiki export) still fit.
    One file stays at 1 MB, as before.
    """

    max_documents: int = 20
    max_total_bytes: int = 5_000_000
    max_document_bytes: int = 1_000_000


@dataclass(frozen=True, slots=True)
class DocumentUsage:
    count: int
    total_bytes: int
    limits: DocumentLimits


class DocumentLimitError(ValueError):
    """An add would take the server past one of its :class:`DocumentLimits`; ``str`` says which."""


# /admin insights reads at most this many questions: a fortnight of a very busy server, bounded.
INSIGHT_ROWS = 50_000

ChangeKind = Literal["documents", "corpus", "resync", "shards_lost"]


@dataclass(frozen=True, slots=True)
class Change:
    """What another process sharing the database did, told to every process that watches it.

    ``documents``: a server's documents changed (``guild_id``); ``corpus``: an owner reloaded the
    corpus; ``resync``: the watch was down for a while (the server restarted) and anything may
    have changed; ``shards_lost``: this process's shard claims are gone and another process took
    a shard meanwhile, so it must stop.
    """

    kind: ChangeKind
    guild_id: int | None = None


ChangeListener = Callable[[Change], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class ShardClaims:
    """The shards that live processes on one database claim right now, and with which counts."""

    shard_ids: tuple[int, ...]  # sorted
    counts: tuple[int, ...]  # the shard counts those processes run with (one, as they must agree)

    def uncovered(self, shard_count: int) -> tuple[int, ...]:
        """The shards of ``shard_count`` no live process claims: their servers go unanswered."""
        claimed = set(self.shard_ids)
        return tuple(shard_id for shard_id in range(shard_count) if shard_id not in claimed)


class Storage(abc.ABC):
    """Async storage for everything the bot must remember across restarts."""

    # -- several processes ----------------------------------------------------------------------
    # A backend one process has to itself (SQLite: its single-instance lock) has nothing to claim,
    # hear or tell; PostgreSQL, shared by many processes, overrides all four.
    async def claim_shards(self, shard_ids: Sequence[int], shard_count: int) -> None:  # noqa: B027
        """Make this process the only one serving ``shard_ids`` of ``shard_count`` while it runs;
        ``StorageError`` (one line) if another process holds one of them."""

    async def shard_claims(self) -> ShardClaims | None:
        """What every live process on this database claims; None where one process is all there is."""
        return None

    async def watch(self, listener: ChangeListener) -> None:  # noqa: B027
        """From now on, call ``listener`` for every :class:`Change` another process makes."""

    async def announce(self, change: Change) -> None:  # noqa: B027
        """Tell the other processes about a change that is no row (``corpus``)."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (migrations run here)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- settings -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_settings(self, guild_id: int) -> GuildSettings: ...

    @abc.abstractmethod
    async def admission(self, guild_id: int, user_id: int) -> Admission:
        """The server's settings, whether the member is blocked, and its channel rules, together."""

    @abc.abstractmethod
    async def update_settings(self, guild_id: int, actor_id: int, **changes: object) -> GuildSettings:
        """Validate and apply ``changes`` (names from ``schema.SETTINGS``).

        Raises ``ValueError`` with a message fit for a moderator when a value is out of range.
        """

    # -- channels -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_channel_rules(self, guild_id: int) -> ChannelRules: ...

    @abc.abstractmethod
    async def set_channel_rule(
        self, guild_id: int, channel_id: int, rule: Literal["allow", "deny", "clear"], actor_id: int
    ) -> ChannelRules: ...

    # -- documents ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_document(
        self, guild_id: int, name: str, title: str, text: str, actor_id: int
    ) -> StoredDocument:
        """Add or replace the server's document called ``name``.

        Raises ``DocumentLimitError`` (a ``ValueError``) when the server's limits would be passed;
        the check and the write are one transaction, so concurrent adds cannot pass them either.
        """

    @abc.abstractmethod
    async def list_documents(self, guild_id: int) -> list[StoredDocument]: ...

    @abc.abstractmethod
    async def document_usage(self, guild_id: int) -> DocumentUsage:
        """How many documents the server has and their total size, with its limits."""

    @abc.abstractmethod
    async def remove_document(self, guild_id: int, name: str, actor_id: int) -> bool: ...

    # -- question log ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def log_question(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        question: str,
        answered: bool,
        top_passage_id: str | None,
        elapsed_ms: float,
        *,
        confidence: float | None = None,
        section: str | None = None,
        follow_up_of: int | None = None,
    ) -> int:
        """Record one question; returns its id (used by the persistent *More* button)."""

    @abc.abstractmethod
    async def get_question(self, guild_id: int, question_id: int) -> LoggedQuestion | None: ...

    @abc.abstractmethod
    async def question_stats(self, guild_id: int, since: dt.datetime | None = None) -> QuestionStats: ...

    @abc.abstractmethod
    async def questions_since(
        self, guild_id: int, since: dt.datetime, limit: int = INSIGHT_ROWS
    ) -> list[LoggedQuestion]:
        """The server's questions asked at or after ``since``, oldest first, at most ``limit``."""

    @abc.abstractmethod
    async def recent_misses(self, guild_id: int, limit: int = 10) -> list[LoggedQuestion]: ...

    # -- feedback -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def record_feedback(self, guild_id: int, passage_id: str, user_id: int, vote: int) -> None:
        """``vote`` is +1 or -1; a user's later vote on the same passage replaces the earlier one."""

    @abc.abstractmethod
    async def votes_since(self, guild_id: int, since: dt.datetime) -> list[Vote]:
        """Every current vote cast (or last changed) at or after ``since``, oldest first."""

    @abc.abstractmethod
    async def feedback_summary(self, guild_id: int, limit: int = 20) -> list[FeedbackTally]: ...

    # -- blocks ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def block_user(self, guild_id: int, user_id: int, actor_id: int, reason: str = "") -> None: ...

    @abc.abstractmethod
    async def unblock_user(self, guild_id: int, user_id: int, actor_id: int) -> bool: ...

    @abc.abstractmethod
    async def is_blocked(self, guild_id: int, user_id: int) -> bool: ...

    @abc.abstractmethod
    async def list_blocks(self, guild_id: int) -> list[Block]: ...

    # -- audit ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def audit_log(self, guild_id: int, limit: int = 20) -> list[AuditEntry]: ...
