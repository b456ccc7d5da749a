"""A server's documents as layers beside the shared corpus: the same answers as one index over all
of them, and adding a document builds that document only."""

import json
from pathlib import Path

import numpy as np
import pytest

from bot.engine import Engine
from bot.engine import engine as engine_module
from bot.engine.documents import Document, load_corpus, parse_text
from bot.engine.evaluate import load_questions
from bot.engine.fusion import LayeredVectors
from bot.engine.index import BM25Params, CompactVocabulary, Vocabulary, _CompactIds, _CompactTerms
from bot.engine.passages import make_passages
from bot.engine.ranking import LayeredRanker, Ranker, RankingWeights, compact_layer, passage_terms
from bot.engine.semantic import shared_embedder

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
FAQ = ROOT / "tests" / "corpora" / "faq_bikeshop.md"


def documents(path: Path) -> list[Document]:
    found, errors = load_corpus(path)
    assert not errors
    return found


def note(name: str, text: str) -> Document:
    return parse_text(text, doc_id=f"guild-1-{name}", default_title=name, markdown=True)


def questions() -> list[str]:
    asked = [
        q["question"] for n in ("dev", "heldout2") for q in load_questions(ROOT / "evals" / f"{n}.jsonl")
    ]
    faq = (ROOT / "tests" / "corpora" / "faq_bikeshop.jsonl").read_text(encoding="utf-8").splitlines()
    return asked + [json.loads(line)["question"] for line in faq if line.strip()]


@pytest.mark.parametrize("variant", ["okapi", "plus", "l"])
def test_layered_fields_score_as_one_index_over_every_layer(variant: str) -> None:
    params = BM25Params(variant=variant)  # type: ignore[arg-type]
    article = [p for d in documents(CORPUS) for p in make_passages(d)]
    faq = [p for d in documents(FAQ) for p in make_passages(d)]
    server_layer = Ranker(faq, params, RankingWeights())
    compact_layer(server_layer)  # as a server's engine keeps its documents' layers
    layered = LayeredRanker([Ranker(article, params, RankingWeights()), server_layer])
    whole = Ranker(article + faq, params, RankingWeights())
    for question in ["Who called Musk a rocket man?", "How much does the bike cost?", "musk trump x bike"]:
        terms = passage_terms(make_passages(note("q", question))[0])
        for field in ("passages", "sentences"):
            got_ids, got = getattr(layered, field).score(terms)
            want_ids, want = getattr(whole, field).score(terms)
            expected = dict(zip(want_ids.tolist(), want.tolist(), strict=True))
            assert set(got_ids.tolist()) == set(expected)
            for pid, score in zip(got_ids.tolist(), got.tolist(), strict=True):
                assert score == pytest.approx(expected[pid], rel=1e-6)
    assert layered.names == whole.names
    assert dict(layered.prefix_doc_freq) == whole.prefix_doc_freq
    assert layered.has_date.tolist() == whole.has_date.tolist()
    assert layered.sentence_start.tolist() == whole.sentence_start.tolist()


@pytest.mark.parametrize("semantic", [False, True], ids=["lexical", "semantic"])
def test_a_server_engine_answers_as_one_engine_over_every_document(semantic: bool) -> None:
    base = Engine(documents(CORPUS), semantic=semantic)
    layered = base.with_documents(documents(FAQ))
    whole = Engine(documents(CORPUS) + documents(FAQ), semantic=semantic)
    assert [part.documents for part in layered.parts] == [base.documents, documents(FAQ)]
    assert layered.parts[0] is base  # shared, not rebuilt
    for question in questions():
        got, want = layered.ask(question, k=5), whole.ask(question, k=5)
        assert (got.answered, got.reason, got.sentence) == (want.answered, want.reason, want.sentence)
        assert [h.passage.id for h in got.hits] == [h.passage.id for h in want.hits]
        assert [h.score for h in got.hits] == pytest.approx([h.score for h in want.hits], rel=1e-5)
        assert [h.confidence for h in got.hits] == pytest.approx([h.confidence for h in want.hits], abs=1e-4)


