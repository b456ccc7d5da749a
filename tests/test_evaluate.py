"""Scoring: SQuAD 2.0 files by ../shared/eval/README.md's rules, format detection, calibration error."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Engine
from bot.engine.evaluate import (
    calibration_error,
    evaluate_squad,
    is_squad,
    paragraph_of_passages,
    parse_squad,
    read_text,
    reliability_table,
    squad_document,
)

ROOT = Path(__file__).resolve().parents[1]
SQUAD_PUBLIC = Path(__file__).resolve().parents[2] / "shared/eval/squad2-public.json"

# 13 sentences, 167 words: longer than a passage, so the engine cuts it into two windows, and the
# answer to a1 is only in the second one.
LONG_PARAGRAPH = " ".join(
    [
        "The Volta electric bike was designed by a small team of engineers in 2019.",
        "Its frame is made of recycled aluminium and weighs very little.",
        "The motor sits in the rear wheel hub and makes almost no noise.",
        "Riders choose between three levels of assistance with a thumb switch.",
        "The lights switch on by themselves when the evening gets dark.",
        "A small screen on the handlebar shows speed and the remaining charge.",
        "Tyres are wide enough for cobbled streets and gravel paths alike.",
        "Every bike is tested on a rolling road for an hour before it ships.",
        "Mudguards and a rear rack come fitted as standard on every model.",
        "The saddle and handlebar can be adjusted without any tools at all.",
        "Owners get software updates for the motor through a phone app.",
        "Spare parts are kept in stock for at least ten years after sale.",
        "The first Volta factory opened in Braga in March 2021.",
    ]
)


def qa(qid: str, question: str, *answers: str) -> dict[str, Any]:
    return {
        "id": qid,
        "question": question,
        "is_impossible": not answers,
        "answers": [{"text": a, "answer_start": 0} for a in answers],
    }


def tiny_squad() -> dict[str, Any]:
    """Two articles whose outcomes are plain to see (worked out beside each question)."""
    volta = [
        (
            LONG_PARAGRAPH,
            [
                qa("a1", "Where did the first Volta factory open?", "Braga"),  # rank 1: the second window
                qa("a1x", "Where did the second Volta factory open?"),  # unanswerable, answered
                qa("a5", "Which town hosts the earliest plant?", "Braga"),  # no word known: declined
            ],
        ),
        (
            "A Volta bike costs 1,200 euros. Delivery to any address in Portugal costs 40 euros.",
            [qa("a2", "How much does delivery cost?", "40 euros")],  # rank 1
        ),
        (
            "The battery gives a range of 80 kilometres on a single charge. A full charge takes four hours.",
            [qa("a3", "How long does a full charge take?", "four hours")],  # rank 1
        ),
        (
            "Visitors to the city can rent a Volta for 10 euros a day.",
            [
                # The price paragraph above ranks first and holds "euros" too, but it is not this
                # question's paragraph: rank 2, and its answer sentence does not count.
                qa("a4", "How much does a Volta cost?", "euros"),
                qa("a4x", "Who won the 1998 World Cup?"),  # declined, no passage at all
            ],
        ),
    ]
    gouda = [
        (
            "Gouda is a Dutch cheese made from cow milk. It is named after the city of Gouda in Holland.",
            [
                qa("b1", "What milk is Gouda made from?", "cow milk"),  # rank 1; declined by Volta
                qa("b3", "What is named after a city?", "Gouda"),  # rank 1; Volta has a city: answered
            ],
        ),
        (
            "Young Gouda is aged for four weeks, while old Gouda is aged for more than a year.",
            [
                qa("b2", "How long is young Gouda aged?", "four weeks"),  # rank 1
                qa("b2x", "How long is smoked Gouda aged?"),  # unanswerable, answered
            ],
        ),
    ]
    return {
        "version": "v2.0",
        "data": [
            {"title": title, "paragraphs": [{"context": c, "qas": q} for c, q in paragraphs]}
            for title, paragraphs in (("Volta_bike", volta), ("Gouda", gouda))
        ],
    }


# Whether each question's top passage answers it (its own paragraph, an answer string): by hand.
TOP_CORRECT = {
    "a1": True, "a1x": False, "a5": False, "a2": True, "a3": True, "a4": False, "a4x": False,
    "b1": True, "b3": True, "b2": True, "b2x": False,
}  # fmt: skip


def test_reliability_and_calibration_error_on_known_inputs() -> None:
    samples = [(0.95, True), (0.95, False), (0.15, False), (0.15, False), (1.0, True), (0.0, False)]
    table = reliability_table(samples)
    assert len(table) == 10 and [b.count for b in table] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 3]
    last = table[9]  # 1.0 belongs to the last bin, not an eleventh
    assert last.mean_confidence == pytest.approx((0.95 + 0.95 + 1.0) / 3) and last.accuracy == pytest.approx(
        2 / 3
    )
    assert table[2].mean_confidence is None and table[2].accuracy is None
    # |2/3 - 0.9667| * 3/6 + |0 - 0.15| * 2/6 + |0 - 0| * 1/6
    assert calibration_error(table) == pytest.approx(0.3 * 3 / 6 + 0.15 * 2 / 6)
    assert calibration_error(reliability_table([(0.7, True)] * 7 + [(0.7, False)] * 3)) == pytest.approx(0)
    assert calibration_error(reliability_table([])) == 0.0


def test_the_format_is_told_by_content_not_by_name() -> None:
    squad = tiny_squad()
    assert is_squad(json.dumps(squad)) and is_squad(json.dumps(squad, indent=2))
    assert not is_squad(read_text(ROOT / "evals" / "dev.jsonl"))
    one_line = json.dumps({"id": "x", "question": "Who owns X?", "answerable": True, "evidence": ["Musk"]})
    assert not is_squad(one_line) and not is_squad("[]") and not is_squad("")


def test_a_squad_article_is_parsed_like_a_users_txt(tmp_path: Path) -> None:
    article = parse_squad(json.dumps(tiny_squad()))[0]
    document = squad_document(article)
    assert document.title == "Volta bike" and len(document.blocks) == 4
    text = "---\ntitle: Volta bike\n---\n" + "\n".join(p.context for p in article.paragraphs)
    (tmp_path / "volta.txt").write_text(text, encoding="utf-8")
    as_file = Engine.from_path(tmp_path / "volta.txt")
    engine = Engine([document])
    assert [p.text for p in engine.passages] == [p.text for p in as_file.passages]
    # The long first paragraph is two windows; each later passage still knows its paragraph.
    assert paragraph_of_passages(article, document, engine) == [0, 0, 1, 2, 3]


def test_squad_scoring_per_article_and_pooled() -> None:
    report = evaluate_squad(parse_squad(json.dumps(tiny_squad())))
    (volta_title, volta), (gouda_title, gouda) = report.articles
    assert (volta_title, gouda_title) == ("Volta bike", "Gouda")
    assert {r.id: r.rank for r in volta.results if r.kind == "answerable"} == {
        "a1": 1, "a5": None, "a2": 1, "a3": 1, "a4": 2,
    }  # fmt: skip
    v = volta.figures()
    assert (v["questions"], v["other_article_questions"]) == (7, 3)
    assert v["hit@1"] == pytest.approx(3 / 5) and v["hit@3"] == pytest.approx(4 / 5)
    assert v["mrr@5"] == pytest.approx((1 + 1 + 1 + 1 / 2) / 5)
    assert v["sentence_hit@1"] == pytest.approx(3 / 5)  # not a4's sentence from the wrong paragraph
    assert v["declined_unanswerable"] == pytest.approx(1 / 2)
    assert v["declined_other_article"] == pytest.approx(2 / 3)  # b3 answered
    assert v["wrongly_declined"] == pytest.approx(1 / 5)
    g = gouda.figures()
    assert (g["questions"], g["other_article_questions"]) == (4, 5)
    assert (g["hit@1"], g["hit@3"], g["mrr@5"], g["sentence_hit@1"]) == (1.0, 1.0, 1.0, 1.0)
    assert (g["declined_unanswerable"], g["declined_other_article"], g["wrongly_declined"]) == (0.0, 1.0, 0.0)

    # Micro-averaged: pooled questions, not the mean of the two articles (that would be 0.8 for hit@1).
    o = report.overall.figures()
    assert (o["questions"], o["other_article_questions"]) == (11, 8)
    assert o["hit@1"] == pytest.approx(6 / 8) and o["hit@3"] == pytest.approx(7 / 8)
    assert o["mrr@5"] == pytest.approx(6.5 / 8) and o["sentence_hit@1"] == pytest.approx(6 / 8)
    assert o["declined_unanswerable"] == pytest.approx(1 / 3)
    assert o["declined_other_article"] == pytest.approx(7 / 8)
    assert o["wrongly_declined"] == pytest.approx(1 / 8)

    # Calibration: the articles' own questions only, labelled by hand; no passage = confidence 0.
    own = report.overall.own_results
    assert sorted(r.id for r in own) == sorted(TOP_CORRECT)
    expected = calibration_error(reliability_table((r.confidence, TOP_CORRECT[r.id]) for r in own))
    assert o["calibration_error"] == pytest.approx(expected, abs=1e-4) and o["calibration_error"] > 0
    table = report.overall.reliability()
    assert sum(b.count for b in table) == 11
    assert (table[0].count, table[0].accuracy) == (2, 0.0)  # a4x and a5, declined without a passage


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ARTICLEBOT_CORPUS"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_eval_reads_a_squad_file_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "questions.jsonl"  # named like a JSONL set: the content decides
    path.write_text(json.dumps(tiny_squad(), indent=2), encoding="utf-8")
    result = cli("eval", str(path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == evaluate_squad(parse_squad(read_text(path))).to_dict()
    assert [a["title"] for a in data["articles"]] == ["Volta bike", "Gouda"]
    assert data["hit@1"] == pytest.approx(0.75) and data["declined_other_article"] == pytest.approx(0.875)
    human = cli("eval", str(path))
    assert human.returncode == 0
    lines = human.stdout.splitlines()
    assert lines[0].split() == [
        "article", "asked", "hit@1", "hit@3", "mrr@5", "sent@1", "unans", "other", "wrong", "ece",
    ]  # fmt: skip
    assert lines[1].split()[:4] == ["Volta", "bike", "7", "0.600"]
    assert lines[3].split()[:5] == ["all", "(micro)", "11", "0.750", "0.875"]
    assert "Reliability of the top hit's confidence:" in human.stdout


def test_eval_reads_a_jsonl_set_named_json(tmp_path: Path) -> None:
    path = tmp_path / "set.json"
    path.write_text(read_text(ROOT / "evals" / "dev.jsonl"), encoding="utf-8")
    data = json.loads(cli("eval", str(path), "--json").stdout)
    assert data["questions"] == 52 and "articles" not in data


def test_a_broken_squad_file_is_one_clear_line(tmp_path: Path) -> None:
    squad = tiny_squad()
    del squad["data"][1]["paragraphs"][0]["qas"][0]["question"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(squad), encoding="utf-8")
    result = cli("eval", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: cannot read questions: {path}: data[1]: not a SQuAD article (missing or wrong 'question')\n"
    )
    path.write_text(json.dumps(tiny_squad()), encoding="utf-8")
    with_corpus = cli("eval", str(path), "--corpus", str(ROOT / "corpus"))
    assert with_corpus.returncode == 2 and "--corpus does not apply to a SQuAD file" in with_corpus.stderr


def test_eval_on_the_public_squad_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real benchmark, read from ../shared beside the clone (CI has it): sane, and the CLI's
    --json equals the figures computed here.

    Lexical mode: the scoring under test is the same in both modes, and encoding the eight
    articles twice at once (here and in the CLI) took 75 s of the suite's time; semantic mode's
    SQuAD figures are measured by hand (README, docs/ENGINE.md) and its ranking is tested on the
    article in tests/test_engine.py.
    """
    if not SQUAD_PUBLIC.is_file():
        pytest.fail(
            f"{SQUAD_PUBLIC} is missing: the SQuAD benchmark must sit in ../shared/eval/ beside the clone"
        )
    monkeypatch.setenv("ARTICLEBOT_SEMANTIC", "off")
    env = {k: v for k, v in os.environ.items() if k != "ARTICLEBOT_CORPUS"}
    command = [sys.executable, "-m", "bot", "eval", str(SQUAD_PUBLIC), "--json"]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as process:
        articles = parse_squad(read_text(SQUAD_PUBLIC))  # scored here meanwhile, on the other core
        report = evaluate_squad(articles).to_dict()
        out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    assert json.loads(out) == report

    answerable = [len(a.answerable()) for a in articles]
    assert len(articles) == 8 and sum(answerable) == 1299
    assert report["questions"] == 2828 and report["other_article_questions"] == 7 * 1299
    for figures in [report, *report["articles"]]:
        shares = {k: v for k, v in figures.items() if isinstance(v, float) and k != "mean_passage_words"}
        assert all(0.0 <= v <= 1.0 for v in shares.values()), shares
        assert figures["sentence_hit@1"] <= figures["hit@1"] <= figures["mrr@5"] <= figures["hit@3"]
        assert figures["hit@1"] + figures["wrongly_declined"] <= 1.0
        assert sum(b["count"] for b in figures["reliability"]) == figures["questions"]
        assert 20 <= figures["mean_passage_words"] <= 120
    assert report["hit@1"] >= 0.5 and report["declined_other_article"] >= 0.5
    micro = sum(a["hit@1"] * n for a, n in zip(report["articles"], answerable, strict=True)) / 1299
    assert report["hit@1"] == pytest.approx(micro)
