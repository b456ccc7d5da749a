"""PostgreSQL implementation of :class:`bot.storage.base.Storage`, on asyncpg.

For several bot processes sharing one database (SQLite stays the default for one machine). The
rules (validation, caps, audit wording) are ``bot.storage.rules``'; this module keeps rows.

- A pool of ``pool_size`` connections (``ARTICLEBOT_DATABASE_POOL``). Each method is one
  transaction on one pooled connection, committed before the method returns: a reply sent after
  it never acknowledges something the server could still lose.
- Every moderator's change to a server first takes that server's transaction-scoped advisory
  lock, so changes to one server are serialised as they are on SQLite (its write lock): the
  document caps' count and the insert cannot interleave with another add, from this process or
  another, and an audit line's "old -> new" is the value it really replaced.
- After the server restarts, every pooled connection is dead. A transaction that fails because
  its connection is gone, before its COMMIT was sent, cannot have changed anything: it is run once
  more on a fresh connection. One lost during COMMIT is never retried (it may have landed); the
  moderator is told it is unknown.
- Several processes: each claims its Discord shards with session-level advisory locks on a
  connection of its own (``claim_shards``), held while it lives and dropped by the server when it
  dies, so a second process claiming a shard is refused at start. The same connection LISTENs
  (``watch``): a document added or removed NOTIFYs in its own transaction (delivered on commit,
  never for a change rolled back), and a corpus reload is announced; after a server restart the
  connection is made again, the claims retaken, and the listener told to resync.
- Numbered migrations like SQLite's, recorded in a ``schema_version`` table (SQLite keeps
  ``user_version``), each step one transaction under an advisory lock, so two processes starting
  together migrate once.

Errors become :class:`StorageError`: at open, one line naming ``host:port/database`` (never the
password); at run time, the same sentences moderators get from the SQLite backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar, cast

import asyncpg  # type: ignore[import-untyped]

from ..settings import DEFAULT_DATABASE_POOL
from . import rules
from .base import (
    INSIGHT_ROWS,
    Admission,
    AuditEntry,
    Block,
    Change,
    ChangeListener,
    ChannelRules,
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

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_POOL_SIZE = DEFAULT_DATABASE_POOL  # ARTICLEBOT_DATABASE_POOL
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
LOCK_TIMEOUT_MS = 5000  # as SQLite's busy timeout: a lock held longer is "locked by another program"
# Advisory lock keys: one for migrations (bigint space), one namespace for per-server locks
# (two-int space, the server's id hashed into the second key; a collision only serialises more).
MIGRATION_LOCK = 0x61727469636C6562  # "articleb"
GUILD_LOCK_NAMESPACE = 0x61627400
# Session-level advisory locks (two-int space): (SHARD_LOCK_NAMESPACE, shard id) held exclusively by
# the process serving that shard; (SHARD_COUNT_NAMESPACE, shard count) shared by every process, so
# one started with another count (its shards would overlap others') is seen and refused.
SHARD_LOCK_NAMESPACE = 0x73686400
SHARD_COUNT_NAMESPACE = 0x73686300
NOTIFY_CHANNEL = "articlebot_changes"
# Advisory locks are per database, but pg_locks lists the whole server's: look at this database's.
THIS_DATABASE = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
RECONNECT_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)  # then every 5 s until the server is back

# Schema migrations: step N (1-based) upgrades a database at schema_version N-1 to N. Append-only,
# as SQLite's: never edit a released step, add one. Step 1 is SQLite's step 1 in PostgreSQL's
# types: BIGINT for Discord ids (they pass 2^53), TIMESTAMPTZ, BOOLEAN, identity columns (never
# reused: ids are baked into persistent buttons). The CHECKs repeat bot/storage/schema.py's
# ranges at version 1; tests check the two agree.
MIGRATIONS: Sequence[Sequence[str]] = (
    (
        """CREATE TABLE guild_settings (
            guild_id            BIGINT PRIMARY KEY,
            passages_per_answer INTEGER NOT NULL CHECK (passages_per_answer BETWEEN 1 AND 5),
            default_visibility  TEXT    NOT NULL CHECK (default_visibility IN ('public', 'private')),
            mention_replies     BOOLEAN NOT NULL,
            cooldown_seconds    INTEGER NOT NULL CHECK (cooldown_seconds BETWEEN 0 AND 3600),
            strictness          DOUBLE PRECISION NOT NULL CHECK (strictness BETWEEN 0 AND 1),
            moderator_role_id   BIGINT
        )""",
        """CREATE TABLE channel_rules (
            guild_id   BIGINT NOT NULL,
            channel_id BIGINT NOT NULL,
            rule       TEXT   NOT NULL CHECK (rule IN ('allow', 'deny')),
            PRIMARY KEY (guild_id, channel_id)
        )""",
        """CREATE TABLE documents (
            guild_id   BIGINT      NOT NULL,
            name       TEXT        NOT NULL,
            title      TEXT        NOT NULL,
            text       TEXT        NOT NULL,
            added_by   BIGINT      NOT NULL,
            added_at   TIMESTAMPTZ NOT NULL,
            size_bytes INTEGER     NOT NULL,
            PRIMARY KEY (guild_id, name)
        )""",
        """CREATE TABLE questions (
            id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            guild_id       BIGINT           NOT NULL,
            channel_id     BIGINT           NOT NULL,
            user_id        BIGINT           NOT NULL,
            question       TEXT             NOT NULL,
            answered       BOOLEAN          NOT NULL,
            top_passage_id TEXT,
            elapsed_ms     DOUBLE PRECISION NOT NULL,
            asked_at       TIMESTAMPTZ      NOT NULL
        )""",
        "CREATE INDEX questions_by_guild_time ON questions (guild_id, asked_at)",
        """CREATE TABLE feedback (
            guild_id   BIGINT      NOT NULL,
            passage_id TEXT        NOT NULL,
            user_id    BIGINT      NOT NULL,
            vote       SMALLINT    NOT NULL CHECK (vote IN (-1, 1)),
            voted_at   TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (guild_id, passage_id, user_id)
        )""",
        """CREATE TABLE blocks (
            guild_id   BIGINT      NOT NULL,
            user_id    BIGINT      NOT NULL,
            blocked_by BIGINT      NOT NULL,
            reason     TEXT        NOT NULL,
            blocked_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )""",
        """CREATE TABLE audit_log (
            id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            guild_id BIGINT      NOT NULL,
            actor_id BIGINT      NOT NULL,
            action   TEXT        NOT NULL,
            detail   TEXT        NOT NULL,
            at       TIMESTAMPTZ NOT NULL
        )""",
        "CREATE INDEX audit_by_guild ON audit_log (guild_id, id)",
    ),
    # 2: SQLite's step 2 (what /admin insights reads, the follow-up window).
    (
        "ALTER TABLE questions ADD COLUMN confidence DOUBLE PRECISION",
        "ALTER TABLE questions ADD COLUMN section TEXT",
        "ALTER TABLE questions ADD COLUMN follow_up_of BIGINT",
        """ALTER TABLE guild_settings ADD COLUMN follow_up_minutes INTEGER NOT NULL DEFAULT 60
            CHECK (follow_up_minutes BETWEEN 0 AND 1440)""",
        "CREATE INDEX feedback_by_guild_time ON feedback (guild_id, voted_at)",
    ),
)

# A connection that is gone: the server restarted, stopped, or the network dropped. OSError covers
# refused connections and DNS failures; TimeoutError a server that stopped answering.
_CONNECTION_LOST: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown, "cannot connect now"
    asyncpg.TooManyConnectionsError,
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already, not local time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def server_label(url: str) -> str:
    """``host:port/database`` of a ``postgresql://`` URL, for messages: never the user or password."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or ["localhost"])[0]
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432  # a malformed port: asyncpg refuses it; the label only needs to be readable
    database = parts.path.lstrip("/") or (query.get("dbname") or [parts.username or "postgres"])[0]
    return f"{host}:{port}/{urllib.parse.unquote(database)}"


