"""Per-server document caps: count and total size, checked in the write transaction, shown to moderators.

On both backends (tests/storage_backends.py); on PostgreSQL also from two storages at once, as two
bot processes sharing the database would add.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import RunBot, invoke
from standin import DiscordStandin
from storage_backends import Backend, PostgresBackend
from test_storage_bot import bot_on

from bot.storage import DocumentLimits, DocumentUsage, Storage

G = 1
MOD = 100


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Storage]:
    storage = backend.storage()
    await storage.open()
    yield storage
    await storage.close()


async def test_default_caps_are_20_documents_and_5_mb(store: Storage) -> None:
    assert DocumentLimits() == DocumentLimits(
        max_documents=20, max_total_bytes=5_000_000, max_document_bytes=1_000_000
    )
    for i in range(20):
        await store.add_document(G, f"doc{i}.txt", f"Doc {i}", "Short text.", MOD)
    with pytest.raises(ValueError) as caught:
        await store.add_document(G, "doc20.txt", "One too many", "Short text.", MOD)
    assert str(caught.value) == (
        "this server already has 20 of 20 documents; remove one first (`/admin documents remove`)"
    )
    await store.add_document(G, "doc3.txt", "Replaced", "A replacement is not one more.", MOD)
    usage = await store.document_usage(G)
    assert (usage.count, usage.limits.max_documents) == (20, 20)
    assert await store.document_usage(G + 1) == DocumentUsage(0, 0, DocumentLimits())


async def test_the_size_cap_counts_a_replacement_once(backend: Backend) -> None:
    limits = DocumentLimits(max_documents=20, max_total_bytes=10_000, max_document_bytes=6_000)
    store = backend.storage(document_limits=limits)
    await store.open()
    try:
        await store.add_document(G, "a.txt", "A", "a" * 6_000, MOD)
        with pytest.raises(ValueError) as caught:
            await store.add_document(G, "b.txt", "B", "b" * 4_001, MOD)
        assert str(caught.value) == (
            "`b.txt` is 0.004 MB and this server's other documents already use 0.006 of 0.01 MB; "
            "remove one first or add a smaller file"
        )
        await store.add_document(G, "b.txt", "B", "b" * 4_000, MOD)  # exactly at the cap
        await store.add_document(G, "a.txt", "A", "a" * 5_000, MOD)  # replacing: its new size only
        with pytest.raises(ValueError) as too_big:
            await store.add_document(G, "c.txt", "C", "c" * 7_000, MOD)
        assert str(too_big.value) == "`c.txt` is 0.007 MB; the limit for one document is 0.006 MB"
        usage = await store.document_usage(G)
        assert (usage.count, usage.total_bytes) == (2, 9_000)
        latest = (await store.audit_log(G))[0]
        assert latest.detail == "a.txt replaced (5000 bytes)"
    finally:
        await store.close()


async def test_concurrent_adds_cannot_exceed_the_cap(backend: Backend) -> None:
    limits = DocumentLimits(max_documents=5, max_total_bytes=1_000_000, max_document_bytes=1_000_000)
    store = backend.storage(document_limits=limits)
    await store.open()
    try:
        results = await asyncio.gather(
            *(store.add_document(G, f"d{i}.md", "D", "text", MOD) for i in range(12)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, ValueError)]
        assert len(refused) == 7 and all("5 of 5 documents" in str(r) for r in refused)
        assert len(await store.list_documents(G)) == 5
        assert len(await store.audit_log(G, limit=50)) == 5  # one audit row per add that landed
    finally:
        await store.close()


async def test_concurrent_adds_from_two_processes_cannot_exceed_the_cap(postgres: PostgresBackend) -> None:
    """Two bot processes on one PostgreSQL database, each with a pool of its own connections: the
    caps' count and insert are serialised by the server's lock, not by anything in one process."""
    limits = DocumentLimits(max_documents=5, max_total_bytes=1_000_000, max_document_bytes=1_000_000)
    first, second = (postgres.storage(document_limits=limits, pool_size=6) for _ in range(2))
    await first.open()
    await second.open()
    try:
        results = await asyncio.gather(
            *((first if i % 2 else second).add_document(G, f"d{i}.md", "D", "text", MOD) for i in range(24)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, ValueError)]
        assert len(refused) == 19 and all("5 of 5 documents" in str(r) for r in refused), results
        assert await postgres.rows("SELECT COUNT(*) FROM documents") == [(5,)]
        assert await postgres.rows("SELECT COUNT(*) FROM audit_log WHERE action = 'documents.add'") == [(5,)]
    finally:
        await first.close()
        await second.close()


# -- through the real bot ---------------------------------------------------------------------------
async def test_status_shows_the_servers_use_of_its_caps(standin: DiscordStandin, run_bot: RunBot) -> None:
    mod = standin.find_member("mod")
    upload = standin.add_attachment("notes.txt", b"Notes\n" + b"The bot was set up in 2026. " * 9000)
    async with run_bot():
        before = await invoke(standin, "admin", subcommand="status", member=mod)
        await invoke(standin, "admin", {"file": upload}, subcommand="documents add", member=mod)
        after = await invoke(standin, "admin", subcommand="status", member=mod)
    assert "This server's documents: 0 of 20, 0 of 5 MB" in before.content
    assert "This server's documents: 1 of 20, 0.25 of 5 MB" in after.content


async def test_documents_add_refuses_past_the_caps_and_says_which(
    standin: DiscordStandin, database: Path, backend: Backend
) -> None:
    mod = standin.find_member("mod")
    limits = DocumentLimits(max_documents=2, max_total_bytes=20_000, max_document_bytes=1_000_000)

    async def add(name: str, size: int) -> str:
        text = b"Title\n" + (f"The {name} document says hello. ".encode() * size)[:size]
        upload = standin.add_attachment(name, text, "text/plain")
        sent = await invoke(standin, "admin", {"file": upload}, subcommand="documents add", member=mod)
        return sent.content

    async with bot_on(standin, backend.storage(document_limits=limits), database):
        first = await add("a.txt", 9_000)
        second = await add("b.txt", 5_000)
        third = await add("c.txt", 100)
        too_big = await add("b.txt", 12_000)  # replacing b: 9 kB of a + 12 kB > 20 kB
        replaced = await add("b.txt", 10_000)  # 9 kB + 10 kB fits: b's old size is not counted
        status = await invoke(standin, "admin", subcommand="status", member=mod)
        listed = await invoke(standin, "admin", subcommand="documents list", member=mod)
    assert first.startswith("Added `a.txt`") and second.startswith("Added `b.txt`")
    assert third == (
        "Not added: this server already has 2 of 2 documents; remove one first (`/admin documents remove`)."
    )
    assert too_big == (
        "Not added: `b.txt` is 0.012 MB and this server's other documents already use 0.009 of 0.02 MB; "
        "remove one first or add a smaller file."
    )
    assert replaced.startswith("Added `b.txt`")
    assert "This server's documents: 2 of 2, 0.019 of 0.02 MB" in status.content
    assert "`a.txt`" in listed.content and "`b.txt`" in listed.content and "c.txt" not in listed.content
