"""The inverted index gives rank-bm25's figures, for the passages that hold a query word."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rank_bm25

from bot.engine import Engine
from bot.engine.analyzer import analyze_pairs
from bot.engine.answers import EXACT, PREFIX, Match, QuestionView, words_of, words_of_pairs
from bot.engine.documents import parse_text
from bot.engine.index import BM25Index, BM25Params, top_k
from bot.engine.passages import split_sentences
from bot.engine.ranking import passage_terms

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
QUERIES = [
    ["musk", "trump"],
    ["hashtag", "trend", "feud"],
    ["x", "call", "x"],  # a repeated query word counts twice, as in rank-bm25
    ["truth", "social", "echo", "chamber"],
    ["unknownword"],
]


@pytest.fixture(scope="module")
def terms() -> list[list[str]]:
    return [passage_terms(p) for p in Engine.from_path(CORPUS).passages]


def _dense(index: BM25Index, query: list[str]) -> dict[int, float]:
    ids, scores = index.score(query)
    return dict(zip(ids.tolist(), scores.tolist(), strict=True))


@pytest.mark.parametrize(("variant", "model"), [("okapi", rank_bm25.BM25Okapi), ("plus", rank_bm25.BM25Plus)])
def test_scores_equal_rank_bm25(variant: str, model: type, terms: list[list[str]]) -> None:
    params = BM25Params(variant=variant, k1=1.2, b=0.75)  # type: ignore[arg-type]
    index = BM25Index.of(terms, params)
    reference = model(terms, k1=1.2, b=0.75)
    for query in QUERIES:
        expected = reference.get_scores(query)
        got = _dense(index, query)
        for pid, score in got.items():
            assert score == pytest.approx(expected[pid], rel=1e-6, abs=1e-9)  # float32 weights
        # Passages without a query word are the ones left out, and only those.
        holding = {i for i, doc in enumerate(terms) if set(query) & set(doc)}
        assert set(got) == holding


def test_the_engines_one_pass_index_equals_rank_bm25_over_its_passages_terms(terms: list[list[str]]) -> None:
    """The ranker builds its main field in one pass over headings and sentences; scored, it must
    be rank-bm25 over each passage's terms (heading, then text)."""
    index = Engine.from_path(CORPUS, semantic=False).index
    reference = rank_bm25.BM25Okapi(terms, k1=1.2, b=0.75)
    for query in [*QUERIES, ["musk"], ["bluesky", "threads", "mastodon"]]:
        expected = reference.get_scores(query)
        got = _dense(index, query)
        assert set(got) == {i for i, doc in enumerate(terms) if set(query) & set(doc)}
        for pid, score in got.items():
            assert score == pytest.approx(expected[pid], rel=1e-6, abs=1e-9)
    assert index.doc_freq == {
        t: sum(1 for doc in terms if t in doc) for t in {t for doc in terms for t in doc}
    }


def test_bm25l_uses_the_published_formula_not_the_released_bug(terms: list[list[str]]) -> None:
    k1, b, delta = 1.2, 0.75, 0.5
    index = BM25Index.of(terms, BM25Params(variant="l", k1=k1, b=b, delta=delta))
    reference = rank_bm25.BM25L(terms, k1=k1, b=b, delta=delta)  # borrowed for its IDF only
    avgdl = sum(map(len, terms)) / len(terms)
    query = ["musk", "musk", "feud"]
    got = _dense(index, query)
    for pid, doc in enumerate(terms):
        expected = 0.0
        for q in query:
            ctd = doc.count(q) / (1 - b + b * len(doc) / avgdl)
            expected += reference.idf.get(q, 0) * (k1 + 1) * (ctd + delta) / (k1 + ctd + delta)
        if pid in got:
            assert got[pid] == pytest.approx(expected, rel=1e-6)
    # The released 0.2.2 multiplies by the term frequency again: its figures differ.
    assert not np.allclose(reference.get_scores(query)[list(got)], list(got.values()))


def test_okapi_floors_common_words_instead_of_going_negative(terms: list[list[str]]) -> None:
    index = BM25Index.of(terms, BM25Params())
    assert index.doc_freq["musk"] > len(terms) / 2
    assert 0 < index.idf["musk"] < index.idf["hashtag"]


def test_top_k_orders_by_score_then_passage() -> None:
    ids = np.array([5, 2, 9, 1], dtype=np.int32)
    scores = np.array([1.0, 3.0, 3.0, 0.5])
    assert top_k(ids, scores, 3) == [(2, 3.0), (9, 3.0), (5, 1.0)]
    assert top_k(ids, scores, 0) == []


