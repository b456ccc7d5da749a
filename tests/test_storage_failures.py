"""Storage on a database it cannot use: refused at open with one line, or told at run time.

The failures of a file are SQLite's alone; a read-only database and one locked by another program
at run time happen to both backends, and those tests run on each (tests/storage_backends.py;
PostgreSQL's own failures, a server gone or refusing the login, are in test_storage_postgres.py).


Real SQLite files and real failures: garbage written into a real database, a file of random bytes,
a read-only file or folder (see tests/fs_faults.py for how, as root), a newer schema, a database
at SQLite's page cap (``PRAGMA max_page_count``: a real SQLITE_FULL), a second opener.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from fs_faults import read_only
from storage_backends import Backend, PostgresBackend

from bot.storage import SQLiteStorage, Storage, StorageError
from bot.storage import postgres as postgres_backend
from bot.storage import sqlite as sqlite_backend
from bot.storage.postgres import PostgresStorage

G = 1
MOD = 100


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.db"


async def make_database(path: Path, rows: int = 0) -> None:
    """A real, migrated database; ``rows`` questions make it span many pages."""
    storage = SQLiteStorage(path)
    await storage.open()
    try:
        for i in range(rows):
            await storage.log_question(G, 10, 7, f"question number {i} " * 8, True, "p1", 1.0)
    finally:
        await storage.close()


async def refusal(path: Path) -> str:
    storage = SQLiteStorage(path)
    with pytest.raises(StorageError) as caught:
        await storage.open()
    message = str(caught.value)
    assert "\n" not in message and str(path) in message, message
    # Refused means nothing is left open: the same file can be opened once it is fixed.
    assert storage._db is None
    return message


# -- refused at open ----------------------------------------------------------------------------
async def test_a_file_of_random_bytes_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.write_bytes(os.urandom(16384))
    message = await refusal(db_path)
    assert "is not an SQLite database" in message


async def test_a_database_with_corrupt_pages_is_refused(db_path: Path) -> None:
    await make_database(db_path, rows=400)
    size = db_path.stat().st_size
    assert size > 20 * 4096
    with db_path.open("r+b") as f:  # the header is intact: only quick_check can find this
        f.seek(size // 2 // 4096 * 4096)
        f.write(os.urandom(3 * 4096))
    message = await refusal(db_path)
    assert "is damaged" in message and "backup" in message


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    await make_database(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {len(sqlite_backend.MIGRATIONS) + 4}")
    message = await refusal(db_path)
    assert f"schema version {len(sqlite_backend.MIGRATIONS) + 4}" in message
    assert "upgrade articlebot" in message


async def test_a_read_only_database_file_is_refused(db_path: Path) -> None:
    await make_database(db_path)
    with read_only(db_path):
        message = await refusal(db_path)
    assert "read-only" in message and "write access" in message


async def test_a_read_only_folder_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir()
    with read_only(db_path.parent):
        message = await refusal(db_path)
    assert "folder" in message and "writable" in message


async def test_a_read_only_folder_is_refused_with_a_database_already_in_it(db_path: Path) -> None:
    await make_database(db_path)
    (db_path.parent / "bot.db.lock").unlink(missing_ok=True)  # as an older articlebot left it
    with read_only(db_path.parent):
        message = await refusal(db_path)
    assert "folder" in message and "writable" in message


async def test_a_healthy_database_opens_after_a_refusal_is_fixed(db_path: Path) -> None:
    await make_database(db_path, rows=3)
    with read_only(db_path):
        await refusal(db_path)
    storage = SQLiteStorage(db_path)
    await storage.open()
    try:
        assert (await storage.question_stats(G)).answered == 3
    finally:
        await storage.close()


# -- one process per database ---------------------------------------------------------------------
async def test_a_second_opener_of_the_same_database_is_refused_until_the_first_closes(db_path: Path) -> None:
    first = SQLiteStorage(db_path)
    await first.open()
    try:
        message = await refusal(db_path)
        assert "already in use by another articlebot" in message and f"pid {os.getpid()}" in message
    finally:
        await first.close()
    again = SQLiteStorage(db_path)
    await again.open()  # released on close
    await again.close()


def test_the_lock_dies_with_a_killed_process(db_path: Path) -> None:
    """SIGKILL runs no cleanup; the kernel still drops the lock, so a restart is not refused."""
    holder = textwrap.dedent(
        f"""
        import asyncio, sys
        from bot.storage import SQLiteStorage
        async def main():
            await SQLiteStorage({str(db_path)!r}).open()
            print("open", flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
        """
    )
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "open\n"
        busy = subprocess.run(
            [sys.executable, "-c", f"import asyncio; from bot.storage import SQLiteStorage; "
             f"asyncio.run(SQLiteStorage({str(db_path)!r}).open())"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert busy.returncode != 0 and "already in use by another articlebot" in busy.stderr
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)

    async def reopen() -> None:
        storage = SQLiteStorage(db_path)
        await storage.open()
        await storage.close()

    asyncio.run(reopen())


# -- at run time ----------------------------------------------------------------------------------
@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStorage]:
    storage = SQLiteStorage(db_path)
    await storage.open()
    yield storage
    await storage.close()


async def fill_to_page_cap(store: SQLiteStorage) -> None:
    """Cap the file at its current size and fill the last free space: the next write is SQLITE_FULL."""
    db = store._db
    assert db is not None
    pages = (await (await db.execute("PRAGMA page_count")).fetchone() or [0])[0]
    await db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for _ in range(10_000):  # smallest rows, so any real row afterwards cannot fit either
            await db.execute(
                "INSERT INTO questions (guild_id, channel_id, user_id, question, answered, "
                "elapsed_ms, asked_at) VALUES (0, 0, 0, '', 0, 0, '')"
            )


async def test_a_full_disk_during_a_write_says_so_and_changes_nothing(store: SQLiteStorage) -> None:
    await store.add_document(G, "before.md", "Before", "Some text.", MOD)
    await fill_to_page_cap(store)
    with pytest.raises(StorageError) as caught:
        await store.add_document(G, "faq.md", "FAQ", "The meetup is in Lisbon. " * 400, MOD)
    assert str(caught.value) == (
        "I couldn't save that: the bot's disk is full. Nothing was changed; tell the bot's operator."
    )
    assert [d.name for d in await store.list_documents(G)] == ["before.md"]
    assert [e.action for e in await store.audit_log(G)] == ["documents.add"]  # the first add only
    with pytest.raises(StorageError, match="disk is full"):
        await store.log_question(G, 10, 7, "a question that does not fit " * 5, True, "p1", 1.0)


async def test_a_read_only_database_at_run_time_says_so(backend: Backend) -> None:
    store = backend.storage()
    await store.open()
    try:
        if isinstance(store, SQLiteStorage):
            # Honest note: the file cannot be made read-only under an open connection (the write fd
            # stays valid), so this uses SQLite's own switch, which fails writes with SQLITE_READONLY.
            assert store._db is not None
            await store._db.execute("PRAGMA query_only = ON")
        else:
            assert isinstance(backend, PostgresBackend) and isinstance(store, PostgresStorage)
            assert store._pool is not None
            await backend.set_read_only(True)
            await store._pool.expire_connections()  # new sessions read the database's default
        with pytest.raises(StorageError) as caught:
            await store.update_settings(G, MOD, cooldown_seconds=30)
        assert str(caught.value) == (
            "I couldn't save that: the bot's database is read-only. Nothing was changed; "
            "tell the bot's operator."
        )
        assert (await store.get_settings(G)).cooldown_seconds == 10  # reads still work
        assert await store.audit_log(G) == []
    finally:
        await store.close()


async def test_journal_size_limit_is_set(store: SQLiteStorage) -> None:
    assert store._db is not None
    row = await (await store._db.execute("PRAGMA journal_size_limit")).fetchone()
    assert row is not None and row[0] == sqlite_backend.JOURNAL_SIZE_LIMIT > 0


async def test_a_database_locked_by_another_program_is_refused(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_database(db_path)
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT_MS", 200)  # the real 5 s, shortened for the test
    shell = sqlite3.connect(db_path, isolation_level=None)  # e.g. an operator's sqlite3 shell
    try:
        shell.execute("BEGIN IMMEDIATE")  # holds the write lock
        message = await refusal(db_path)
    finally:
        shell.close()
    assert "is locked by another program" in message


async def test_a_folder_in_place_of_the_database_is_refused(db_path: Path) -> None:
    db_path.mkdir(parents=True)
    assert "is a folder" in await refusal(db_path)


async def test_a_write_that_finds_the_database_locked_says_so(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_backend, "LOCK_TIMEOUT_MS", 200)  # the real 5 s, shortened for the test
    store: Storage = backend.storage()
    await store.open()
    try:
        if isinstance(store, SQLiteStorage):
            assert store._db is not None
            await store._db.execute("PRAGMA busy_timeout = 100")  # the real 5 s, shortened for the test
            other = sqlite3.connect(
                store.path, isolation_level=None
            )  # another program, holding the write lock
            try:
                other.execute("BEGIN IMMEDIATE")
                with pytest.raises(StorageError) as caught:
                    await store.update_settings(G, MOD, cooldown_seconds=30)
            finally:
                other.close()
        else:
            assert isinstance(backend, PostgresBackend)
            holder = await asyncpg.connect(backend.url)  # another program, holding the table
            try:
                async with holder.transaction():
                    await holder.execute("LOCK TABLE guild_settings IN ACCESS EXCLUSIVE MODE")
                    with pytest.raises(StorageError) as caught:
                        await store.update_settings(G, MOD, cooldown_seconds=30)
            finally:
                await holder.close()
        assert str(caught.value) == (
            "I couldn't save that: the bot's database is locked by another program. Nothing was changed; "
            "try again in a minute."
        )
        assert (await store.get_settings(G)).cooldown_seconds == 10
        assert await store.audit_log(G) == []
    finally:
        await store.close()