def _user(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).username or "") or "the bot's user"


def _lost(error: BaseException) -> bool:
    if isinstance(error, asyncpg.InterfaceError):
        # asyncpg's own "connection is closed"; other InterfaceErrors are misuse (a bug of ours).
        return "closed" in str(error)
    return isinstance(error, _CONNECTION_LOST)


# Mostly a password with @ / : # in it, split in the wrong places: the label and the driver's
# words would quote pieces of it, so this line shows neither (and needs no scrubbing).
BAD_URL = (
    "ARTICLEBOT_DATABASE is not a usable PostgreSQL URL: write it as "
    "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, with any @ : / # ? % in the user or "
    "password percent-encoded (@ as %40, : as %3A, / as %2F, # as %23, ? as %3F, % as %25)"
)


def _open_problem(label: str, user: str, error: BaseException) -> str | None:
    """The operator's line for an error while opening, or None for a bug of ours."""
    if isinstance(error, asyncpg.InvalidPasswordError):
        return (
            f"PostgreSQL at {label} refused the password for user {user}: "
            "fix the password in ARTICLEBOT_DATABASE"
        )
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return (
            f"PostgreSQL at {label} does not let user {user} in ({error}): "
            "check the user in ARTICLEBOT_DATABASE and the server's pg_hba.conf"
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        database = label.rsplit("/", 1)[1]
        return (
            f"PostgreSQL at {label}: there is no database {database}; create it "
            f"(createdb {database}) or fix ARTICLEBOT_DATABASE"
        )
    if isinstance(error, asyncpg.InsufficientPrivilegeError):
        return (
            f"PostgreSQL at {label}: user {user} may not create or change the bot's tables ({error}); "
            "give it ownership of the database, or of its public schema"
        )
    if isinstance(error, asyncpg.ReadOnlySQLTransactionError):
        return (
            f"PostgreSQL database {label} is read-only (a standby?): point ARTICLEBOT_DATABASE "
            "at the primary server"
        )
    if isinstance(error, asyncpg.DiskFullError):
        return f"the disk of PostgreSQL at {label} is full: free some space, then start the bot again"
    if isinstance(error, asyncpg.TooManyConnectionsError):
        return (
            f"PostgreSQL at {label} has no connection left: lower ARTICLEBOT_DATABASE_POOL, "
            "or raise the server's max_connections"
        )
    if isinstance(error, asyncpg.CannotConnectNowError):
        return f"PostgreSQL at {label} is starting up or shutting down: start the bot again in a moment"
    if isinstance(error, ConnectionRefusedError):
        return f"cannot reach PostgreSQL at {label}: connection refused; is the server running on that port?"
    if isinstance(error, TimeoutError):
        return f"cannot reach PostgreSQL at {label}: no answer in {CONNECT_TIMEOUT_S:g} s; check the host"
    if isinstance(error, OSError):
        reason = error.strerror or str(error) or type(error).__name__
        return (
            f"cannot reach PostgreSQL at {label} ({reason}): check the host and port in ARTICLEBOT_DATABASE"
        )
    if _lost(error):
        return f"PostgreSQL at {label} closed the connection while the bot was opening it: start it again"
    if isinstance(error, asyncpg.exceptions.ClientConfigurationError):  # an option's value, say
        return f"ARTICLEBOT_DATABASE for {label} is not a usable PostgreSQL URL: {str(error).splitlines()[0]}"
    if isinstance(error, ValueError):
        return BAD_URL
    return None


def _run_time_problem(error: BaseException, *, committing: bool) -> rules.Failure | None:
    """What failed in a transaction (the sentence is the rules', as SQLite's), or None for a bug."""
    if _lost(error):
        return "lost_while_saving" if committing else "unreachable"  # a COMMIT sent may have landed
    if isinstance(error, asyncpg.DiskFullError):
        return "disk_full"
    if isinstance(error, asyncpg.ReadOnlySQLTransactionError):
        return "read_only"
    if isinstance(error, asyncpg.LockNotAvailableError | asyncpg.TransactionRollbackError):
        return "locked"
    if isinstance(error, asyncpg.InsufficientPrivilegeError):
        return "no_permission"
    return None


def _settings(row: asyncpg.Record | None) -> GuildSettings:
    if row is None:
        return GuildSettings()
    return GuildSettings(
        passages_per_answer=row["passages_per_answer"],
        default_visibility=cast(Visibility, row["default_visibility"]),
        mention_replies=row["mention_replies"],
        cooldown_seconds=row["cooldown_seconds"],
        strictness=float(row["strictness"]),
        moderator_role_id=row["moderator_role_id"],
        follow_up_minutes=row["follow_up_minutes"],
    )


def _document(row: asyncpg.Record) -> StoredDocument:
    return StoredDocument(
        guild_id=row["guild_id"],
        name=row["name"],
        title=row["title"],
        text=row["text"],
        added_by=row["added_by"],
        added_at=_utc(row["added_at"]),
        size_bytes=row["size_bytes"],
    )


def _question(row: asyncpg.Record) -> LoggedQuestion:
    return LoggedQuestion(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        question=row["question"],
        answered=row["answered"],
        top_passage_id=row["top_passage_id"],
        elapsed_ms=float(row["elapsed_ms"]),
        asked_at=_utc(row["asked_at"]),
        confidence=None if row["confidence"] is None else float(row["confidence"]),
        section=row["section"],
        follow_up_of=row["follow_up_of"],
    )


async def _read_settings(conn: asyncpg.Connection, guild_id: int) -> GuildSettings:
    return _settings(await conn.fetchrow("SELECT * FROM guild_settings WHERE guild_id = $1", guild_id))


async def _read_channel_rules(conn: asyncpg.Connection, guild_id: int) -> ChannelRules:
    found = ChannelRules()
    for row in await conn.fetch("SELECT channel_id, rule FROM channel_rules WHERE guild_id = $1", guild_id):
        (found.allowed if row["rule"] == "allow" else found.denied).add(row["channel_id"])
    return found


async def _document_usage(conn: asyncpg.Connection, guild_id: int, limits: DocumentLimits) -> DocumentUsage:
    row = await conn.fetchrow(
        "SELECT COUNT(*) AS n, COALESCE(SUM(size_bytes), 0) AS total FROM documents WHERE guild_id = $1",
        guild_id,
    )
    return DocumentUsage(count=int(row["n"]), total_bytes=int(row["total"]), limits=limits)


class PostgresStorage(Storage):
    """Everything the bot remembers, in one PostgreSQL database shared by any number of processes."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Callable[[], dt.datetime] = _utcnow,
        document_limits: DocumentLimits | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError("the PostgreSQL pool needs at least one connection")
        self._url = url
        self.label = server_label(url)  # host:port/database, for messages and logs
        self.pool_size = pool_size
        self._clock = clock  # injectable so tests can place rows in time
        self.document_limits = document_limits or DocumentLimits()
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        # Coordination with other processes: one connection of its own (claims and LISTEN).
        self._origin = uuid.uuid4().hex  # this storage's notifications, so it ignores its own
        self._coordination: asyncpg.Connection | None = None
        self._claim: tuple[tuple[int, ...], int] | None = None
        self._listener: ChangeListener | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, check and migrate; ``StorageError`` (one line: the server, what to do) if unusable.

        In order: the pool's first connection logs in (server, user, password, database), the
        schema is not newer than this code, migrations run, and a committed write proves the
        database takes writes (not a read-only standby). All before the bot logs in to Discord.
        """
        async with self._opening:
            if self._pool is not None:
                return
            pool: asyncpg.Pool | None = None
            try:
                pool = await asyncpg.create_pool(
                    self._url,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=CONNECT_TIMEOUT_S,
                    command_timeout=COMMAND_TIMEOUT_S,
                    server_settings={"application_name": "articlebot", "lock_timeout": str(LOCK_TIMEOUT_MS)},
                )
                async with pool.acquire() as conn:
                    await self._migrate(conn)
                    async with conn.transaction():  # the write probe, committed
                        await conn.execute("UPDATE schema_version SET version = version")
            except BaseException as error:
                if pool is not None:
                    pool.terminate()
                if isinstance(error, StorageError):
                    raise
                if problem := _open_problem(self.label, _user(self._url), error):
                    # Our sentences never hold the password; a driver's message quoted in one might.
                    if problem != BAD_URL and (password := urllib.parse.urlsplit(self._url).password):
                        problem = problem.replace(password, "…")
                    raise StorageError(problem) from None
                raise
            self._pool = pool
            self._closing = False
            log.info("PostgreSQL %s open, pool of up to %d connections", self.label, self.pool_size)

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(BaseException):
                await self._reconnecting
            self._reconnecting = None
        coordination, self._coordination = self._coordination, None
        if coordination is not None:
            with contextlib.suppress(Exception):
                await coordination.close()  # the shard claims go with it
        self._claim, self._listener = None, None
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            # Waits for transactions in flight to finish, as SQLite's close does.
            await asyncio.wait_for(pool.close(), COMMAND_TIMEOUT_S)
        except Exception as error:
            if not _lost(error):
                raise
            pool.terminate()  # the server is gone or stuck: nothing left to finish

    # -- several processes ----------------------------------------------------------------------
    async def claim_shards(self, shard_ids: Sequence[int], shard_count: int) -> None:
        conn = await self._coordinate()
        await self._take_shards(conn, tuple(shard_ids), shard_count)
        self._claim = (tuple(shard_ids), shard_count)

    async def shard_claims(self) -> ShardClaims:
        """Read from the claims' own locks: a process's claims are there exactly while it lives."""
        conn = await self._coordinate()
        rows = await conn.fetch(
            """SELECT DISTINCT classid::text::bigint AS space, objid::text::bigint AS key FROM pg_locks
               WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND """
            + THIS_DATABASE
            + """ AND classid IN ($1::bigint::oid, $2::bigint::oid)""",
            SHARD_LOCK_NAMESPACE,
            SHARD_COUNT_NAMESPACE,
        )
        return ShardClaims(
            shard_ids=tuple(sorted(r["key"] for r in rows if r["space"] == SHARD_LOCK_NAMESPACE)),
            counts=tuple(sorted(r["key"] for r in rows if r["space"] == SHARD_COUNT_NAMESPACE)),
        )

    async def watch(self, listener: ChangeListener) -> None:
        conn = await self._coordinate()
        self._listener = listener
        await conn.add_listener(NOTIFY_CHANNEL, self._on_notification)

    async def announce(self, change: Change) -> None:
        payload = self._payload(change)
        await self._run(
            lambda conn: conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload), write=True
        )

    def _payload(self, change: Change) -> str:
        return json.dumps({"origin": self._origin, "kind": change.kind, "guild_id": change.guild_id})

    async def _notify(self, conn: asyncpg.Connection, change: Change) -> None:
        """NOTIFY inside the caller's transaction: PostgreSQL delivers it when (and if) that commits."""
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, self._payload(change))

    async def _coordinate(self) -> asyncpg.Connection:
        # Needs no pool: shards are claimed before open(), so a refused process says one line only.
        if self._coordination is None or self._coordination.is_closed():
            try:
                conn = await asyncpg.connect(
                    self._url,
                    timeout=CONNECT_TIMEOUT_S,
                    command_timeout=COMMAND_TIMEOUT_S,
                    server_settings={"application_name": "articlebot coordination"},
                )
            except Exception as error:
                if problem := _open_problem(self.label, _user(self._url), error):
                    raise StorageError(problem) from None
                raise
            conn.add_termination_listener(self._on_coordination_lost)
            self._coordination = conn
        return self._coordination

    async def _take_shards(self, conn: asyncpg.Connection, shard_ids: tuple[int, ...], count: int) -> None:
        """Each shard's exclusive lock, all or none; the count's shared lock; refused in one line."""
        taken: list[int] = []

        async def give_back() -> None:
            for shard_id in taken:
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", SHARD_LOCK_NAMESPACE, shard_id)
            await conn.execute("SELECT pg_advisory_unlock_shared($1, $2)", SHARD_COUNT_NAMESPACE, count)

        await conn.execute("SELECT pg_advisory_lock_shared($1, $2)", SHARD_COUNT_NAMESPACE, count)
        other_count = await conn.fetchval(
            """SELECT objid::text::bigint FROM pg_locks
               WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND """
            + THIS_DATABASE
            + """ AND classid = $1::bigint::oid AND objid <> $2::bigint::oid LIMIT 1""",
            SHARD_COUNT_NAMESPACE,
            count,
        )
        if other_count is not None:
            await give_back()
            raise StorageError(
                f"another articlebot process on PostgreSQL {self.label} runs with "
                f"ARTICLEBOT_SHARD_COUNT={other_count}, this one with {count}: every process of a bot "
                "must use the same shard count"
            )
        for shard_id in shard_ids:
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", SHARD_LOCK_NAMESPACE, shard_id):
                taken.append(shard_id)
                continue
            holder = await conn.fetchrow(
                """SELECT a.pid, COALESCE(host(a.client_addr), 'a local socket') AS client
                   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted AND l."""
                + THIS_DATABASE
                + """ AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid""",
                SHARD_LOCK_NAMESPACE,
                shard_id,
            )
            await give_back()
            who = f" (PostgreSQL session {holder['pid']} from {holder['client']})" if holder else ""
            raise StorageError(
                f"shard {shard_id} of {count} is already served by another articlebot process on "
                f"PostgreSQL {self.label}{who}: stop that process, or give this one other "
                "ARTICLEBOT_SHARD_IDS"
            )

    def _on_notification(self, conn: object, pid: int, channel: str, payload: str) -> None:
        try:
            told = json.loads(payload)
            change = Change(kind=told["kind"], guild_id=told.get("guild_id"))
        except (ValueError, KeyError, TypeError):
            log.warning("PostgreSQL %s: ignored a notification it cannot read: %.80r", self.label, payload)
            return
        if told.get("origin") != self._origin:
            self._tell(change)

    def _tell(self, change: Change) -> None:
        if self._listener is None:
            return
        task = asyncio.get_running_loop().create_task(self._listener(change))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_coordination_lost(self, conn: object) -> None:
        if self._closing or conn is not self._coordination:
            return
        self._coordination = None
        log.warning("PostgreSQL %s: the coordination connection was lost; reconnecting", self.label)
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Connect again (the server restarted), retake the claims, LISTEN again, then resync."""
        attempt = 0
        while not self._closing:
            try:
                conn = await self._coordinate()
                if self._claim is not None:
                    try:
                        await self._take_shards(conn, *self._claim)
                    except StorageError as refused:
                        log.error("PostgreSQL %s: shard claims lost: %s", self.label, refused)
                        self._tell(Change("shards_lost"))
                        return
                if self._listener is not None:
                    await conn.add_listener(NOTIFY_CHANNEL, self._on_notification)
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                StorageError,
                TimeoutError,
            ) as error:
                delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
                attempt += 1
                log.debug(
                    "PostgreSQL %s: coordination reconnect failed (%s); again in %s s",
                    self.label,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            log.info("PostgreSQL %s: coordination connection back; resyncing", self.label)
            self._tell(Change("resync"))
            return

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        known = len(MIGRATIONS)
        version = await self._schema_version(conn)
        if version > known:
            raise StorageError(
                f"database {self.label} has schema version {version}, but this articlebot only knows "
                f"versions up to {known}: upgrade articlebot or use a different database"
            )
        for target in range(version + 1, known + 1):
            # DDL is transactional in PostgreSQL: a failing step leaves the previous version intact.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                current = await conn.fetchval("SELECT version FROM schema_version")
                if current >= target:
                    continue  # another process ran this step while we waited for the lock
                for statement in MIGRATIONS[target - 1]:
                    await conn.execute(statement)
                await conn.execute("UPDATE schema_version SET version = $1", target)
            log.info("migrated PostgreSQL %s to schema version %d", self.label, target)

    @staticmethod
    async def _schema_version(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await conn.fetchval("SELECT version FROM schema_version")
            if version is None:
                await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                return 0
            return int(version)

    async def _run(
        self,
        body: Callable[[asyncpg.Connection], Awaitable[T]],
        *,
        write: bool = False,
        guild_id: int | None = None,
    ) -> T:
        """Run ``body`` in one transaction and commit it before returning.

        ``guild_id`` (moderators' writes): hold that server's advisory lock for the transaction.
        A connection found dead before COMMIT was sent is replaced and ``body`` run once more.
        """
        if self._pool is None:
            raise RuntimeError("storage is not open")
        pool = self._pool
        for attempt in (1, 2):
            committing = False
            try:
                async with pool.acquire() as conn:
                    # Reads see one snapshot (REPEATABLE READ); writes serialise per server through
                    # the advisory lock and see everything committed before it was granted.
                    tx = conn.transaction(isolation="read_committed" if write else "repeatable_read")
                    await tx.start()
                    try:
                        if guild_id is not None:
                            await conn.execute(
                                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                                GUILD_LOCK_NAMESPACE,
                                str(guild_id),
                            )
                        result = await body(conn)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            await tx.rollback()
                        raise
                    committing = True
                    await tx.commit()
                    return result
            except Exception as error:
                if _lost(error) and not committing and attempt == 1:
                    # The server went away (a restart): every pooled connection is dead with it.
                    log.warning("PostgreSQL %s: connection lost (%s); reconnecting", self.label, error)
                    await pool.expire_connections()
                    continue
                if isinstance(error, asyncpg.CharacterNotInRepertoireError):
                    raise ValueError("the text holds a NUL character, which PostgreSQL refuses") from None
                problem = _run_time_problem(error, committing=committing)
                if problem is None:
                    raise  # an SQL or constraint error is a bug of ours, not the server's
                log.error("PostgreSQL %s: %s (%s)", self.label, error, type(error).__name__)
                raise StorageError(rules.failure_sentence(problem, write=write)) from error
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _write_audit(
        self, conn: asyncpg.Connection, guild_id: int, actor_id: int, line: rules.AuditLine
    ) -> None:
        await conn.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, detail, at) VALUES ($1, $2, $3, $4, $5)",
            guild_id,
            actor_id,
            line.action,
            line.detail,
            _utc(self._clock()),
        )

    # -- settings -------------------------------------------------------------------------------
    async def get_settings(self, guild_id: int) -> GuildSettings:
        return await self._run(lambda conn: _read_settings(conn, guild_id))

    async def admission(self, guild_id: int, user_id: int) -> Admission:
        async def body(conn: asyncpg.Connection) -> Admission:
            blocked = await conn.fetchval(
                "SELECT 1 FROM blocks WHERE guild_id = $1 AND user_id = $2", guild_id, user_id
            )
            return Admission(
                await _read_settings(conn, guild_id),
                blocked is not None,
                await _read_channel_rules(conn, guild_id),
            )

        return await self._run(body)

    async def update_settings(self, guild_id: int, actor_id: int, **changes: object) -> GuildSettings:
        clean = rules.validate_settings(changes)

        async def body(conn: asyncpg.Connection) -> GuildSettings:
            old = await _read_settings(conn, guild_id)
            new, audit = rules.settings_change(old, clean)
            if not audit:
                return old  # nothing to write, nothing to audit
            await conn.execute(
                """INSERT INTO guild_settings (guild_id, passages_per_answer, default_visibility,
                       mention_replies, cooldown_seconds, strictness, moderator_role_id,
                       follow_up_minutes)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (guild_id) DO UPDATE SET
                       passages_per_answer = excluded.passages_per_answer,
                       default_visibility = excluded.default_visibility,
                       mention_replies = excluded.mention_replies,
                       cooldown_seconds = excluded.cooldown_seconds,
                       strictness = excluded.strictness,
                       moderator_role_id = excluded.moderator_role_id,
                       follow_up_minutes = excluded.follow_up_minutes""",
                guild_id,
                new.passages_per_answer,
                new.default_visibility,
                new.mention_replies,
                new.cooldown_seconds,
                new.strictness,
                new.moderator_role_id,
                new.follow_up_minutes,
            )
            for line in audit:
                await self._write_audit(conn, guild_id, actor_id, line)
            return new

        return await self._run(body, write=True, guild_id=guild_id)

    # -- channels -------------------------------------------------------------------------------
    async def get_channel_rules(self, guild_id: int) -> ChannelRules:
        return await self._run(lambda conn: _read_channel_rules(conn, guild_id))

    async def set_channel_rule(
        self, guild_id: int, channel_id: int, rule: Literal["allow", "deny", "clear"], actor_id: int
    ) -> ChannelRules:
        rule = rules.validate_channel_rule(rule)

        async def body(conn: asyncpg.Connection) -> ChannelRules:
            found = await conn.fetchval(
                "SELECT rule FROM channel_rules WHERE guild_id = $1 AND channel_id = $2", guild_id, channel_id
            )
            old = cast(rules.ChannelRule, found) if found else "clear"
            if audit := rules.channel_rule_change(channel_id, old, rule):
                if rule == "clear":
                    await conn.execute(
                        "DELETE FROM channel_rules WHERE guild_id = $1 AND channel_id = $2",
                        guild_id,
                        channel_id,
                    )
                else:
                    await conn.execute(
                        """INSERT INTO channel_rules (guild_id, channel_id, rule) VALUES ($1, $2, $3)
                           ON CONFLICT (guild_id, channel_id) DO UPDATE SET rule = excluded.rule""",
                        guild_id,
                        channel_id,
                        rule,
                    )
                await self._write_audit(conn, guild_id, actor_id, audit)
            return await _read_channel_rules(conn, guild_id)

        return await self._run(body, write=True, guild_id=guild_id)

    # -- documents ------------------------------------------------------------------------------
    async def add_document(
        self, guild_id: int, name: str, title: str, text: str, actor_id: int
    ) -> StoredDocument:
        rules.validate_document_name(name)
        doc = StoredDocument(
            guild_id=guild_id,
            name=name,
            title=title,
            text=text,
            added_by=actor_id,
            added_at=_utc(self._clock()),
            size_bytes=len(text.encode("utf-8")),
        )
        rules.check_document_size(name, doc.size_bytes, self.document_limits)

        async def body(conn: asyncpg.Connection) -> None:
            # Under the server's advisory lock (taken by _run before this): no other add, from any
            # process, lands between counting and inserting.
            replaced = await conn.fetchval(
                "SELECT size_bytes FROM documents WHERE guild_id = $1 AND name = $2", guild_id, name
            )
            usage = await _document_usage(conn, guild_id, self.document_limits)
            audit = rules.document_add(name, doc.size_bytes, usage, replaced)  # refuses past the caps
            await conn.execute(
                """INSERT INTO documents (guild_id, name, title, text, added_by, added_at, size_bytes)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (guild_id, name) DO UPDATE SET
                       title = excluded.title, text = excluded.text, added_by = excluded.added_by,
                       added_at = excluded.added_at, size_bytes = excluded.size_bytes""",
                guild_id,
                name,
                title,
                text,
                actor_id,
                doc.added_at,
                doc.size_bytes,
            )
            await self._write_audit(conn, guild_id, actor_id, audit)
            await self._notify(conn, Change("documents", guild_id))

        await self._run(body, write=True, guild_id=guild_id)
        return doc

    async def list_documents(self, guild_id: int) -> list[StoredDocument]:
        # COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
        rows = await self._run(
            lambda conn: conn.fetch(
                'SELECT * FROM documents WHERE guild_id = $1 ORDER BY name COLLATE "C"', guild_id
            )
        )
        return [_document(row) for row in rows]

    async def document_usage(self, guild_id: int) -> DocumentUsage:
        return await self._run(lambda conn: _document_usage(conn, guild_id, self.document_limits))

    async def remove_document(self, guild_id: int, name: str, actor_id: int) -> bool:
        async def body(conn: asyncpg.Connection) -> bool:
            removed = await conn.fetchval(
                "DELETE FROM documents WHERE guild_id = $1 AND name = $2 RETURNING name", guild_id, name
            )
            if removed is None:
                return False
            await self._write_audit(conn, guild_id, actor_id, rules.document_removed(name))
            await self._notify(conn, Change("documents", guild_id))
            return True

        return await self._run(body, write=True, guild_id=guild_id)

    # -- question log ---------------------------------------------------------------------------
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
        asked_at = _utc(self._clock())
        question_id = await self._run(
            lambda conn: conn.fetchval(
                """INSERT INTO questions (guild_id, channel_id, user_id, question, answered,
                       top_passage_id, elapsed_ms, asked_at, confidence, section, follow_up_of)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
                guild_id,
                channel_id,
                user_id,
                question,
                answered,
                top_passage_id,
                float(elapsed_ms),
                asked_at,
                None if confidence is None else float(confidence),
                section,
                follow_up_of,
            ),
            write=True,
        )
        return int(question_id)

    async def get_question(self, guild_id: int, question_id: int) -> LoggedQuestion | None:
        row = await self._run(
            lambda conn: conn.fetchrow(
                "SELECT * FROM questions WHERE guild_id = $1 AND id = $2", guild_id, question_id
            )
        )
        return _question(row) if row else None

    async def question_stats(self, guild_id: int, since: dt.datetime | None = None) -> QuestionStats:
        where = "guild_id = $1"
        params: list[Any] = [guild_id]
        if since is not None:
            where += " AND asked_at >= $2"
            params.append(_utc(since))
        # percentile_cont(0.5): the middle value, or the mean of the middle two, as SQLite computes it.
        row = await self._run(
            lambda conn: conn.fetchrow(
                f"""SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE answered) AS ok,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY elapsed_ms) AS median
                    FROM questions WHERE {where}""",
                *params,
            )
        )
        total, answered = int(row["n"]), int(row["ok"])
        if total == 0:
            return QuestionStats()
        return QuestionStats(answered=answered, missed=total - answered, median_ms=float(row["median"]))

    async def questions_since(
        self, guild_id: int, since: dt.datetime, limit: int = INSIGHT_ROWS
    ) -> list[LoggedQuestion]:
        rows = await self._run(
            lambda conn: conn.fetch(
                """SELECT * FROM questions WHERE guild_id = $1 AND asked_at >= $2
                   ORDER BY asked_at, id LIMIT $3""",
                guild_id,
                _utc(since),
                max(limit, 0),
            )
        )
        return [_question(row) for row in rows]

    async def recent_misses(self, guild_id: int, limit: int = 10) -> list[LoggedQuestion]:
        rows = await self._run(
            lambda conn: conn.fetch(
                """SELECT * FROM questions WHERE guild_id = $1 AND NOT answered
                   ORDER BY asked_at DESC, id DESC LIMIT $2""",
                guild_id,
                max(limit, 0),
            )
        )
        return [_question(row) for row in rows]

    # -- feedback -------------------------------------------------------------------------------
    async def record_feedback(self, guild_id: int, passage_id: str, user_id: int, vote: int) -> None:
        rules.validate_vote(vote)
        voted_at = _utc(self._clock())
        await self._run(
            lambda conn: conn.execute(
                """INSERT INTO feedback (guild_id, passage_id, user_id, vote, voted_at)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (guild_id, passage_id, user_id) DO UPDATE SET
                       vote = excluded.vote, voted_at = excluded.voted_at""",
                guild_id,
                passage_id,
                user_id,
                vote,
                voted_at,
            ),
            write=True,
        )

    async def votes_since(self, guild_id: int, since: dt.datetime) -> list[Vote]:
        rows = await self._run(
            lambda conn: conn.fetch(
                """SELECT passage_id, vote, voted_at FROM feedback WHERE guild_id = $1 AND voted_at >= $2
                   ORDER BY voted_at, passage_id COLLATE "C" """,
                guild_id,
                _utc(since),
            )
        )
        return [Vote(row["passage_id"], int(row["vote"]), _utc(row["voted_at"])) for row in rows]

    async def feedback_summary(self, guild_id: int, limit: int = 20) -> list[FeedbackTally]:
        rows = await self._run(
            lambda conn: conn.fetch(
                """SELECT passage_id, COUNT(*) FILTER (WHERE vote = 1) AS up,
                          COUNT(*) FILTER (WHERE vote = -1) AS down
                   FROM feedback WHERE guild_id = $1 GROUP BY passage_id
                   ORDER BY COUNT(*) DESC, passage_id COLLATE "C" LIMIT $2""",
                guild_id,
                max(limit, 0),
            )
        )
        return [FeedbackTally(row["passage_id"], int(row["up"]), int(row["down"])) for row in rows]

    # -- blocks ---------------------------------------------------------------------------------
    async def block_user(self, guild_id: int, user_id: int, actor_id: int, reason: str = "") -> None:
        async def body(conn: asyncpg.Connection) -> None:
            # Blocking again replaces the reason, actor and time: the latest decision stands.
            await conn.execute(
                """INSERT INTO blocks (guild_id, user_id, blocked_by, reason, blocked_at)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (guild_id, user_id) DO UPDATE SET
                       blocked_by = excluded.blocked_by, reason = excluded.reason,
                       blocked_at = excluded.blocked_at""",
                guild_id,
                user_id,
                actor_id,
                reason,
                _utc(self._clock()),
            )
            await self._write_audit(conn, guild_id, actor_id, rules.blocked(user_id, reason))

        await self._run(body, write=True, guild_id=guild_id)

    async def unblock_user(self, guild_id: int, user_id: int, actor_id: int) -> bool:
        async def body(conn: asyncpg.Connection) -> bool:
            removed = await conn.fetchval(
                "DELETE FROM blocks WHERE guild_id = $1 AND user_id = $2 RETURNING user_id", guild_id, user_id
            )
            if removed is None:
                return False
            await self._write_audit(conn, guild_id, actor_id, rules.unblocked(user_id))
            return True

        return await self._run(body, write=True, guild_id=guild_id)

    async def is_blocked(self, guild_id: int, user_id: int) -> bool:
        found = await self._run(
            lambda conn: conn.fetchval(
                "SELECT 1 FROM blocks WHERE guild_id = $1 AND user_id = $2", guild_id, user_id
            )
        )
        return found is not None

    async def list_blocks(self, guild_id: int) -> list[Block]:
        rows = await self._run(
            lambda conn: conn.fetch(
                "SELECT * FROM blocks WHERE guild_id = $1 ORDER BY blocked_at DESC, user_id", guild_id
            )
        )
        return [
            Block(row["guild_id"], row["user_id"], row["blocked_by"], row["reason"], _utc(row["blocked_at"]))
            for row in rows
        ]

    # -- audit ----------------------------------------------------------------------------------
    async def audit_log(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        rows = await self._run(
            lambda conn: conn.fetch(
                "SELECT * FROM audit_log WHERE guild_id = $1 ORDER BY id DESC LIMIT $2",
                guild_id,
                max(limit, 0),
            )
        )
        return [
            AuditEntry(
                row["id"], row["guild_id"], row["actor_id"], row["action"], row["detail"], _utc(row["at"])
            )
            for row in rows
        ]
