"""Loading documents: sections, front matter, and clear errors for files that cannot be used."""

from pathlib import Path

import pytest

from bot.engine.documents import CorpusError, load_corpus, parse_text

ARTICLE = Path(__file__).resolve().parents[1] / "corpus" / "article.txt"


def test_the_article_loads_with_its_title_and_sections() -> None:
    docs, errors = load_corpus(ARTICLE.parent)
    assert errors == []
    [doc] = docs
    assert doc.id == "article"
    assert doc.title.startswith("Musk vs. Trump")
    assert doc.sections == [
        "From Admiration to Agitation",
        "The Rift Begins",
        "X-Rated Social Media Outburst: X Loses It",
        "The Battle of Platforms",
        "Echoes of a Bigger Problem",
        "What Happens Next?",
        "The Final Act?",
    ]
    assert doc.blocks[0].section == ""
    assert doc.blocks[-1].text == "In the end, maybe it’s both."  # a short line that is a sentence


def test_markdown_headings_paragraphs_and_front_matter() -> None:
    text = (
        "---\ntitle: Server FAQ\nsource: https://example.org/faq\ndate: 2026-01-02\n---\n"
        "# Ignored title heading\n\nIntro line one\ncontinues here.\n\n## Rules\n\nBe kind.\n\n"
        "```\n# not a heading inside a fence\n```\n"
    )
    doc = parse_text(text, doc_id="faq", default_title="faq", markdown=True)
    assert (doc.title, doc.source, doc.date) == ("Server FAQ", "https://example.org/faq", "2026-01-02")
    assert doc.sections == ["Ignored title heading", "Rules"]
    assert doc.blocks[0].text == "Intro line one continues here."
    assert all("not a heading" not in s for s in doc.sections)


def test_markdown_leading_h1_is_the_title_when_there_is_no_front_matter() -> None:
    doc = parse_text("# Guide\n\n## Part\n\nText.", doc_id="g", default_title="g", markdown=True)
    assert doc.title == "Guide"
    assert doc.sections == ["Part"]


def test_bad_files_are_reported_by_name_and_the_rest_still_load(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("A heading\nA paragraph that is a sentence.\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "latin1.md").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    docs, errors = load_corpus(tmp_path)
    assert [d.id for d in docs] == ["good"]
    reasons = {Path(e.path).name: e.reason for e in errors}
    assert reasons["empty.txt"] == "empty file"
    assert "binary" in reasons["binary.txt"]
    assert "not UTF-8" in reasons["latin1.md"]
    assert "unsupported file type" in reasons["image.png"]


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="corpus not found"):
        load_corpus(tmp_path / "nope")


def test_a_folder_with_nothing_readable_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="no readable document"):
        load_corpus(tmp_path)


def test_hidden_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("Some text here.\n", encoding="utf-8")
    (tmp_path / ".gitkeep").write_text("", encoding="utf-8")
    docs, errors = load_corpus(tmp_path)
    assert len(docs) == 1 and errors == []
