"""SQLite implementation of :class:`bot.storage.base.Storage`.

One aiosqlite connection per process, in autocommit mode so every transaction is an explicit
``BEGIN ... COMMIT`` we control. An ``asyncio.Lock`` around each transaction keeps coroutines from
interleaving statements inside one another's transactions on the shared connection.

``open()`` refuses a database the bot could not use, before the bot goes online: another
articlebot holding it, a file that is not SQLite, damaged pages, a newer schema, a read-only file
or folder, a full disk. After that, a sqlite3 error a moderator's action hits (disk full,
read-only, I/O) becomes a :class:`StorageError` whose text says what failed and what to do.

Times are stored as fixed-width UTC ISO-8601 strings, so text order is time order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal, cast

import aiosqlite

from . import rules
from .base import (
    INSIGHT_ROWS,
    Admission,
    AuditEntry,
    Block,
    ChannelRules,
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
    Vote,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
# After a checkpoint SQLite truncates the WAL back to this size; without a limit one big burst
# (a few 1 MB documents) leaves a WAL that large on disk for good.
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024
# Below this much free space, a failed write is explained as a full disk (on a full disk SQLite
# often reports the shared-memory file's I/O error rather than SQLITE_FULL).
NEARLY_FULL_BYTES = 1_000_000

# Schema migrations: step N (1-based) upgrades a database at ``user_version`` N-1 to N. Steps are
# append-only: never edit a released step, add a new one. Each step runs in its own transaction.
MIGRATIONS: Sequence[Sequence[str]] = (
    (
        """CREATE TABLE guild_settings (
            guild_id            INTEGER PRIMARY KEY,
            passages_per_answer INTEGER NOT NULL CHECK (passages_per_answer BETWEEN 1 AND 5),
            default_visibility  TEXT    NOT NULL CHECK (default_visibility IN ('public', 'private')),
            mention_replies     INTEGER NOT NULL CHECK (mention_replies IN (0, 1)),
            cooldown_seconds    INTEGER NOT NULL CHECK (cooldown_seconds BETWEEN 0 AND 3600),
            strictness          REAL    NOT NULL CHECK (strictness BETWEEN 0 AND 1),
            moderator_role_id   INTEGER
        )""",
        """CREATE TABLE channel_rules (
            guild_id   INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            rule       TEXT    NOT NULL CHECK (rule IN ('allow', 'deny')),
            PRIMARY KEY (guild_id, channel_id)
        )""",
        """CREATE TABLE documents (
            guild_id   INTEGER NOT NULL,
            name       TEXT    NOT NULL,
            title      TEXT    NOT NULL,
            text       TEXT    NOT NULL,
            added_by   INTEGER NOT NULL,
            added_at   TEXT    NOT NULL,
            size_bytes INTEGER NOT NULL,
            PRIMARY KEY (guild_id, name)
        )""",
        # AUTOINCREMENT: ids are baked into persistent buttons, so they must never be reused.
        """CREATE TABLE questions (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            guild_id       INTEGER NOT NULL,
            channel_id     INTEGER NOT NULL,
            user_id        INTEGER NOT NULL,
            question       TEXT    NOT NULL,
            answered       INTEGER NOT NULL CHECK (answered IN (0, 1)),
            top_passage_id TEXT,
            elapsed_ms     REAL    NOT NULL,
            asked_at       TEXT    NOT NULL
        )""",
        "CREATE INDEX questions_by_guild_time ON questions (guild_id, asked_at)",
        """CREATE TABLE feedback (
            guild_id   INTEGER NOT NULL,
            passage_id TEXT    NOT NULL,
            user_id    INTEGER NOT NULL,
            vote       INTEGER NOT NULL CHECK (vote IN (-1, 1)),
            voted_at   TEXT    NOT NULL,
            PRIMARY KEY (guild_id, passage_id, user_id)
        )""",
        """CREATE TABLE blocks (
            guild_id   INTEGER NOT NULL,
            user_id    INTEGER NOT NULL,
            blocked_by INTEGER NOT NULL,
            reason     TEXT    NOT NULL,
            blocked_at TEXT    NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )""",
        """CREATE TABLE audit_log (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            guild_id INTEGER NOT NULL,
            actor_id INTEGER NOT NULL,
            action   TEXT    NOT NULL,
            detail   TEXT    NOT NULL,
            at       TEXT    NOT NULL
        )""",
        "CREATE INDEX audit_by_guild ON audit_log (guild_id, id)",
    ),
    # 2: what /admin insights reads (the top passage's confidence and section, which question a
    # follow-up followed) and the follow-up window. Rows from before have NULLs: unknown, not zero.
    (
        "ALTER TABLE questions ADD COLUMN confidence REAL",
        "ALTER TABLE questions ADD COLUMN section TEXT",
        "ALTER TABLE questions ADD COLUMN follow_up_of INTEGER",
        """ALTER TABLE guild_settings ADD COLUMN follow_up_minutes INTEGER NOT NULL DEFAULT 60
            CHECK (follow_up_minutes BETWEEN 0 AND 1440)""",
        "CREATE INDEX feedback_by_guild_time ON feedback (guild_id, voted_at)",
    ),
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already, not local time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _to_db(moment: dt.datetime) -> str:
    return _utc(moment).isoformat(timespec="microseconds")  # fixed width, so text order is time order


def _from_db(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii").strip() or "x")
    return None


# -- errors -------------------------------------------------------------------------------------
def _primary_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF  # extended codes keep the primary in the low byte


def _disk_is_full(path: Path) -> bool:
    try:
        free = os.statvfs(path.parent)
    except OSError:
        return False
    return free.f_bavail * free.f_frsize < NEARLY_FULL_BYTES


def _open_problem(path: Path, error: sqlite3.Error) -> str | None:
    """The operator's line for an error while opening ``path``, or None for a bug of ours."""
    code = _primary_code(error)
    name = getattr(error, "sqlite_errorname", "?")
    if code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR) and _disk_is_full(path):
        return f"the disk holding database {path} is full: free some space, then start the bot again"
    if code == sqlite3.SQLITE_READONLY:
        return f"database {path} is read-only: give the bot's user write access to the file and its folder"
    if code == sqlite3.SQLITE_CANTOPEN:
        return f"cannot open database {path}: make sure its folder exists and is writable for the bot's user"
    if code == sqlite3.SQLITE_NOTADB:
        return (
            f"{path} is not an SQLite database: set ARTICLEBOT_DATABASE to the bot's database file, "
            "or move this file aside to start with an empty one"
        )
    if code == sqlite3.SQLITE_CORRUPT:
        return _damaged(path, str(error))
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            f"database {path} is locked by another program (an sqlite3 shell, a backup?): "
            "close it, then start the bot again"
        )
    if code == sqlite3.SQLITE_IOERR:
        return f"the disk holding database {path} reported an I/O error ({name}): check the disk"
    if code in (sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        return f"no permission to use database {path}: give the bot's user access to it"
    if code in (sqlite3.SQLITE_ERROR, sqlite3.SQLITE_MISUSE, sqlite3.SQLITE_CONSTRAINT, None):
        return None  # our own SQL (a broken migration): a bug, whose traceback is the useful part
    # Anything else while opening is about this file: one line, never a traceback.
    return f"cannot use database {path}: {error} ({name})"


def _damaged(path: Path, detail: str) -> str:
    return (
        f"database {path} is damaged ({detail.splitlines()[0][:120]}): restore it from a backup, "
        "or move it aside to start with an empty one"
    )


def _run_time_problem(path: Path, error: sqlite3.Error) -> rules.Failure | None:
    """What failed in a transaction (the sentence is the rules'), or None for a bug of ours."""
    code = _primary_code(error)
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_is_full(path)):
        return "disk_full"
    if code == sqlite3.SQLITE_READONLY:
        return "read_only"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return "locked"
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return "damaged"
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
        return "disk_error"  # a failed fsync can leave a commit's fate unknown: no promise
    return None