def test_empty_passages_do_not_break_the_index() -> None:
    index = BM25Index.of([["a"], [], ["a", "b"]])
    ids, scores = index.score(["b"])
    assert ids.tolist() == [2] and math.isfinite(scores[0])


def test_the_one_pass_date_and_quantity_flags_equal_the_regexes_over_the_text() -> None:
    """The ranker finds dates and quantities token by token (plus the patterns that span tokens);
    that must say what answers.DATE and QUANTITY say over each passage's text."""
    from bot.engine.answers import DATE, QUANTITY
    from bot.engine.documents import parse_text

    tricky = parse_text(
        "Founded in the tenth century, on 3/4 of the land, for $5 or 50% off; a dozen came in 1066.\n"
        "In the 1340s prices rose. On March 3rd. Twenty-one people. Nothing here at all.\n"
        "Mp3 and COVID-19 and 2016 alone.\n",
        doc_id="tricky",
        default_title="tricky",
        markdown=False,
    )
    engine = Engine([*Engine.from_path(CORPUS).documents, tricky], semantic=False)
    ranker = engine.ranker
    assert ranker.has_date.tolist() == [bool(DATE.search(p.text)) for p in engine.passages]
    assert ranker.has_quantity.tolist() == [bool(QUANTITY.search(p.text)) for p in engine.passages]


# Text that takes every path of the build's tokeniser: compatibility characters (a ligature, a
# no-break space, a zero-width space: normalised sentence by sentence), runs of whitespace and
# line breaks, curly quotes and accents (normalised once per passage), hashtags, acronyms,
# possessives, words of punctuation only, a passage with no term at all.
_AWKWARD = (
    "The \ufb01rst fine day. Musk\u2019s #TrumpVsMusk trended in the U.S. and F. Scott\u00a0agreed.\n\n"
    "Caf\u00e9 owners,   na\u00efve\tones\nand more. Of  them, \u2014 all. ! ?\n\n"
    "Zero\u200bwidth words. Hidden ones \u2026\n\n"
    "The Musk-Trump feud: 3/4 of 2022\u2019s posts. It's over. U.S. Then more, said Mr. Smith.\n\n"
    "# \u00c9t\u00e9 heading\n\n"
    "... -- !!!\n\n"
    "Twenty-one people, $5 each, in the tenth century.\n"
)


