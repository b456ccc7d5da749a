"""The bot's library: engines answer at once, lexically, and switch to semantic mode when their
vectors are ready; a server's engine too. Real corpus, real SQLite file, real model."""

from pathlib import Path

from bot.engine import Engine
from bot.library import Library
from bot.storage import SQLiteStorage

ROOT = Path(__file__).resolve().parents[1]
READY = "semantic: available (model all-MiniLM-L6-v2-onnx-int8)"
PARAPHRASE = "What challenges is Trump facing?"  # answered by "legal jeopardy", found by the cosine only


async def test_the_corpus_is_searched_lexically_until_its_vectors_are_ready(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "articlebot.db")
    await storage.open()
    try:
        library = Library(ROOT / "corpus", storage)
        engine = await library.load()
        lexical = Engine.from_path(ROOT / "corpus", semantic=False)
        # Built lexical; its vectors load in a worker thread while it already answers.
        assert engine.mode in ("semantic: vectors being encoded, lexical until then", READY)
        if engine.vectors is None:
            assert engine.ask(PARAPHRASE).to_dict() == lexical.ask(PARAPHRASE).to_dict()
        await library.vectors_ready()
        assert engine.vectors is not None and engine.mode == READY
        assert "legal jeopardy" in engine.ask(PARAPHRASE).hits[0].passage.text
        assert "legal jeopardy" not in lexical.ask(PARAPHRASE, strictness=0.0).hits[0].passage.text

        await storage.add_document(
            1, "faq.md", "FAQ", "# FAQ\n\nThe monthly meetup is held in the Lisbon library.", actor_id=7
        )
        server = await library.for_guild(1)
        assert server is not engine
        await library.vectors_ready()
        assert server.vectors is not None
        assert server.ask("Where is the monthly meetup held?").hits[0].passage.document_id.startswith("g1-")
    finally:
        await storage.close()
