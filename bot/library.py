"""The engines the bot answers from: the shared corpus, plus each server's own documents.

A server's documents are searched together with the corpus for that server only, so each server
with documents gets its own engine, built off the event loop and cached until its documents change.
Engines are built lexical and answer at once; their vectors are read or encoded in a worker thread
afterwards, and the engine answers in semantic mode from the question after they are ready.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from .engine import Document, Engine, parse_text
from .engine.documents import slugify
from .storage import Storage, StoredDocument


def server_document_id(guild_id: int, name: str) -> str:
    """``g<server>-<name>``, short enough that a passage id fits a button's 100-character custom id."""
    slug = slugify(name)
    if len(slug) > 40:
        slug = f"{slug[:33]}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"
    return f"g{guild_id}-{slug}"


def server_document(stored: StoredDocument) -> Document:
    """A stored server document as an engine document; ids never collide with the corpus's."""
    return parse_text(
        stored.text,
        doc_id=server_document_id(stored.guild_id, stored.name),
        default_title=stored.title or stored.name,
        markdown=stored.name.lower().endswith(".md"),
    )


class Library:
    def __init__(self, corpus: Path, storage: Storage) -> None:
        self.corpus = corpus
        self.storage = storage
        self.base: Engine | None = None
        self.loaded_at = 0.0  # time.time() of the last corpus load
        self._servers: dict[int, Engine] = {}
        # Bumped by forget: an engine built from documents read before a change is not cached.
        self._generations: dict[int, int] = {}
        self._lock = asyncio.Lock()
        self._encoding: set[asyncio.Task[bool]] = set()  # vectors being read or encoded
        # A server's engine before its documents changed: the next one reuses its unchanged layers.
        self._previous: dict[int, Engine] = {}

    async def load(self) -> Engine:
        """(Re)read the corpus from disk in a worker thread; the event loop keeps serving."""
        engine = await asyncio.to_thread(Engine.from_path, self.corpus, defer_vectors=True)
        async with self._lock:
            self.base, self.loaded_at = engine, time.time()
            self._servers.clear()
            self._previous.clear()  # layers over the old corpus
        self._load_vectors(engine)
        return engine

    def _load_vectors(self, engine: Engine) -> None:
        """Vectors in a worker thread: the engine answers lexically until they are ready."""
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(engine.load_vectors))
        self._encoding.add(task)
        task.add_done_callback(self._encoding.discard)

    async def vectors_ready(self) -> None:
        """Wait for every engine's vectors (tests, and a clean shutdown)."""
        while self._encoding:
            await asyncio.gather(*self._encoding, return_exceptions=True)

    async def for_guild(self, guild_id: int | None) -> Engine:
        base = self.base or await self.load()
        if guild_id is None:
            return base
        if (cached := self._servers.get(guild_id)) is not None:
            return cached
        generation = self._generations.get(guild_id, 0)
        stored = await self.storage.list_documents(guild_id)
        engine = (
            await asyncio.to_thread(
                base.with_documents,
                [server_document(d) for d in stored],
                defer_vectors=True,
                previous=self._previous.get(guild_id),
            )
            if stored
            else base
        )
        if engine is not base:
            self._load_vectors(engine)
        async with self._lock:
            # A reload, or a change to the server's documents (here or in another process), in
            # the meantime makes this engine stale: answer from it once, build again next time.
            if self.base is base and self._generations.get(guild_id, 0) == generation:
                self._servers[guild_id] = engine
                self._previous.pop(guild_id, None)
        return engine

    def is_ready(self, guild_id: int | None) -> bool:
        """Whether ``for_guild`` would answer at once, without building an index first."""
        return self.base is not None and (guild_id is None or guild_id in self._servers)

    def forget(self, guild_id: int) -> None:
        """The server's documents changed: its engine is rebuilt on next use."""
        self._generations[guild_id] = self._generations.get(guild_id, 0) + 1
        engine = self._servers.pop(guild_id, None)
        if engine is not None and self.base is not None and engine.parts[:1] == [self.base]:
            self._previous[guild_id] = engine

    def sources(self, engine: Engine) -> dict[str, str]:
        return {d.id: d.source for d in engine.documents if d.source}
