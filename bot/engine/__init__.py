"""The answer engine: corpus -> passages -> BM25 index -> answers. Knows nothing of Discord."""

from .answers import Answer, Hit
from .documents import CorpusError, Document, LoadError, load_corpus, parse_text
from .engine import Engine, EngineStats
from .index import BM25Index, BM25Params
from .passages import Passage

__all__ = [
    "Answer",
    "BM25Index",
    "BM25Params",
    "CorpusError",
    "Document",
    "Engine",
    "EngineStats",
    "Hit",
    "LoadError",
    "Passage",
    "load_corpus",
    "parse_text",
]
