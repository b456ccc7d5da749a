"""The CLI as a user runs it: a subprocess, its output and its exit codes."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.engine import Document, Engine
from bot.engine.documents import Block
from bot.terminal import Progress

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "ARTICLEBOT_CORPUS"}
    full_env.update({"NO_COLOR": "1", **(env or {})})
    command = [sys.executable, "-m", "bot", *args]
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


def test_ask_prints_the_answer_then_cited_passages() -> None:
    result = run("ask", "Who called Musk a rocket man?")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Answer:")
    assert "rocket man" in out.splitlines()[1] + out.splitlines()[2]
    assert "[1] The Rift Begins · passage 8 of 23" in out
    assert "Source: Musk vs. Trump" in out
    assert "\033[" not in out  # piped: no colour codes


def test_ask_colour_when_asked() -> None:
    out = run("ask", "Which hashtags trended?", "--color", "always").stdout
    assert "\033[1;33mhashtags\033[0m" in out


def test_ask_json_has_exactly_the_documented_shape() -> None:
    result = run("ask", "Who owns X?", "--json", "-k", "2")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert set(data) == {"question", "answered", "reason", "answer", "hits"}
    assert data["answered"] is True and data["reason"] is None
    assert set(data["answer"]) == {"sentence", "passage_id"}
    assert len(data["hits"]) == 2
    for hit in data["hits"]:
        assert set(hit) == {"passage_id", "document", "section", "position", "text", "score", "confidence"}
        assert 0 <= hit["confidence"] <= 1
    assert data["answer"]["passage_id"] == data["hits"][0]["passage_id"]


def test_a_question_the_article_does_not_answer_exits_1() -> None:
    result = run("ask", "How do I bake sourdough bread?", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["answered"] is False and data["answer"] is None and data["reason"]
    human = run("ask", "How do I bake sourdough bread?")
    assert human.returncode == 1 and human.stdout.startswith("The article doesn't say.")


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_a_usage_error(question: str) -> None:
    result = run("ask", question)
    assert result.returncode == 2
    assert result.stderr.startswith("error: the question is empty")
    assert "Traceback" not in result.stderr


def test_a_10000_character_question_answers_or_declines() -> None:
    result = run("ask", "why did they fall out " * 455, "--json")
    assert result.returncode in (0, 1), result.stderr
    json.loads(result.stdout)


def test_bad_k_is_a_usage_error() -> None:
    result = run("ask", "Who owns X?", "-k", "0")
    assert result.returncode == 2 and "between 1 and 10" in result.stderr


def test_a_missing_corpus_is_one_clear_line(tmp_path: Path) -> None:
    result = run("ask", "Who owns X?", "--corpus", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "corpus not found" in result.stderr


def test_bad_files_are_warned_about_and_the_rest_answers(tmp_path: Path) -> None:
    (tmp_path / "article.txt").write_bytes((ROOT / "corpus" / "article.txt").read_bytes())
    (tmp_path / "broken.txt").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "empty.md").write_text("", encoding="utf-8")
    result = run("ask", "Who owns X?", "--corpus", str(tmp_path))
    assert result.returncode == 0
    assert "warning: skipped" in result.stderr
    assert "broken.txt" in result.stderr and "empty.md" in result.stderr


def test_corpus_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "faq.md").write_text("# FAQ\n\n## Meetups\n\nMeetups are held in Lisbon.\n", encoding="utf-8")
    result = run("ask", "Where are meetups held?", "--json", env={"ARTICLEBOT_CORPUS": str(tmp_path)})
    data = json.loads(result.stdout)
    assert data["hits"][0]["document"] == "FAQ"


def test_eval_json_prints_the_figures() -> None:
    result = run("eval", "evals/dev.jsonl", "--json")
    assert result.returncode == 0
    figures = json.loads(result.stdout)
    assert list(figures) == [
        "questions", "hit@1", "hit@3", "mrr@5", "sentence_hit@1",
        "declined_offtopic", "declined_near_miss", "wrongly_declined", "mean_passage_words",
        "calibration_error", "reliability",
    ]  # fmt: skip
    assert figures["questions"] == 52
    table = figures["reliability"]  # ten bins of the top hit's confidence, every question in one
    assert [b["bin"] for b in table][:2] == ["0.0-0.1", "0.1-0.2"] and len(table) == 10
    assert sum(b["count"] for b in table) == 52
    gaps = sum(b["count"] * abs(b["accuracy"] - b["mean_confidence"]) for b in table if b["count"])
    assert figures["calibration_error"] == pytest.approx(gaps / 52, abs=2e-4)  # bins are rounded


def test_eval_human_lists_what_to_look_at() -> None:
    result = run("eval", "evals/dev.jsonl")
    assert result.returncode == 0 and "hit@1" in result.stdout and "Questions to look at:" in result.stdout


def test_eval_of_a_missing_file_is_a_usage_error() -> None:
    result = run("eval", "nope.jsonl")
    assert result.returncode == 2 and result.stderr.startswith("error: cannot read questions")


def test_index_prints_documents_passages_vocabulary_and_time() -> None:
    result = run("index")
    assert result.returncode == 0
    assert "1 documents, 23 passages" in result.stdout and " ms" in result.stdout
    data = json.loads(run("index", "--json").stdout)
    assert data["passages"] == 23 and data["vocabulary"] > 400


def test_chat_answers_until_end_of_input() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        cwd=ROOT,
        input="Who owns X?\n\nWhat is the capital of Australia?\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0
    assert "now owned by Musk" in result.stdout and "The article doesn't say." in result.stdout


def test_console_script_and_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("articlebot ")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_index_shows_a_progress_bar_for_a_large_corpus_on_a_terminal() -> None:
    documents = [
        Document(
            id=f"d{i}",
            title=f"Doc {i}",
            blocks=[Block("", f"Paragraph {j} of document {i}.") for j in range(50)],
        )
        for i in range(60)
    ]
    screen = FakeTerminal()
    progress = Progress("indexing", stream=screen)
    Engine(documents, progress=progress, semantic=False)  # the bar covers indexing, not encoding
    progress.close()
    frames = screen.getvalue().split("\r")
    assert frames[-1].startswith("indexing [##############################] 3000/3000")
    assert len(frames) > 2  # it moved
    quiet = io.StringIO()  # piped: no bar at all
    Engine(documents, progress=Progress("indexing", stream=quiet), semantic=False)
    assert quiet.getvalue() == ""