@pytest.mark.parametrize("chunk", [1, 2, 100_000])
def test_the_chunked_one_pass_build_equals_the_reference_analysis(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build reads passages in chunks of whitespace words and analyses each distinct word
    once; its fields must hold what ``analyze`` gives each passage (heading, then text) and each
    sentence, whatever the chunk size."""
    from bot.engine import ranking
    from bot.engine.analyzer import analyze
    from bot.engine.documents import parse_text
    from bot.engine.passages import make_passages, split_sentences

    monkeypatch.setattr(ranking, "_CHUNK", chunk)
    awkward = parse_text(_AWKWARD, doc_id="awkward", default_title="awkward", markdown=True)
    passages = [p for d in [*Engine.from_path(CORPUS).documents, awkward] for p in make_passages(d)]
    ranker = ranking.Ranker(passages, BM25Params(), ranking.RankingWeights())
    sentences = [analyze(s) for p in passages for s in split_sentences(p.text)]
    for field, reference in [
        (ranker.passages, BM25Index.of([passage_terms(p) for p in passages])),
        (ranker.sentences, BM25Index.of(sentences)),
    ]:
        assert isinstance(field, BM25Index)
        assert field.size == reference.size and field.avgdl == reference.avgdl
        assert field.doc_freq == reference.doc_freq
        for term in reference.vocabulary.terms:
            got, expected = _dense(field, [term]), _dense(reference, [term])
            assert got == pytest.approx(expected, rel=1e-6), term
    assert len(ranker.sentence_owner) == len(sentences)


def test_the_c_stemmer_gives_snowballs_stems() -> None:
    """PyStemmer (Snowball's C build) is what snowballstemmer runs when installed; the pure-Python
    stemmer is the reference."""
    import snowballstemmer
    from snowballstemmer.english_stemmer import EnglishStemmer

    fast, reference = snowballstemmer.stemmer("english"), EnglishStemmer()
    assert type(fast).__module__ == "Stemmer"
    words = {w.lower() for p in Engine.from_path(CORPUS).passages for w in p.text.split()}
    words |= {"served", "serving", "generously", "feudalism", "café", "naïve"}
    assert [fast.stemWord(w) for w in sorted(words)] == [reference.stemWord(w) for w in sorted(words)]


# -- the index on disk ------------------------------------------------------------------------------
def _answers(engine: Engine) -> list[dict[str, object]]:
    from bot.engine.evaluate import load_questions

    questions = load_questions(CORPUS.parent / "evals" / "dev.jsonl")
    return [engine.ask(q["question"], k=5).to_dict() for q in questions]


def test_a_restart_with_unchanged_documents_reads_the_index_from_disk(tmp_path: Path) -> None:
    built = Engine.from_path(CORPUS, vector_cache=tmp_path, index_cache_above=1)
    assert not built.index_from_disk and len(list(tmp_path.glob("index-*"))) == 1
    read = Engine.from_path(CORPUS, vector_cache=tmp_path, index_cache_above=1)
    assert read.index_from_disk
    assert isinstance(read.index.postings.ids, np.memmap)  # mapped, not copied
    assert _answers(read) == _answers(built)
    assert read.ranker.names == built.ranker.names
    assert read.ranker.prefix_doc_freq == built.ranker.prefix_doc_freq
    assert read.index.doc_freq == built.index.doc_freq


def test_changed_documents_are_indexed_again_and_the_old_index_goes(tmp_path: Path) -> None:
    from bot.engine.documents import parse_text

    first = Engine.from_path(CORPUS, vector_cache=tmp_path, index_cache_above=1)
    [old] = tmp_path.glob("index-*")
    article = first.documents[0]
    changed = parse_text(
        (CORPUS / "article.txt").read_text(encoding="utf-8") + "\nA new closing paragraph about Mars.\n",
        doc_id=article.id,
        default_title=article.title,
        markdown=False,
    )
    again = Engine([changed], vector_cache=tmp_path, index_cache_above=1)
    assert not again.index_from_disk
    assert not old.exists() and len(list(tmp_path.glob("index-*"))) == 1
    assert (
        again.ask("What is the closing paragraph about?", strictness=0).hits[0].passage.text.endswith("Mars.")
    )


def test_a_damaged_index_on_disk_is_built_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    Engine.from_path(CORPUS, vector_cache=tmp_path, index_cache_above=1)
    [directory] = tmp_path.glob("index-*")
    (directory / "passages.weights.npy").write_bytes(b"not an array")
    engine = Engine.from_path(CORPUS, vector_cache=tmp_path, index_cache_above=1)
    assert not engine.index_from_disk and "index cache" in caplog.text
    assert engine.ask("Who called Musk a rocket man?").answered


def test_an_index_written_by_other_code_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.engine import engine as engine_module

    Engine.from_path(CORPUS, vector_cache=tmp_path, index_cache_above=1)
    monkeypatch.setattr(engine_module, "_index_code", lambda: "another release")
    assert not Engine.from_path(CORPUS, vector_cache=tmp_path, index_cache_above=1).index_from_disk


def test_top_k_keeps_the_lowest_ids_among_ties_at_the_kth_score() -> None:
    # Many passages tied at the cut (repeated text): which of them argpartition keeps is arbitrary.
    rng = np.random.default_rng(3)
    ids = rng.permutation(200).astype(np.int32)
    scores = np.where(ids < 3, 2.0, 1.0)
    assert top_k(ids, scores, 10) == [(0, 2.0), (1, 2.0), (2, 2.0)] + [(i, 1.0) for i in range(3, 10)]


def test_terms_whose_idf_is_zero_or_below_still_find_their_passages() -> None:
    """In two passages, a word of one has an IDF of exactly 0 and a word of both a negative one
    (BM25Okapi's floor, epsilon x a negative mean): their passages still count as matched."""
    terms = [["a", "b"], ["b"]]
    index = BM25Index.of(terms)
    expected = rank_bm25.BM25Okapi(terms, k1=1.2, b=0.75).get_scores(["a", "b"])
    got = _dense(index, ["a", "b"])
    assert set(got) == {0, 1}
    for pid, score in got.items():
        assert score == pytest.approx(expected[pid], rel=1e-6, abs=1e-9)


def _analysed(engine: Engine, pid: int) -> tuple[Any, list[tuple[str, Any]]]:
    passage = engine.passages[pid]
    whole = words_of_pairs(analyze_pairs(passage.section) + analyze_pairs(passage.text))
    return whole, [(s, words_of(s)) for s in split_sentences(passage.text)]


def _built_read_and_layered(tmp_path: Path, server_text: str) -> tuple[Engine, Engine, Engine]:
    """The article's engine as built, as read back from its index on disk, and with a server's
    Markdown document ``server_text`` as a layer beside it."""
    built = Engine.from_path(CORPUS, semantic=False, vector_cache=tmp_path, index_cache_above=1)
    read = Engine.from_path(CORPUS, semantic=False, vector_cache=tmp_path, index_cache_above=1)
    assert read.index_from_disk
    extra = parse_text(server_text, doc_id="notes", default_title="Notes", markdown=True)
    return built, read, built.with_documents([extra])


def test_the_forward_index_holds_what_analysing_a_hits_text_gives(tmp_path: Path) -> None:
    """The decision reads a hit's words and its sentences' words from the forward index: the same
    as tokenising the text again, built, read back from disk, and in a server's layered engine."""
    engines = _built_read_and_layered(
        tmp_path, "# Launch\n\nThe rocket flew on 4 July 2023. Musk cheered.\n\nNo more."
    )
    for engine in engines:
        for pid in range(len(engine.passages)):
            whole, sentences = _analysed(engine, pid)
            assert engine.ranker.words(pid) == whole
            assert engine.ranker.sentence_words(pid) == sentences


def test_what_a_hit_holds_of_a_question_is_what_its_words_hold(tmp_path: Path) -> None:
    """``Ranker.matches`` compares ids in the forward index, every hit at once: for each question
    word, the same exact / prefix / missing as the hit's analysed words and each sentence's, in a
    built, a read-back and a layered engine, in any order of hits and layers."""
    engines = _built_read_and_layered(
        tmp_path, "# Launch\n\nThe rocket flew on 4 July 2023. Musk cheered the responders.\n\nNo more."
    )
    questions = [json.loads(line)["question"] for line in (ROOT / "evals" / "dev.jsonl").open()]
    questions += ["Who cheered the rocket launch responses?", "Musk responding zzzunknown"]
    seen: set[int] = set()
    for engine in engines:
        pids = list(range(len(engine.passages)))[::-1]  # the last layer's first
        for question in questions:
            q = QuestionView.of(question, engine.decider)
            for pid, (passage, sentences) in zip(pids, engine.ranker.matches(q, pids), strict=True):
                whole, analysed = _analysed(engine, pid)
                assert passage.held == Match.of(q, whole).held
                seen.update(passage.held)
                assert passage.terms == (whole.terms if q.expects_name else frozenset())
                assert [(s, m.held) for s, m in sentences] == [(s, Match.of(q, w).held) for s, w in analysed]
    assert seen == {EXACT, PREFIX, 0}  # every case met


def test_each_sentence_posting_knows_its_passage_built_and_read_back(tmp_path: Path) -> None:
    """The best sentence per passage reads each touched sentence posting's passage as slices of
    ``posting_owner``: the same passages as looking each sentence up, in a built, a read-back and
    a layered engine (whose field reads by sentence id)."""
    engines = _built_read_and_layered(tmp_path, "# Launch\n\nThe rocket flew in 2023. Musk cheered.")
    questions = [json.loads(line)["question"] for line in (ROOT / "evals" / "dev.jsonl").open()]
    for engine in engines:
        ranker = engine.ranker
        for question in [*questions, "rocket Musk Trump Musk"]:
            terms = QuestionView.of(question).query
            sentence_ids, _ = ranker.sentences.posting_scores(terms)
            owners = ranker._owners(terms, sentence_ids)
            assert owners.tolist() == ranker.sentence_owner[sentence_ids].tolist()
    built = engines[0].ranker
    assert len(built.posting_owner) == len(built.sentences.postings.ids)  # type: ignore[union-attr]


@pytest.mark.parametrize("levels", [3, 50, 0])
def test_top_k_over_many_scores_is_a_full_sort_s_first_k(levels: int) -> None:
    """Above a few thousand scores, top_k first drops what cannot reach the k-th score (block
    maxima): the result must still be exactly the head of a sort by score, then id, ties included
    (``levels`` distinct scores, 0: all distinct)."""
    rng = np.random.default_rng(levels)
    n = 50_000
    scores = rng.integers(0, levels, n).astype(np.float64) if levels else rng.gamma(2.0, 1.0, n)
    ids = np.sort(rng.choice(200_000, n, replace=False)).astype(np.intp)
    for k in (1, 10, 12):
        expected = sorted(zip(ids.tolist(), scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))[:k]
        assert top_k(ids, scores, k) == expected
