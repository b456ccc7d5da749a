"""Several processes on one PostgreSQL: shard claims and change notifications (LISTEN/NOTIFY).

Real servers, real connections: each PostgresStorage here stands for one bot process. A claim is
a session-level advisory lock, so it is tested against a second storage, a killed process and a
server restart; a notification is tested by what the other storage's listener hears.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import pytest
from bot_process import ROOT
from storage_backends import PostgresBackend

from bot.storage import Change, DocumentLimitError, DocumentLimits, SQLiteStorage, StorageError
from bot.storage.postgres import SHARD_LOCK_NAMESPACE, PostgresStorage

G = 1
OTHER_G = 2
MOD = 100


class Heard:
    """A listener that records what it hears and lets a test wait for it."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.event = asyncio.Event()

    async def __call__(self, change: Change) -> None:
        self.changes.append(change)
        self.event.set()

    async def wait_for(self, change: Change, timeout: float = 1.0) -> None:
        """Within ``timeout`` (the issue's "within a second"), or AssertionError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while change not in self.changes:
            self.event.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{change} not heard in {timeout}s; heard {self.changes}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), remaining)


async def opened(postgres: PostgresBackend, **kwargs: object) -> PostgresStorage:
    store = postgres.storage(**kwargs)  # type: ignore[arg-type]
    await store.open()
    return store


# -- shard claims -------------------------------------------------------------------------------
async def test_a_shard_claimed_by_one_process_is_refused_to_another(postgres: PostgresBackend) -> None:
    first, second = await opened(postgres), await opened(postgres)
    try:
        await first.claim_shards([0, 1], 4)
        with pytest.raises(StorageError) as refused:
            await second.claim_shards([1, 2], 4)
        [line] = str(refused.value).splitlines()
        served = "shard 1 of 4 is already served by another articlebot process on PostgreSQL"
        assert line.startswith(f"{served} {postgres.server.address}/")
        assert line.endswith("stop that process, or give this one other ARTICLEBOT_SHARD_IDS")
        await second.claim_shards([2, 3], 4)  # refused means nothing kept: 2 is free again
        third = await opened(postgres)
        try:
            with pytest.raises(StorageError, match="shard 0 of 4 is already served"):
                await third.claim_shards([0], 4)
            with pytest.raises(StorageError, match="shard 3 of 4 is already served"):
                await third.claim_shards([3], 4)
        finally:
            await third.close()
    finally:
        await first.close()
        await second.close()
    again = await opened(postgres)  # closed processes hold nothing
    try:
        await again.claim_shards([0, 1, 2, 3], 4)
    finally:
        await again.close()


async def test_a_process_with_another_shard_count_is_refused(postgres: PostgresBackend) -> None:
    first, second = await opened(postgres), await opened(postgres)
    try:
        await first.claim_shards([0], 2)
        with pytest.raises(StorageError) as refused:
            await second.claim_shards([1], 3)  # guild id >> 22 % 3: overlaps first's servers
        assert "runs with ARTICLEBOT_SHARD_COUNT=2, this one with 3" in str(refused.value)
        await second.claim_shards([1], 2)
    finally:
        await first.close()
        await second.close()


async def test_the_claims_of_live_processes_show_which_shards_nobody_serves(
    postgres: PostgresBackend,
) -> None:
    first, second = await opened(postgres), await opened(postgres)
    try:
        await first.claim_shards([0, 1], 4)
        await second.claim_shards([3], 4)
        claims = await first.shard_claims()
        assert (claims.shard_ids, claims.counts, claims.uncovered(4)) == ((0, 1, 3), (4,), (2,))
    finally:
        await first.close()
    try:
        claims = await second.shard_claims()  # the first's claims went with it
        assert (claims.shard_ids, claims.uncovered(4)) == ((3,), (0, 1, 2))
    finally:
        await second.close()


async def test_bots_on_two_databases_of_one_server_never_see_each_others_claims(
    postgres: PostgresBackend,
) -> None:
    """Advisory locks belong to a database, pg_locks lists the server's: a staging bot's database
    beside production's, on one server, with its own shard count, is not refused because of it."""
    other_database = f"{postgres.database}_other"
    admin = await asyncpg.connect(postgres.server.url)
    await admin.execute(f'CREATE DATABASE "{other_database}"')
    production = await opened(postgres)
    staging = PostgresStorage(postgres.server.database_url(other_database))
    try:
        await production.claim_shards([0, 1], 2)
        await staging.claim_shards([0], 1)  # unsharded: shard 0 of 1, in its own database
        assert (await staging.shard_claims()).shard_ids == (0,)
        assert (await staging.shard_claims()).counts == (1,)
        assert (await production.shard_claims()).counts == (2,)
    finally:
        await staging.close()
        await production.close()
        await admin.execute(f'DROP DATABASE "{other_database}" WITH (FORCE)')
        await admin.close()


