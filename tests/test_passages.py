"""Passages: every sentence lands somewhere, nothing over the limit, ids stable."""

import itertools
import re
from pathlib import Path

from bot.engine import Engine
from bot.engine.documents import Block, Document, load_corpus
from bot.engine.passages import MAX_WORDS, make_passages, split_sentences

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def article() -> Document:
    docs, _ = load_corpus(CORPUS)
    return docs[0]


def test_abbreviations_do_not_end_sentences() -> None:
    text = (
        "Musk was amplifying voices such as those of Robert F. Kennedy Jr. and Vivek Ramaswamy. "
        "He resigned after the U.S. withdrew. Dr. Smith agreed. It ended."
    )
    assert split_sentences(text) == [
        "Musk was amplifying voices such as those of Robert F. Kennedy Jr. and Vivek Ramaswamy.",
        "He resigned after the U.S. withdrew.",
        "Dr. Smith agreed.",
        "It ended.",
    ]


def test_sentences_end_after_closing_quotes() -> None:
    text = "He called him “a rocket man.” Musk shot back."
    assert split_sentences(text) == ["He called him “a rocket man.”", "Musk shot back."]


def test_every_sentence_of_the_article_lands_in_a_passage() -> None:
    doc = article()
    passages = make_passages(doc)
    joined = "\n".join(p.text for p in passages)
    for block in doc.blocks:
        for sentence in split_sentences(block.text):
            assert sentence in joined


def test_headings_are_never_passages_but_passages_know_their_section() -> None:
    doc = article()
    passages = make_passages(doc)
    assert not {p.text for p in passages} & set(doc.sections)
    rift = [p for p in passages if p.section == "The Rift Begins"]
    assert rift and rift[0].text.startswith("The seams in their partnership")


def test_positions_and_place() -> None:
    passages = make_passages(article())
    assert [p.position for p in passages] == list(range(1, len(passages) + 1))
    assert {p.total for p in passages} == {len(passages)}
    assert passages[6].place == f"The Rift Begins · passage 7 of {len(passages)}"


def test_no_passage_is_over_the_limit_and_long_paragraphs_are_windowed_with_overlap() -> None:
    sentences = [f"Sentence number {i} has exactly eight words here." for i in range(40)]
    doc = Document(id="long", title="Long", blocks=[Block("", " ".join(sentences))])
    passages = make_passages(doc)
    assert len(passages) > 1
    assert all(p.words <= MAX_WORDS for p in passages)
    for a, b in itertools.pairwise(passages):
        last_of_a = split_sentences(a.text)[-1]
        assert b.text.startswith(last_of_a)  # one sentence of overlap
    assert all(p.words <= MAX_WORDS for p in make_passages(article()))


def test_a_single_sentence_longer_than_the_limit_is_cut_by_words() -> None:
    doc = Document(id="run", title="Run-on", blocks=[Block("", " ".join(["word"] * 300))])
    passages = make_passages(doc)
    assert [p.words for p in passages] == [120, 120, 60]


def test_ids_are_stable_across_runs_and_change_only_with_the_text() -> None:
    first = [p.id for p in make_passages(article())]
    assert first == [p.id for p in make_passages(article())]
    assert len(set(first)) == len(first)
    assert all(re.fullmatch(r"article:[0-9a-f]{10}", i) for i in first)
    doc = article()
    doc.blocks[0] = Block(doc.blocks[0].section, doc.blocks[0].text + " Changed.")
    changed = [p.id for p in make_passages(doc)]
    assert changed[0] != first[0] and changed[1:] == first[1:]


def test_a_passages_sentences_are_cut_as_split_sentences_cuts_them() -> None:
    """The ranker keeps each sentence as offsets into its passage; they give back the text."""
    engine = Engine.from_path(CORPUS)
    for pid, passage in enumerate(engine.passages):
        assert engine.ranker.sentences_of(pid) == split_sentences(passage.text)
