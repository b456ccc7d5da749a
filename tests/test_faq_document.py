"""A new user's own document beside the article: the bike shop's FAQ (tests/corpora/faq_bikeshop.md).

Ranking only (``strictness=0``, so the decision cannot hide a wrong top passage), in semantic and
in lexical mode. The questions are the ones issue 8 reports from a user's FAQ."""

from pathlib import Path

import pytest

from bot.engine import Engine
from bot.engine.documents import load_corpus, load_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["semantic", "lexical"])
def engine(request: pytest.FixtureRequest) -> Engine:
    article, _ = load_corpus(ROOT / "corpus")
    faq = load_file(ROOT / "tests" / "corpora" / "faq_bikeshop.md", "faq")
    built = Engine([*article, faq], semantic=request.param == "semantic")
    assert (built.vectors is not None) == (request.param == "semantic"), built.mode
    return built


def top_passage(engine: Engine, question: str) -> str:
    answer = engine.ask(question, strictness=0.0)
    assert answer.hits, answer.reason
    return answer.hits[0].passage.text


@pytest.mark.parametrize("question", ["What does the cafe serve?", "What does the café serve?"])
def test_the_cafe_question_finds_the_cafe_not_musk_serving_on_councils(engine: Engine, question: str) -> None:
    # The FAQ writes "café"; typed without the accent it used to be a word the corpus never uses,
    # leaving "serve" alone to match "Musk had served on Trump's business advisory councils".
    top = top_passage(engine, question)
    assert "Our café at the back of the shop" in top
    assert "advisory councils" not in top


def test_the_range_question_finds_the_battery_paragraph(engine: Engine) -> None:
    assert "lasts up to 90 km" in top_passage(engine, "How far can I ride on a single charge?")


@pytest.mark.xfail(
    strict=True,
    reason="known limit, not the analyzer's: 'Delivery costs €35 per bike' holds both words of the "
    "question, the price paragraph neither 'cost' nor anything the cosine prefers (docs/ENGINE.md)",
)
def test_the_price_question_finds_the_price_paragraph(engine: Engine) -> None:
    assert "e-bike is €2,490" in top_passage(engine, "How much does the bike cost?")