async def test_a_killed_process_leaves_its_shards_free(postgres: PostgresBackend) -> None:
    child = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(ROOT)!r})
        from bot.storage.postgres import PostgresStorage
        async def main():
            store = PostgresStorage({postgres.url!r})
            await store.open()
            await store.claim_shards([0], 2)
            print("claimed", flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"claimed\n"
        store = await opened(postgres)
        try:
            with pytest.raises(StorageError, match="shard 0 of 2 is already served"):
                await store.claim_shards([0], 2)
            process.kill()
            process.wait(timeout=10)
            for _ in range(50):  # the server notices the dead connection and drops its locks
                try:
                    await store.claim_shards([0], 2)
                    break
                except StorageError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("shard 0 still claimed 5 s after its process was killed")
        finally:
            await store.close()
    finally:
        process.kill()
        process.wait(timeout=10)


# -- notifications ------------------------------------------------------------------------------
async def test_a_document_change_is_heard_by_the_other_process_not_its_own(postgres: PostgresBackend) -> None:
    writer, reader = await opened(postgres), await opened(postgres)
    heard_by_writer, heard_by_reader = Heard(), Heard()
    try:
        await writer.watch(heard_by_writer)
        await reader.watch(heard_by_reader)
        await writer.add_document(G, "faq.md", "FAQ", "Some text.", MOD)
        await heard_by_reader.wait_for(Change("documents", G))
        await writer.remove_document(G, "faq.md", MOD)
        await writer.announce(Change("corpus"))
        await heard_by_reader.wait_for(Change("corpus"))
        assert heard_by_reader.changes == [Change("documents", G)] * 2 + [Change("corpus")]
        assert await writer.remove_document(G, "faq.md", MOD) is False  # nothing removed: nothing said
        await reader.add_document(OTHER_G, "b.md", "B", "Other text.", MOD)
        await heard_by_writer.wait_for(Change("documents", OTHER_G))
    finally:
        await writer.close()
        await reader.close()
    assert heard_by_writer.changes == [Change("documents", OTHER_G)]  # never its own
    assert heard_by_reader.changes == [Change("documents", G)] * 2 + [Change("corpus")]


async def test_a_refused_change_is_never_announced(postgres: PostgresBackend) -> None:
    limits = DocumentLimits(max_documents=1)
    writer, reader = await opened(postgres, document_limits=limits), await opened(postgres)
    heard = Heard()
    try:
        await reader.watch(heard)
        await writer.add_document(G, "a.md", "A", "First.", MOD)
        await heard.wait_for(Change("documents", G))
        with pytest.raises(DocumentLimitError):
            await writer.add_document(G, "b.md", "B", "Second.", MOD)  # rolled back: NOTIFY with it
        await writer.announce(Change("corpus"))  # a later notification, to know the earlier is not coming
        await heard.wait_for(Change("corpus"))
    finally:
        await writer.close()
        await reader.close()
    assert heard.changes == [Change("documents", G), Change("corpus")]


async def test_after_a_server_restart_the_watch_and_the_claims_come_back(postgres: PostgresBackend) -> None:
    watcher, writer = await opened(postgres), await opened(postgres)
    heard = Heard()
    try:
        await watcher.claim_shards([0], 2)
        await watcher.watch(heard)
        postgres.server.restart()
        await heard.wait_for(Change("resync"), timeout=10)  # told that anything may have changed
        await writer.add_document(G, "faq.md", "FAQ", "Some text.", MOD)  # its pool reconnects too
        await heard.wait_for(Change("documents", G))
        with pytest.raises(StorageError, match="shard 0 of 2 is already served"):
            await writer.claim_shards([0], 2)  # the claim was taken again with the connection
    finally:
        await watcher.close()
        await writer.close()
    assert heard.changes == [Change("resync"), Change("documents", G)]


async def test_sqlite_has_nothing_to_claim_or_hear(tmp_path: Path) -> None:
    """One process per SQLite database (its lock): claims and watches are no-ops, never errors."""
    store = SQLiteStorage(tmp_path / "bot.db")
    await store.open()
    try:
        heard = Heard()
        await store.claim_shards([0, 1], 2)
        assert await store.shard_claims() is None  # the one process is all there is
        await store.watch(heard)
        await store.add_document(G, "faq.md", "FAQ", "Some text.", MOD)
        await store.announce(Change("corpus"))
        assert heard.changes == []
    finally:
        await store.close()


async def test_claims_taken_by_another_while_away_are_told_as_lost(postgres: PostgresBackend) -> None:
    """The claim's connection dies and another process takes the shard before it is back: the
    listener hears shards_lost (the bot stops), never a silent second server of the shard."""
    watcher = await opened(postgres)
    heard = Heard()
    rival = await asyncpg.connect(postgres.url)
    admin = await asyncpg.connect(postgres.url)
    try:
        await watcher.claim_shards([0], 2)
        await watcher.watch(heard)
        waiting = asyncio.create_task(rival.fetchval("SELECT pg_advisory_lock($1, 0)", SHARD_LOCK_NAMESPACE))
        await asyncio.sleep(0.2)  # the rival waits on the lock
        assert not waiting.done()
        [pid] = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'articlebot coordination'"
        )
        await admin.execute("SELECT pg_terminate_backend($1)", pid["pid"])
        await asyncio.wait_for(waiting, 5)  # granted the moment the watcher's session ended
        await heard.wait_for(Change("shards_lost"), timeout=10)
    finally:
        await rival.close()
        await admin.close()
        await watcher.close()
    assert heard.changes == [Change("shards_lost")]  # not a resync: it must stop
