"""Documents: loading ``.txt`` and ``.md`` files into titled, sectioned blocks of text.

``.txt`` follows the article's convention: one paragraph a line; a short line that is not a
sentence ("The Rift Begins", "What Happens Next?") is a section heading.
``.md``: ``#`` headings outside code fences; paragraphs are separated by blank lines.
Both may start with front matter (``---`` lines around ``title:``, ``source:``, ``date:``).

A file that cannot be read (empty, binary, not UTF-8) becomes a ``LoadError`` naming the file and
the reason; the other files still load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = (".txt", ".md")
MAX_HEADING_WORDS = 10
_SENTENCE_END = (*".,;:!\"')]", "”", "’")  # a line ending like this is a sentence, not a heading


class CorpusError(Exception):
    """Nothing usable could be loaded (missing folder, no readable document)."""


@dataclass(frozen=True, slots=True)
class LoadError:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Block:
    section: str  # the heading above this paragraph ("" before the first heading)
    text: str


@dataclass(slots=True)
class Document:
    id: str  # short, unique in an index, used in passage ids: "article"
    title: str
    source: str = ""
    date: str = ""
    sections: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "document"


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, min(len(lines), 40)):
        if lines[end].strip() == "---":
            meta = {}
            for line in lines[1:end]:
                key, sep, value = line.partition(":")
                if sep:
                    meta[key.strip().lower()] = value.strip().strip("\"'")
            return meta, "\n".join(lines[end + 1 :])
    return {}, text


def _is_txt_heading(line: str) -> bool:
    words = line.split()
    return 0 < len(words) <= MAX_HEADING_WORDS and not line.rstrip().endswith(_SENTENCE_END)


def parse_text(text: str, *, doc_id: str, default_title: str, markdown: bool) -> Document:
    """Parse a document's text (already decoded) into sections and paragraph blocks."""
    meta, body = _split_front_matter(text.replace("\r\n", "\n").replace("\r", "\n"))
    doc = Document(
        id=doc_id, title=meta.get("title", ""), source=meta.get("source", ""), date=meta.get("date", "")
    )
    section = ""
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            doc.blocks.append(Block(section, " ".join(paragraph)))
            paragraph.clear()

    def heading(title: str) -> None:
        nonlocal section
        flush()
        section = title
        doc.sections.append(title)

    in_fence = False
    for raw in body.split("\n"):
        line = raw.strip()
        if markdown:
            if line.startswith(("```", "~~~")):
                in_fence = not in_fence
                continue
            match = None if in_fence else re.match(r"(#{1,6})\s+(.*?)\s*#*$", line)
            if match:
                if match.group(1) == "#" and not doc.title and not doc.blocks and not doc.sections:
                    doc.title = match.group(2)  # a leading H1 is the document's title
                else:
                    heading(match.group(2))
            elif line:
                paragraph.append(line)
            elif not in_fence:
                flush()
        elif not line:
            continue
        elif _is_txt_heading(line):
            heading(line)
        else:
            doc.blocks.append(Block(section, line))
    flush()
    if not doc.title:
        doc.title = default_title
    return doc


def decode(data: bytes) -> str:
    """Decode a document's bytes, or raise ValueError with a reason a person understands."""
    if not data.strip():
        raise ValueError("empty file")
    if b"\x00" in data[:8192]:
        raise ValueError("binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise ValueError("empty file")
    return text


def load_file(path: Path, doc_id: str | None = None) -> Document:
    """Load one document; raises ValueError (reason only) when it cannot be used."""
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"unsupported file type {path.suffix or '(none)'!r}; use .txt or .md")
    doc = parse_text(
        decode(path.read_bytes()),
        doc_id=doc_id or slugify(path.stem),
        default_title=path.stem.replace("-", " ").replace("_", " ").strip().capitalize() or path.name,
        markdown=path.suffix.lower() == ".md",
    )
    if not doc.blocks:
        raise ValueError("no paragraphs, only headings")
    return doc


def load_corpus(path: str | Path) -> tuple[list[Document], list[LoadError]]:
    """Load a corpus folder (its .txt and .md files, sorted) or a single file."""
    root = Path(path)
    if not root.exists():
        raise CorpusError(f"corpus not found: {root}")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    documents: list[Document] = []
    errors: list[LoadError] = []
    used_ids: set[str] = set()
    for file in files:
        relative = file.relative_to(root) if file != root else Path(file.name)
        if any(part.startswith(".") for part in relative.parts):
            continue  # hidden files (.gitkeep, editor swap files) are not documents
        doc_id = slugify(str(relative.with_suffix("")))
        while doc_id in used_ids:
            doc_id += "-2"
        try:
            documents.append(load_file(file, doc_id))
            used_ids.add(doc_id)
        except (ValueError, OSError) as exc:
            errors.append(LoadError(str(file), str(exc)))
    if not documents:
        reasons = "; ".join(map(str, errors)) or "no .txt or .md files"
        raise CorpusError(f"no readable document in {root} ({reasons})")
    return documents, errors
