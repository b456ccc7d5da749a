"""``python -m bot migrate-db FROM TO``: every table copied from one database to another.

SQLite to PostgreSQL (outgrowing one machine) or back. Both are opened as the bot opens them
(migrated to this articlebot's schema, SQLite locked to this process), the target must be empty,
and the copy is one read snapshot of the source written in one transaction of the target: an
interrupted copy leaves the target as empty as it was. Ids keep their values, and each id
sequence continues past the source's (question ids are baked into persistent More buttons).
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg  # type: ignore[import-untyped]

from . import postgres, sqlite
from .base import Storage, StorageError
from .postgres import PostgresStorage
from .sqlite import SQLiteStorage

Kind = Literal["int", "text", "bool", "float", "time"]

# The tables at schema version COPIED_SCHEMA, in an order that needs no foreign keys, with each
# column's kind. A new migration must extend this (a test checks the two agree).
COPIED_SCHEMA = 2
TABLES: dict[str, tuple[tuple[str, Kind], ...]] = {
    "guild_settings": (
        ("guild_id", "int"),
        ("passages_per_answer", "int"),
        ("default_visibility", "text"),
        ("mention_replies", "bool"),
        ("cooldown_seconds", "int"),
        ("strictness", "float"),
        ("moderator_role_id", "int"),
        ("follow_up_minutes", "int"),
    ),
    "channel_rules": (("guild_id", "int"), ("channel_id", "int"), ("rule", "text")),
    "documents": (
        ("guild_id", "int"),
        ("name", "text"),
        ("title", "text"),
        ("text", "text"),
        ("added_by", "int"),
        ("added_at", "time"),
        ("size_bytes", "int"),
    ),
    "questions": (
        ("id", "int"),
        ("guild_id", "int"),
        ("channel_id", "int"),
        ("user_id", "int"),
        ("question", "text"),
        ("answered", "bool"),
        ("top_passage_id", "text"),
        ("elapsed_ms", "float"),
        ("asked_at", "time"),
        ("confidence", "float"),
        ("section", "text"),
        ("follow_up_of", "int"),
    ),
    "feedback": (
        ("guild_id", "int"),
        ("passage_id", "text"),
        ("user_id", "int"),
        ("vote", "int"),
        ("voted_at", "time"),
    ),
    "blocks": (
        ("guild_id", "int"),
        ("user_id", "int"),
        ("blocked_by", "int"),
        ("reason", "text"),
        ("blocked_at", "time"),
    ),
    "audit_log": (
        ("id", "int"),
        ("guild_id", "int"),
        ("actor_id", "int"),
        ("action", "text"),
        ("detail", "text"),
        ("at", "time"),
    ),
}
IDENTITY_TABLES = ("questions", "audit_log")  # an ``id`` that must never be handed out twice

Row = tuple[Any, ...]


class Side(abc.ABC):
    """One opened database, read and written in plain Python values (int, str, bool, float, UTC)."""

    label: str

    @abc.abstractmethod
    async def counts(self) -> dict[str, int]: ...

    @abc.abstractmethod
    async def read(self) -> tuple[dict[str, list[Row]], dict[str, int]]:
        """Every table's rows and each identity's high-water mark, from one snapshot."""

    @abc.abstractmethod
    async def write(self, rows: dict[str, list[Row]], high_water: dict[str, int]) -> None:
        """All of it in one transaction."""

    async def running_bots(self) -> int:
        return 0


class SQLiteSide(Side):
    def __init__(self, storage: SQLiteStorage) -> None:
        self.label = str(storage.path)
        db = storage._db  # the package's own backend: the copy needs its connection, not its API
        assert db is not None, "open the storage first"
        self.db = db

    async def counts(self) -> dict[str, int]:
        found = {}
        for table in TABLES:
            async with self.db.execute(f"SELECT COUNT(*) FROM {table}") as cursor:
                row = await cursor.fetchone()
            found[table] = int(row[0]) if row else 0
        return found

    async def read(self) -> tuple[dict[str, list[Row]], dict[str, int]]:
        rows: dict[str, list[Row]] = {}
        async with sqlite._transaction(self.db, "BEGIN"):  # one snapshot of every table
            for table, columns in TABLES.items():
                names = ", ".join(name for name, _ in columns)
                async with self.db.execute(f"SELECT {names} FROM {table} ORDER BY rowid") as cursor:
                    rows[table] = [
                        tuple(
                            _from_sqlite(value, kind) for value, (_, kind) in zip(row, columns, strict=True)
                        )
                        for row in await cursor.fetchall()
                    ]
            high_water = {}
            for table in IDENTITY_TABLES:
                async with self.db.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
                ) as cursor:
                    row = await cursor.fetchone()
                high_water[table] = int(row[0]) if row else 0
        return rows, high_water

    async def write(self, rows: dict[str, list[Row]], high_water: dict[str, int]) -> None:
        async with sqlite._transaction(self.db, "BEGIN IMMEDIATE"):
            for table, columns in TABLES.items():
                names = ", ".join(name for name, _ in columns)
                marks = ", ".join("?" for _ in columns)
                await self.db.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})",
                    [
                        tuple(_to_sqlite(value, kind) for value, (_, kind) in zip(row, columns, strict=True))
                        for row in rows[table]
                    ],
                )
            for table, mark in high_water.items():
                # Explicit ids already raised the sequence to the largest copied id; the source's
                # own mark may be higher (rows deleted since): never reuse those ids either.
                await self.db.execute(
                    "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (mark, table)
                )
                await self.db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? "
                    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                    (table, mark, table),
                )


class PostgresSide(Side):
    def __init__(self, storage: PostgresStorage) -> None:
        self.label = f"PostgreSQL {storage.label}"
        pool = storage._pool  # as above: the copy needs the connections
        assert pool is not None, "open the storage first"
        self.pool = pool

    async def counts(self) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            return {table: int(await conn.fetchval(f"SELECT COUNT(*) FROM {table}")) for table in TABLES}

    async def running_bots(self) -> int:
        async with self.pool.acquire() as conn:
            return int(
                await conn.fetchval(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'articlebot coordination'"
                )
            )

    async def read(self) -> tuple[dict[str, list[Row]], dict[str, int]]:
        rows: dict[str, list[Row]] = {}
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            for table, columns in TABLES.items():
                names = ", ".join(name for name, _ in columns)
                order = "id" if table in IDENTITY_TABLES else names
                found = await conn.fetch(f"SELECT {names} FROM {table} ORDER BY {order}")
                rows[table] = [
                    tuple(_utc(v) if k == "time" else v for v, (_, k) in zip(r, columns, strict=True))
                    for r in found
                ]
            high_water = {}
            for table in IDENTITY_TABLES:
                sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
                used = await conn.fetchrow(f"SELECT last_value, is_called FROM {sequence}")
                high_water[table] = int(used["last_value"]) if used["is_called"] else 0
        return rows, high_water

    async def write(self, rows: dict[str, list[Row]], high_water: dict[str, int]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for table, columns in TABLES.items():
                names = ", ".join(name for name, _ in columns)
                marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
                overriding = " OVERRIDING SYSTEM VALUE" if table in IDENTITY_TABLES else ""
                await conn.executemany(
                    f"INSERT INTO {table} ({names}){overriding} VALUES ({marks})", rows[table]
                )
            for table in IDENTITY_TABLES:
                top = max([high_water.get(table, 0), *(row[0] for row in rows[table])])
                if top > 0:
                    await conn.execute("SELECT setval(pg_get_serial_sequence($1, 'id'), $2)", table, top)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


def _from_sqlite(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if kind == "bool":
        return bool(value)
    if kind == "time":
        return sqlite._from_db(value)
    if kind == "float":
        return float(value)
    return value


def _to_sqlite(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if kind == "bool":
        return int(value)
    if kind == "time":
        return sqlite._to_db(value)
    return value


def side(storage: Storage) -> Side:
    if isinstance(storage, SQLiteStorage):
        return SQLiteSide(storage)
    if isinstance(storage, PostgresStorage):
        return PostgresSide(storage)
    raise TypeError(f"cannot copy a {type(storage).__name__}")


def check_schema_known() -> None:
    """Both backends' migrations end at the schema ``TABLES`` describes."""
    versions = {len(sqlite.MIGRATIONS), len(postgres.MIGRATIONS)}
    if versions != {COPIED_SCHEMA}:
        raise AssertionError(
            f"migrate-db copies schema version {COPIED_SCHEMA}; migrations are at {versions}"
        )


async def copy_database(source: Storage, target: Storage) -> dict[str, int]:
    """Copy every row from ``source`` into the empty ``target`` (both opened); rows per table.

    ``StorageError`` (one line) when the target holds data or a bot still runs on either.
    """
    check_schema_known()
    src, dst = side(source), side(target)
    for each in (src, dst):
        if running := await each.running_bots():
            raise StorageError(
                f"{each.label} is in use by {running} running articlebot process"
                f"{'' if running == 1 else 'es'}: stop every bot process before migrate-db"
            )
    held = {table: n for table, n in (await dst.counts()).items() if n}
    if held:
        listed = ", ".join(f"{table} {n}" for table, n in held.items())
        raise StorageError(
            f"{dst.label} already holds data ({listed} rows): migrate-db copies into an empty "
            "database only; point TO at a new database"
        )
    rows, high_water = await src.read()
    try:
        await dst.write(rows, high_water)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise StorageError(f"copying into {dst.label} failed, nothing was written: {error}") from error
    return {table: len(found) for table, found in rows.items()}


def table_names() -> Sequence[str]:
    return tuple(TABLES)
