"""`python -m bot migrate-db FROM TO`, as an operator runs it: SQLite to PostgreSQL and back, on
real databases, every table compared through the storage API, ids and their sequences kept."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import urllib.parse
from pathlib import Path

from storage_backends import PostgresBackend

from bot.storage import SQLiteStorage, Storage, open_storage
from bot.storage import postgres as postgres_backend
from bot.storage import sqlite as sqlite_backend
from bot.storage.migrate import COPIED_SCHEMA, TABLES

ROOT = Path(__file__).resolve().parents[1]
G, OTHER_G = 111_222_333_444_555_666, 2
MOD, ALICE, BOB = 900_000_000_000_000_001, 7, 8
WHEN = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)


def migrate(source: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "migrate-db", source, target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def fill(store: Storage) -> list[int]:
    """A bit of everything, through the API; returns the logged questions' ids."""
    await store.update_settings(G, MOD, passages_per_answer=2, default_visibility="private", strictness=0.25)
    await store.update_settings(
        OTHER_G, MOD, mention_replies=False, moderator_role_id=5_000_000_000_000_000_005
    )
    await store.set_channel_rule(G, 42, "allow", MOD)
    await store.set_channel_rule(G, 43, "deny", MOD)
    await store.add_document(G, "faq.md", "FAQ", "# FAQ\n\nThe kraken lighthouse is teal. ✓", MOD)
    await store.add_document(OTHER_G, "notes.txt", "Notes", "Plain notes.", MOD)
    await store.block_user(G, BOB, MOD, "spam")
    await store.block_user(G, ALICE, MOD)
    await store.unblock_user(G, ALICE, MOD)
    ids = [
        await store.log_question(
            G, 42, ALICE, f"question {n}?", n % 2 == 0, "article:p1" if n % 2 == 0 else None, 1.5 * n
        )
        for n in range(5)
    ]
    await store.record_feedback(G, "article:p1", ALICE, 1)
    await store.record_feedback(G, "article:p1", BOB, -1)
    await store.record_feedback(G, "article:p2", ALICE, 1)
    return ids


async def everything(store: Storage, question_ids: list[int]) -> list[object]:
    """What the bot can read back, server by server (each a storage method's own answer)."""
    seen: list[object] = []
    for guild in (G, OTHER_G):
        seen += [
            await store.get_settings(guild),
            await store.get_channel_rules(guild),
            await store.list_documents(guild),
            await store.list_blocks(guild),
            await store.audit_log(guild, 100),
            await store.feedback_summary(guild, 100),
            await store.recent_misses(guild, 100),
            await store.question_stats(guild),
        ]
    seen += [await store.get_question(G, qid) for qid in question_ids]
    return seen


async def opened(url_or_path: str) -> Storage:
    store = open_storage(url_or_path)
    await store.open()
    return store


def test_the_copy_knows_every_table_of_both_schemas() -> None:
    assert len(sqlite_backend.MIGRATIONS) == len(postgres_backend.MIGRATIONS) == COPIED_SCHEMA
    created = " ".join(sqlite_backend.MIGRATIONS[0])
    assert sorted(TABLES) == sorted(t for t in TABLES if f"CREATE TABLE {t} " in created)
    assert created.count("CREATE TABLE") == len(TABLES)


async def test_sqlite_to_postgresql_and_back(tmp_path: Path, postgres: PostgresBackend) -> None:
    original = tmp_path / "original.db"
    store = await opened(str(original))
    try:
        ids = await fill(store)
        await store.remove_document(OTHER_G, "notes.txt", MOD)
        expected = await everything(store, ids)
    finally:
        await store.close()

    there = migrate(str(original), postgres.url)
    assert there.returncode == 0, there.stderr
    assert there.stdout.startswith(f"Copied 27 rows from {original} to PostgreSQL {postgres.server.address}/")
    tables = "guild_settings 2, channel_rules 2, documents 1, questions 5, feedback 3, blocks 1, audit_log 13"
    assert there.stdout.endswith(f": {tables}\n")
    pg = await opened(postgres.url)
    try:
        assert await everything(pg, ids) == expected
        # Ids continue past the copied ones: a More button's question id is never handed out twice.
        assert await pg.log_question(G, 42, ALICE, "new?", False, None, 1.0) == max(ids) + 1
    finally:
        await pg.close()

    back = tmp_path / "back" / "bot.db"
    returned = migrate(postgres.url, f"sqlite:///{back}")
    assert returned.returncode == 0, returned.stderr
    password = urllib.parse.urlsplit(postgres.url).password
    assert password and password not in returned.stdout and f"to sqlite:///{back}: " in returned.stdout
    copy = await opened(str(back))
    try:
        assert await everything(copy, ids) == await everything_after_new(postgres, ids)
        assert await copy.log_question(G, 42, ALICE, "newer?", False, None, 1.0) == max(ids) + 2
    finally:
        await copy.close()


async def everything_after_new(postgres: PostgresBackend, ids: list[int]) -> list[object]:
    pg = await opened(postgres.url)
    try:
        return await everything(pg, ids)
    finally:
        await pg.close()


async def test_a_target_with_data_is_refused_and_left_alone(
    tmp_path: Path, postgres: PostgresBackend
) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    for path, guild in ((source, G), (target, OTHER_G)):
        store = SQLiteStorage(path)
        await store.open()
        await store.block_user(guild, BOB, MOD, "already here")
        await store.close()
    refused = migrate(str(source), str(target))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"error: {target} already holds data (blocks 1, audit_log 1 rows): migrate-db copies into an "
        "empty database only; point TO at a new database"
    ]
    store = SQLiteStorage(target)
    await store.open()
    try:
        assert [b.user_id for b in await store.list_blocks(OTHER_G)] == [BOB]
        assert await store.list_blocks(G) == []
    finally:
        await store.close()


def test_a_missing_source_and_the_same_database_are_refused(tmp_path: Path) -> None:
    missing = migrate(str(tmp_path / "nope.db"), str(tmp_path / "target.db"))
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"error: FROM: there is no SQLite database at {tmp_path / 'nope.db'}"
    ]
    assert not (tmp_path / "nope.db").exists() and not (tmp_path / "target.db").exists()
    same = migrate(str(tmp_path / "a.db"), str(tmp_path / "a.db"))
    assert same.returncode == 2 and same.stderr.splitlines() == ["error: FROM and TO are the same database"]


async def test_a_database_a_bot_is_running_on_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    running = SQLiteStorage(source)  # holds the single-instance lock, as a running bot does
    await running.open()
    try:
        refused = migrate(str(source), str(tmp_path / "target.db"))
    finally:
        await running.close()
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith(
        f"error: database {source} is already in use by another articlebot (pid "
    )


async def test_a_postgresql_a_bot_is_running_on_is_refused(tmp_path: Path, postgres: PostgresBackend) -> None:
    source = tmp_path / "source.db"
    store = SQLiteStorage(source)
    await store.open()
    await store.block_user(G, BOB, MOD)
    await store.close()
    bot = postgres.storage()
    await bot.open()
    try:
        await bot.claim_shards([0], 1)  # what a running bot holds: its coordination connection
        refused = migrate(str(source), postgres.url)
        assert await bot.list_blocks(G) == []
    finally:
        await bot.close()
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        f"error: PostgreSQL {postgres.server.address}/{postgres.database} is in use by 1 running articlebot "
        "process: stop every bot process before migrate-db"
    ]