def test_adding_a_document_builds_that_document_only() -> None:
    base = Engine(documents(CORPUS), semantic=False)
    rules = note("rules", "# Rules\n\nBe kind. The monthly meetup is held in the Lisbon library.")
    first = base.with_documents([rules])
    hours = note("hours", "# Hours\n\nThe shop opens at nine and closes at six on weekdays.")
    second = base.with_documents([rules, hours], previous=first)
    assert second.parts[0] is base and second.parts[1] is first.parts[1]  # reused as they were
    # Grown from the engine before, its statistics are those of one index over everything.
    whole = Engine([*base.documents, rules, hours], semantic=False)
    for question in ("When does the shop open?", "Who called Musk a rocket man?", "the library and X"):
        got, want = second.ask(question, k=5), whole.ask(question, k=5)
        assert [h.passage.id for h in got.hits] == [h.passage.id for h in want.hits]
        assert [h.score for h in got.hits] == pytest.approx([h.score for h in want.hits], rel=1e-6)
    assert second.ask("When does the shop open?").hits[0].passage.document_id == "guild-1-hours"
    assert second.ask("Where is the monthly meetup held?").hits[0].passage.document_id == "guild-1-rules"
    # A changed document is a new layer; the others stay.
    rules_changed = note("rules", "# Rules\n\nBe kind. The monthly meetup is held in the Porto library.")
    third = base.with_documents([rules_changed, hours], previous=second)
    assert third.parts[1] is not second.parts[1] and third.parts[2] is second.parts[2]
    assert "Porto" in third.ask("Where is the monthly meetup held?").hits[0].passage.text


def test_a_server_engines_vectors_are_its_layers_not_a_copy(tmp_path: Path) -> None:
    embedder = shared_embedder()
    base = Engine(documents(CORPUS), vector_cache=tmp_path)
    before = embedder.texts_encoded
    server = base.with_documents(documents(FAQ))
    assert isinstance(server.vectors, LayeredVectors) and server.vectors.layers[0] is base.vectors
    faq = server.parts[1]
    texts = {p.text for p in faq.passages} | {s for group in faq.ranker.sentence_texts for s in group}
    assert embedder.texts_encoded - before == len(texts)  # the FAQ's passages and sentences only


def test_a_document_indexed_in_a_worker_process_answers_as_one_indexed_here(tmp_path: Path) -> None:
    base = Engine(documents(CORPUS), semantic=False, vector_cache=tmp_path)
    apart = base.with_documents(documents(FAQ), process_above=0)
    here = base.with_documents(documents(FAQ), process_above=10**9)
    # The worker's index is what the layer maps; the other layer was built in this process.
    assert [part.index_from_disk for part in apart.parts[1:]] == [True]
    assert [part.index_from_disk for part in here.parts[1:]] == [False]
    for question in questions():
        got, want = apart.ask(question, k=5), here.ask(question, k=5)
        assert (got.answered, got.reason, got.sentence) == (want.answered, want.reason, want.sentence)
        assert [(h.passage.id, h.score, h.confidence) for h in got.hits] == [
            (h.passage.id, h.score, h.confidence) for h in want.hits
        ]


def test_a_compact_vocabulary_finds_what_the_vocabulary_holds() -> None:
    terms = ["musk", "café", "", "#tag", "x"] + [f"t{i}" for i in range(1000)]
    compact = CompactVocabulary(Vocabulary(terms))
    assert len(compact) == len(terms) and list(compact.terms) == terms
    assert [compact.ids.get(t) for t in terms] == list(range(len(terms)))
    assert compact.ids.get("trump") is None and "trump" not in compact.ids and "musk" in compact.ids
    with pytest.raises(KeyError):
        compact.ids["trump"]


def test_compact_ids_tell_terms_of_equal_hash_apart_by_their_text() -> None:
    terms = CompactVocabulary(Vocabulary(["alpha", "beta", "gamma"])).terms
    assert isinstance(terms, _CompactTerms)
    ids = _CompactIds(np.asarray([7, 7, 9], dtype=np.int64), np.asarray([1, 0, 2], dtype=np.int32), terms)
    found = ids.find(np.asarray([7, 7, 7, 9], dtype=np.int64), ["alpha", "beta", "delta", "gamma"])
    assert found.tolist() == [0, 1, -1, 2]


def test_a_worker_that_fails_means_the_document_is_indexed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engine_module, "WORKER_TIMEOUT", 0.001)  # stopped before it starts
    base = Engine(documents(CORPUS), semantic=False, vector_cache=tmp_path)
    server = base.with_documents(documents(FAQ), process_above=0)
    assert "indexing 1 documents in a worker failed" in caplog.text
    whole = Engine(documents(CORPUS) + documents(FAQ), semantic=False)
    question = "How much does the bike cost?"
    assert [h.passage.id for h in server.ask(question).hits] == [
        h.passage.id for h in whole.ask(question).hits
    ]
