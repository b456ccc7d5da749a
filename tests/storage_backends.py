"""Both storage backends for the tests: SQLite on a real file, PostgreSQL on a real server.

A pytest plugin (tests/conftest.py loads it). ``backend`` is parametrised over ``sqlite`` and
``postgresql``: a test that takes it, or ``store`` (an opened storage), runs once on each.

The PostgreSQL server: ``ARTICLEBOT_TEST_POSTGRES_URL`` when set (``.ci/run`` starts one with
``.ci/postgres`` and sets it, with ``ARTICLEBOT_TEST_POSTGRES_DIR``, the cluster's folder, so a
test can restart it), else a throwaway cluster this session starts with the same script and
stops at the end. Where PostgreSQL is not installed, every PostgreSQL test fails, saying so:
nothing is skipped. Each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import os
import sqlite3
import subprocess
import types
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from postgres_cluster import POSTGRES_SCRIPT, ClusterError, throwaway_cluster

from bot.storage import DocumentLimits, SQLiteStorage, Storage
from bot.storage import postgres as postgres_backend
from bot.storage import sqlite as sqlite_backend
from bot.storage.postgres import PostgresStorage

BACKENDS = ("sqlite", "postgresql")


@dataclass
class PostgresServer:
    """A running PostgreSQL server; ``url`` logs in to its ``postgres`` database as a superuser."""

    url: str
    directory: Path | None  # the cluster's folder, when .ci/postgres started it

    def _script(self, command: str, *arguments: str) -> None:
        if self.directory is None:
            pytest.fail(
                "this test restarts the PostgreSQL server: set ARTICLEBOT_TEST_POSTGRES_DIR to its "
                "cluster folder (.ci/postgres start prints it), or leave ARTICLEBOT_TEST_POSTGRES_URL unset",
                pytrace=False,
            )
        script = ["bash", str(POSTGRES_SCRIPT), command, str(self.directory), *arguments]
        subprocess.run(script, check=True, stdout=subprocess.DEVNULL)

    def restart(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown and start; ``immediate``: the server crashes and recovers."""
        self._script("restart", mode)

    def stop(self) -> None:
        self._script("stop")

    def database_url(self, name: str) -> str:
        return urllib.parse.urlunsplit(urllib.parse.urlsplit(self.url)._replace(path=f"/{name}"))

    @property
    def address(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if url := os.environ.get("ARTICLEBOT_TEST_POSTGRES_URL"):
        directory = os.environ.get("ARTICLEBOT_TEST_POSTGRES_DIR")
        yield PostgresServer(url, Path(directory) if directory else None)
        return
    try:
        with throwaway_cluster() as (url, directory):
            yield PostgresServer(url, directory)
    except ClusterError as error:  # only at the start: a session fixture's body raises nothing here
        pytest.fail(
            f"the storage tests need a PostgreSQL server and could not start one with .ci/postgres: {error}",
            pytrace=False,
        )


def _admin(server: PostgresServer, sql: str, sql_since_15: str | None = None) -> None:
    async def run() -> None:
        admin = await asyncpg.connect(server.url)
        try:
            newer = sql_since_15 is not None and admin.get_server_version().major >= 15
            await admin.execute(sql_since_15 if newer else sql)
        finally:
            await admin.close()

    asyncio.run(run())  # a sync fixture: no event loop is running yet


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database on the test server, dropped after the test."""
    name = f"articlebot_test_{uuid.uuid4().hex[:12]}"
    # FILE_COPY (PostgreSQL 15+): a plain copy of the small template, 0.03 s instead of 0.2 s
    # through the WAL; the test cluster runs with fsync off, so its checkpoint costs nothing.
    _admin(postgres_server, f'CREATE DATABASE "{name}"', f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
    yield postgres_server.database_url(name)
    _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Backend(abc.ABC):
    """One backend under test, and a way to look at its database behind the storage's back."""

    name: str
    module: types.ModuleType  # holds MIGRATIONS, for tests that add a step
    sql_error: type[Exception]  # what the driver raises for bad SQL (a bug: raised as it is)
    true: str  # the SQL literal for a stored boolean true

    @abc.abstractmethod
    def storage(
        self,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        document_limits: DocumentLimits | None = None,
    ) -> Storage: ...

    @abc.abstractmethod
    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql`` on a connection of the test's own and return its rows (committed if a write)."""

    @abc.abstractmethod
    async def tables(self) -> set[str]: ...

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    @abc.abstractmethod
    async def set_schema_version(self, version: int) -> None: ...


class SQLiteBackend(Backend):
    name = "sqlite"
    module = sqlite_backend
    sql_error = sqlite3.OperationalError
    true = "1"

    def __init__(self, path: Path) -> None:
        self.path = path

    def storage(
        self,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        document_limits: DocumentLimits | None = None,
    ) -> Storage:
        if clock is None:
            return SQLiteStorage(self.path, document_limits=document_limits)
        return SQLiteStorage(self.path, clock=clock, document_limits=document_limits)

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return list(conn.execute(sql))

    async def tables(self) -> set[str]:
        return {name for (name,) in await self.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}

    async def schema_version(self) -> int:
        [(version,)] = await self.rows("PRAGMA user_version")
        return int(version)

    async def set_schema_version(self, version: int) -> None:
        await self.rows(f"PRAGMA user_version = {version}")


class PostgresBackend(Backend):
    name = "postgresql"
    module = postgres_backend
    sql_error = asyncpg.PostgresSyntaxError
    true = "TRUE"

    def __init__(self, url: str, server: PostgresServer) -> None:
        self.url = url
        self.server = server

    def storage(
        self,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        document_limits: DocumentLimits | None = None,
        pool_size: int = postgres_backend.DEFAULT_POOL_SIZE,
    ) -> PostgresStorage:
        if clock is None:
            return PostgresStorage(self.url, pool_size=pool_size, document_limits=document_limits)
        return PostgresStorage(self.url, pool_size=pool_size, clock=clock, document_limits=document_limits)

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    @property
    def database(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.url).path.lstrip("/"))

    async def set_read_only(self, read_only: bool) -> None:
        """The database's default for new sessions, set from the server's admin database."""
        change = (
            "SET default_transaction_read_only = on" if read_only else "RESET default_transaction_read_only"
        )
        admin = await asyncpg.connect(self.server.url)
        try:
            await admin.execute(f'ALTER DATABASE "{self.database}" {change}')
        finally:
            await admin.close()

    async def tables(self) -> set[str]:
        found = await self.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in found}

    async def schema_version(self) -> int:
        [(version,)] = await self.rows("SELECT version FROM schema_version")
        return int(version)

    async def set_schema_version(self, version: int) -> None:
        await self.rows(f"UPDATE schema_version SET version = {version}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SQLiteBackend(tmp_path / "data" / "bot.db")  # no folder yet: open() must create it
    server = request.getfixturevalue("postgres_server")
    return PostgresBackend(request.getfixturevalue("postgres_url"), server)


@pytest.fixture
def postgres(postgres_server: PostgresServer, postgres_url: str) -> PostgresBackend:
    """The PostgreSQL backend alone, for what only PostgreSQL has (a server to restart, a pool)."""
    return PostgresBackend(postgres_url, postgres_server)
