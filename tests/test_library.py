"""The library's cache of per-server engines, against a real SQLite storage."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.library import Library
from bot.storage import SQLiteStorage, StoredDocument

ROOT = Path(__file__).resolve().parents[1]
G = 1
MOD = 100


class PausingStorage(SQLiteStorage):
    """SQLite, but the next ``list_documents`` waits, once it has read, until the test lets it go:
    a change can then land between a build's read and its caching, as under load it can."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.read_done = asyncio.Event()
        self.go_on = asyncio.Event()
        self.pause = False

    async def list_documents(self, guild_id: int) -> list[StoredDocument]:
        found = await super().list_documents(guild_id)
        if self.pause:
            self.pause = False
            self.read_done.set()
            await self.go_on.wait()
        return found


async def test_a_change_during_a_build_is_not_hidden_by_the_stale_engine(tmp_path: Path) -> None:
    storage = PausingStorage(tmp_path / "bot.db")
    await storage.open()
    try:
        library = Library(ROOT / "corpus", storage)
        await library.load()
        storage.pause = True
        building = asyncio.create_task(library.for_guild(G))  # reads: no documents yet
        await storage.read_done.wait()
        # Meanwhile a moderator (or, via NOTIFY, another process) adds a document and forgets.
        await storage.add_document(
            G, "lighthouse.md", "Lighthouse", "The kraken lighthouse is painted teal.", MOD
        )
        library.forget(G)
        storage.go_on.set()
        await building  # built from the old read: fine to answer once from
        engine = await library.for_guild(G)
    finally:
        await storage.close()
    answer = engine.ask("What colour is the kraken lighthouse?", k=1)
    assert answer.answered and "painted teal" in answer.hits[0].passage.text


async def test_adding_a_server_document_reuses_the_corpus_and_the_other_documents(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "bot.db")
    await storage.open()
    try:
        library = Library(ROOT / "corpus", storage)
        base = await library.load()
        await storage.add_document(
            G, "lighthouse.md", "Lighthouse", "The kraken lighthouse is painted teal.", MOD
        )
        library.forget(G)
        first = await library.for_guild(G)
        await storage.add_document(G, "ferry.md", "Ferry", "The ferry to the island leaves at dawn.", MOD)
        library.forget(G)
        second = await library.for_guild(G)
    finally:
        await storage.close()
    assert second.parts[0] is base and first.parts[0] is base  # the corpus is never rebuilt
    assert any(part is first.parts[1] for part in second.parts[1:])  # nor the unchanged document
    assert len(second.parts) == 3
    assert "dawn" in second.ask("When does the ferry leave?", k=1).hits[0].passage.text
    assert "teal" in second.ask("What colour is the kraken lighthouse?", k=1).hits[0].passage.text