# -- row helpers ----------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _transaction(db: aiosqlite.Connection, begin: str) -> AsyncIterator[aiosqlite.Connection]:
    await db.execute(begin)
    try:
        yield db
        await db.execute("COMMIT")
    except BaseException:
        # SQLite may already have ended the transaction itself; the original error is what matters.
        with contextlib.suppress(sqlite3.Error):
            await db.execute("ROLLBACK")
        raise


async def _one(db: aiosqlite.Connection, sql: str, params: Iterable[object] = ()) -> aiosqlite.Row | None:
    async with db.execute(sql, tuple(params)) as cursor:
        return await cursor.fetchone()


async def _all(db: aiosqlite.Connection, sql: str, params: Iterable[object] = ()) -> list[aiosqlite.Row]:
    return list(await db.execute_fetchall(sql, tuple(params)))


async def _user_version(db: aiosqlite.Connection) -> int:
    row = await _one(db, "PRAGMA user_version")
    return int(row[0]) if row else 0


async def _read_settings(db: aiosqlite.Connection, guild_id: int) -> GuildSettings:
    row = await _one(db, "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
    if row is None:
        return GuildSettings()
    role = row["moderator_role_id"]
    return GuildSettings(
        passages_per_answer=int(row["passages_per_answer"]),
        default_visibility=cast(Visibility, row["default_visibility"]),
        mention_replies=bool(row["mention_replies"]),
        cooldown_seconds=int(row["cooldown_seconds"]),
        strictness=float(row["strictness"]),
        moderator_role_id=None if role is None else int(role),
        follow_up_minutes=int(row["follow_up_minutes"]),
    )


async def _read_channel_rules(db: aiosqlite.Connection, guild_id: int) -> ChannelRules:
    rules = ChannelRules()
    for row in await _all(db, "SELECT channel_id, rule FROM channel_rules WHERE guild_id = ?", (guild_id,)):
        target = rules.allowed if row["rule"] == "allow" else rules.denied
        target.add(int(row["channel_id"]))
    return rules


async def _document_usage(db: aiosqlite.Connection, guild_id: int, limits: DocumentLimits) -> DocumentUsage:
    row = await _one(
        db,
        "SELECT COUNT(*) AS n, COALESCE(SUM(size_bytes), 0) AS total FROM documents WHERE guild_id = ?",
        (guild_id,),
    )
    count, total = (int(row["n"]), int(row["total"])) if row else (0, 0)
    return DocumentUsage(count=count, total_bytes=total, limits=limits)


def _document(row: aiosqlite.Row) -> StoredDocument:
    return StoredDocument(
        guild_id=int(row["guild_id"]),
        name=str(row["name"]),
        title=str(row["title"]),
        text=str(row["text"]),
        added_by=int(row["added_by"]),
        added_at=_from_db(row["added_at"]),
        size_bytes=int(row["size_bytes"]),
    )


def _question(row: aiosqlite.Row) -> LoggedQuestion:
    top = row["top_passage_id"]
    return LoggedQuestion(
        id=int(row["id"]),
        guild_id=int(row["guild_id"]),
        channel_id=int(row["channel_id"]),
        user_id=int(row["user_id"]),
        question=str(row["question"]),
        answered=bool(row["answered"]),
        top_passage_id=None if top is None else str(top),
        elapsed_ms=float(row["elapsed_ms"]),
        asked_at=_from_db(row["asked_at"]),
        confidence=None if row["confidence"] is None else float(row["confidence"]),
        section=None if row["section"] is None else str(row["section"]),
        follow_up_of=None if row["follow_up_of"] is None else int(row["follow_up_of"]),
    )


def _block(row: aiosqlite.Row) -> Block:
    return Block(
        guild_id=int(row["guild_id"]),
        user_id=int(row["user_id"]),
        blocked_by=int(row["blocked_by"]),
        reason=str(row["reason"]),
        at=_from_db(row["blocked_at"]),
    )


def _audit_entry(row: aiosqlite.Row) -> AuditEntry:
    return AuditEntry(
        id=int(row["id"]),
        guild_id=int(row["guild_id"]),
        actor_id=int(row["actor_id"]),
        action=str(row["action"]),
        detail=str(row["detail"]),
        at=_from_db(row["at"]),
    )


class SQLiteStorage(Storage):
    """Everything the bot remembers, in one SQLite file (WAL, synchronous=FULL)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
        document_limits: DocumentLimits | None = None,
    ) -> None:
        self._path = Path(path)
        self._clock = clock  # injectable so tests can place rows in time
        self.document_limits = document_limits or DocumentLimits()
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._instance_lock: int | None = None  # the open lock file's descriptor while open

    @property
    def path(self) -> Path:
        return self._path

    @property
    def lock_path(self) -> Path:
        return self._path.with_name(self._path.name + ".lock")

    # -- lifecycle ------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, check and migrate; ``StorageError`` (one line: the file, what to do) if unusable.

        In order: this process becomes the database's only user (the lock), SQLite reads it
        (not random bytes), ``quick_check`` finds no damaged page, the schema is not newer than
        this code, migrations run, and a committed write proves the file, its folder and its
        disk take writes. All before the bot logs in, so a bad database never goes online.
        """
        async with self._lock:
            if self._db is not None:
                return
            self._instance_lock = self._lock_instance()
            db: aiosqlite.Connection | None = None
            try:
                # isolation_level=None: no implicit transactions; we issue BEGIN/COMMIT ourselves.
                db = await aiosqlite.connect(self._path, isolation_level=None)
                db.row_factory = aiosqlite.Row
                await self._configure(db)
                await self._check(db)
                await self._migrate(db)
                await self._probe_write(db)
            except BaseException as error:
                if db is not None:
                    with contextlib.suppress(sqlite3.Error):
                        await db.close()
                self._unlock_instance()
                if isinstance(error, sqlite3.Error) and (problem := _open_problem(self._path, error)):
                    raise StorageError(problem) from None
                raise
            self._db = db

    async def close(self) -> None:
        # Under the lock, so closing waits for a running transaction instead of cutting it off.
        async with self._lock:
            db, self._db = self._db, None
            try:
                if db is not None:
                    await db.close()
            finally:
                self._unlock_instance()

    def _lock_instance(self) -> int:
        """Hold an exclusive ``flock`` on ``<db>.lock`` while open: one process per database.

        A lock file of our own rather than SQLite's locks: SQLite's exclusive locking mode would
        make a second process wait out the busy timeout and then fail like any locked database,
        and would lock out an operator's sqlite3 shell or backup too. ``flock`` answers at once,
        lives on a file SQLite never touches (its POSIX locks on the database are unaffected),
        and the kernel drops it when the process dies, even by SIGKILL: no stale lock to clean.
        """
        path = self.lock_path
        if self._path.is_dir():
            raise StorageError(f"database {self._path} is a folder: point it at a file (it need not exist)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise StorageError(
                    f"the disk holding database {self._path} is full: free some space, then start again"
                ) from None
            raise StorageError(
                f"cannot create {path.name} beside database {self._path} ({error.strerror}): "
                f"make the folder {path.parent} writable for the bot's user"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_pid(fd)
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(f"cannot lock {path} ({error.strerror}): check its filesystem") from None
            raise StorageError(
                f"database {self._path} is already in use by another articlebot"
                f"{f' (pid {holder})' if holder else ''}: stop that one first, or give this one "
                "its own ARTICLEBOT_DATABASE"
            ) from None
        with contextlib.suppress(OSError):  # the pid only helps the message; a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _unlock_instance(self) -> None:
        # The lock file stays: removing it would let a third process lock a new file while a
        # second still waits on the old one. Closing the descriptor releases the flock.
        fd, self._instance_lock = self._instance_lock, None
        if fd is not None:
            os.close(fd)

    @staticmethod
    async def _configure(db: aiosqlite.Connection) -> None:
        # busy_timeout first, so switching to WAL waits out another process's lock.
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        row = await _one(db, "PRAGMA journal_mode = WAL")
        if row is None or str(row[0]).lower() != "wal":
            # Some filesystems (network mounts) cannot do WAL; still correct, just less concurrent.
            log.warning("SQLite WAL mode unavailable for this database; using %s", row[0] if row else "?")
        await db.execute("PRAGMA synchronous = FULL")  # a commit survives power loss
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")

    async def _check(self, db: aiosqlite.Connection) -> None:
        # quick_check reads every page (O(size), no index cross-checks): about a second for a few
        # hundred MB, paid once per start, against a bot that fails on every question later.
        rows = await _all(db, "PRAGMA quick_check")
        problems = [str(row[0]) for row in rows if str(row[0]) != "ok"]
        if problems:
            raise StorageError(_damaged(self._path, problems[0]))
        known = len(MIGRATIONS)
        version = await _user_version(db)
        if version > known:
            raise StorageError(
                f"database {self._path} has schema version {version}, but this articlebot only knows "
                f"versions up to {known}: upgrade articlebot or use a different database file"
            )

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        known = len(MIGRATIONS)
        version = await _user_version(db)
        for target in range(version + 1, known + 1):
            # DDL is transactional in SQLite: a failing step leaves the previous version intact.
            async with _transaction(db, "BEGIN IMMEDIATE"):
                for statement in MIGRATIONS[target - 1]:
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {target}")
            log.info("migrated %s to schema version %d", self._path, target)

    @staticmethod
    async def _probe_write(db: aiosqlite.Connection) -> None:
        """Commit a real write (the header's version, rewritten unchanged): read-only or full fails here.

        A rolled-back write would prove nothing: in WAL mode it never reaches the disk.
        """
        version = await _user_version(db)
        async with _transaction(db, "BEGIN IMMEDIATE"):
            await db.execute(f"PRAGMA user_version = {version}")

    @contextlib.asynccontextmanager
    async def _tx(self, *, write: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction on the shared connection; commits before the caller continues.

        Writes take the write lock up front (IMMEDIATE) so they never fail mid-way upgrading a read
        lock; reads run in a plain transaction to get one consistent snapshot.
        """
        async with self._lock:
            if self._db is None:
                raise RuntimeError("storage is not open")
            try:
                async with _transaction(self._db, "BEGIN IMMEDIATE" if write else "BEGIN") as db:
                    yield db
            except sqlite3.Error as error:
                problem = _run_time_problem(self._path, error)
                if problem is None:
                    raise  # a constraint or SQL error is a bug of ours, not the disk's
                log.error("database %s: %s (%s)", self._path, error, getattr(error, "sqlite_errorname", "?"))
                raise StorageError(rules.failure_sentence(problem, write=write)) from error

    async def _write_audit(
        self, db: aiosqlite.Connection, guild_id: int, actor_id: int, line: rules.AuditLine
    ) -> None:
        await db.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, detail, at) VALUES (?, ?, ?, ?, ?)",
            (guild_id, actor_id, line.action, line.detail, _to_db(self._clock())),
        )

    # -- settings -------------------------------------------------------------------------------
    async def get_settings(self, guild_id: int) -> GuildSettings:
        async with self._tx() as db:
            return await _read_settings(db, guild_id)

    async def admission(self, guild_id: int, user_id: int) -> Admission:
        async with self._tx() as db:
            blocked = await _one(
                db, "SELECT 1 FROM blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            return Admission(
                await _read_settings(db, guild_id),
                blocked is not None,
                await _read_channel_rules(db, guild_id),
            )

    async def update_settings(self, guild_id: int, actor_id: int, **changes: object) -> GuildSettings:
        clean = rules.validate_settings(changes)
        async with self._tx(write=True) as db:
            old = await _read_settings(db, guild_id)
            new, audit = rules.settings_change(old, clean)
            if not audit:
                return old  # nothing to write, nothing to audit
            await db.execute(
                """INSERT INTO guild_settings (guild_id, passages_per_answer, default_visibility,
                       mention_replies, cooldown_seconds, strictness, moderator_role_id,
                       follow_up_minutes)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (guild_id) DO UPDATE SET
                       passages_per_answer = excluded.passages_per_answer,
                       default_visibility = excluded.default_visibility,
                       mention_replies = excluded.mention_replies,
                       cooldown_seconds = excluded.cooldown_seconds,
                       strictness = excluded.strictness,
                       moderator_role_id = excluded.moderator_role_id,
                       follow_up_minutes = excluded.follow_up_minutes""",
                (
                    guild_id,
                    new.passages_per_answer,
                    new.default_visibility,
                    int(new.mention_replies),
                    new.cooldown_seconds,
                    new.strictness,
                    new.moderator_role_id,
                    new.follow_up_minutes,
                ),
            )
            for line in audit:
                await self._write_audit(db, guild_id, actor_id, line)
            return new

    # -- channels -------------------------------------------------------------------------------
    async def get_channel_rules(self, guild_id: int) -> ChannelRules:
        async with self._tx() as db:
            return await _read_channel_rules(db, guild_id)

    async def set_channel_rule(
        self, guild_id: int, channel_id: int, rule: Literal["allow", "deny", "clear"], actor_id: int
    ) -> ChannelRules:
        rule = rules.validate_channel_rule(rule)
        async with self._tx(write=True) as db:
            row = await _one(
                db,
                "SELECT rule FROM channel_rules WHERE guild_id = ? AND channel_id = ?",
                (guild_id, channel_id),
            )
            old = cast(rules.ChannelRule, str(row["rule"])) if row else "clear"
            if audit := rules.channel_rule_change(channel_id, old, rule):
                if rule == "clear":
                    await db.execute(
                        "DELETE FROM channel_rules WHERE guild_id = ? AND channel_id = ?",
                        (guild_id, channel_id),
                    )
                else:
                    await db.execute(
                        """INSERT INTO channel_rules (guild_id, channel_id, rule) VALUES (?, ?, ?)
                           ON CONFLICT (guild_id, channel_id) DO UPDATE SET rule = excluded.rule""",
                        (guild_id, channel_id, rule),
                    )
                await self._write_audit(db, guild_id, actor_id, audit)
            return await _read_channel_rules(db, guild_id)

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
        async with self._tx(write=True) as db:
            # The check is inside the write transaction (IMMEDIATE: the write lock is held), so no
            # other add can land between counting and inserting.
            existing = await _one(
                db, "SELECT size_bytes FROM documents WHERE guild_id = ? AND name = ?", (guild_id, name)
            )
            usage = await _document_usage(db, guild_id, self.document_limits)
            replaced = int(existing["size_bytes"]) if existing else None
            audit = rules.document_add(name, doc.size_bytes, usage, replaced)  # refuses past the caps
            await db.execute(
                """INSERT INTO documents (guild_id, name, title, text, added_by, added_at, size_bytes)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (guild_id, name) DO UPDATE SET
                       title = excluded.title, text = excluded.text, added_by = excluded.added_by,
                       added_at = excluded.added_at, size_bytes = excluded.size_bytes""",
                (guild_id, name, title, text, actor_id, _to_db(doc.added_at), doc.size_bytes),
            )
            await self._write_audit(db, guild_id, actor_id, audit)
        return doc

    async def list_documents(self, guild_id: int) -> list[StoredDocument]:
        async with self._tx() as db:
            rows = await _all(db, "SELECT * FROM documents WHERE guild_id = ? ORDER BY name", (guild_id,))
        return [_document(row) for row in rows]

    async def document_usage(self, guild_id: int) -> DocumentUsage:
        async with self._tx() as db:
            return await _document_usage(db, guild_id, self.document_limits)

    async def remove_document(self, guild_id: int, name: str, actor_id: int) -> bool:
        async with self._tx(write=True) as db:
            cursor = await db.execute(
                "DELETE FROM documents WHERE guild_id = ? AND name = ?", (guild_id, name)
            )
            if cursor.rowcount == 0:
                return False
            await self._write_audit(db, guild_id, actor_id, rules.document_removed(name))
        return True

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
        async with self._tx(write=True) as db:
            cursor = await db.execute(
                """INSERT INTO questions (guild_id, channel_id, user_id, question, answered,
                       top_passage_id, elapsed_ms, asked_at, confidence, section, follow_up_of)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    guild_id,
                    channel_id,
                    user_id,
                    question,
                    int(answered),
                    top_passage_id,
                    float(elapsed_ms),
                    _to_db(self._clock()),
                    None if confidence is None else float(confidence),
                    section,
                    follow_up_of,
                ),
            )
            question_id = cursor.lastrowid
        assert question_id is not None  # always set after a successful INSERT
        return question_id

    async def get_question(self, guild_id: int, question_id: int) -> LoggedQuestion | None:
        async with self._tx() as db:
            row = await _one(
                db, "SELECT * FROM questions WHERE guild_id = ? AND id = ?", (guild_id, question_id)
            )
        return _question(row) if row else None

    async def question_stats(self, guild_id: int, since: dt.datetime | None = None) -> QuestionStats:
        where = "guild_id = ?"
        params: list[object] = [guild_id]
        if since is not None:
            where += " AND asked_at >= ?"
            params.append(_to_db(since))
        async with self._tx() as db:
            row = await _one(
                db,
                f"SELECT COUNT(*) AS n, COALESCE(SUM(answered), 0) AS ok FROM questions WHERE {where}",
                params,
            )
            total, answered = (int(row["n"]), int(row["ok"])) if row else (0, 0)
            if total == 0:
                return QuestionStats()
            # Median in SQL: the middle row (odd count) or the mean of the middle two (even count).
            middle = await _one(
                db,
                f"""SELECT AVG(elapsed_ms) AS median FROM (
                        SELECT elapsed_ms FROM questions WHERE {where}
                        ORDER BY elapsed_ms LIMIT ? OFFSET ?)""",
                [*params, 2 - total % 2, (total - 1) // 2],
            )
        median = float(middle["median"]) if middle else None
        return QuestionStats(answered=answered, missed=total - answered, median_ms=median)

    async def questions_since(
        self, guild_id: int, since: dt.datetime, limit: int = INSIGHT_ROWS
    ) -> list[LoggedQuestion]:
        async with self._tx() as db:
            rows = await _all(
                db,
                """SELECT * FROM questions WHERE guild_id = ? AND asked_at >= ?
                   ORDER BY asked_at, id LIMIT ?""",
                (guild_id, _to_db(since), max(limit, 0)),
            )
        return [_question(row) for row in rows]

    async def recent_misses(self, guild_id: int, limit: int = 10) -> list[LoggedQuestion]:
        async with self._tx() as db:
            rows = await _all(
                db,
                """SELECT * FROM questions WHERE guild_id = ? AND answered = 0
                   ORDER BY asked_at DESC, id DESC LIMIT ?""",
                (guild_id, max(limit, 0)),
            )
        return [_question(row) for row in rows]

    # -- feedback -------------------------------------------------------------------------------
    async def record_feedback(self, guild_id: int, passage_id: str, user_id: int, vote: int) -> None:
        rules.validate_vote(vote)
        async with self._tx(write=True) as db:
            await db.execute(
                """INSERT INTO feedback (guild_id, passage_id, user_id, vote, voted_at) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (guild_id, passage_id, user_id) DO UPDATE SET
                       vote = excluded.vote, voted_at = excluded.voted_at""",
                (guild_id, passage_id, user_id, vote, _to_db(self._clock())),
            )

    async def votes_since(self, guild_id: int, since: dt.datetime) -> list[Vote]:
        async with self._tx() as db:
            rows = await _all(
                db,
                """SELECT passage_id, vote, voted_at FROM feedback WHERE guild_id = ? AND voted_at >= ?
                   ORDER BY voted_at, passage_id""",
                (guild_id, _to_db(since)),
            )
        return [Vote(str(row["passage_id"]), int(row["vote"]), _from_db(row["voted_at"])) for row in rows]

    async def feedback_summary(self, guild_id: int, limit: int = 20) -> list[FeedbackTally]:
        async with self._tx() as db:
            rows = await _all(
                db,
                """SELECT passage_id, SUM(vote = 1) AS up, SUM(vote = -1) AS down FROM feedback
                   WHERE guild_id = ? GROUP BY passage_id
                   ORDER BY COUNT(*) DESC, passage_id LIMIT ?""",
                (guild_id, max(limit, 0)),
            )
        return [FeedbackTally(str(row["passage_id"]), int(row["up"]), int(row["down"])) for row in rows]

    # -- blocks ---------------------------------------------------------------------------------
    async def block_user(self, guild_id: int, user_id: int, actor_id: int, reason: str = "") -> None:
        async with self._tx(write=True) as db:
            # Blocking again replaces the reason, actor and time: the latest decision stands.
            await db.execute(
                """INSERT INTO blocks (guild_id, user_id, blocked_by, reason, blocked_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (guild_id, user_id) DO UPDATE SET
                       blocked_by = excluded.blocked_by, reason = excluded.reason,
                       blocked_at = excluded.blocked_at""",
                (guild_id, user_id, actor_id, reason, _to_db(self._clock())),
            )
            await self._write_audit(db, guild_id, actor_id, rules.blocked(user_id, reason))

    async def unblock_user(self, guild_id: int, user_id: int, actor_id: int) -> bool:
        async with self._tx(write=True) as db:
            cursor = await db.execute(
                "DELETE FROM blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            if cursor.rowcount == 0:
                return False
            await self._write_audit(db, guild_id, actor_id, rules.unblocked(user_id))
        return True

    async def is_blocked(self, guild_id: int, user_id: int) -> bool:
        async with self._tx() as db:
            row = await _one(
                db, "SELECT 1 FROM blocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
        return row is not None

    async def list_blocks(self, guild_id: int) -> list[Block]:
        async with self._tx() as db:
            rows = await _all(
                db, "SELECT * FROM blocks WHERE guild_id = ? ORDER BY blocked_at DESC, user_id", (guild_id,)
            )
        return [_block(row) for row in rows]

    # -- audit ----------------------------------------------------------------------------------
    async def audit_log(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        async with self._tx() as db:
            rows = await _all(
                db,
                "SELECT * FROM audit_log WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
                (guild_id, max(limit, 0)),
            )
        return [_audit_entry(row) for row in rows]
