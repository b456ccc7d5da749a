"""The terminal commands as a new user meets them: after a plain ``pip install .``, from any folder;
``.env`` read by every command; ``ask`` without discord.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ARTICLEBOT_"))}
    command = [sys.executable, "-m", "bot", *args]
    return subprocess.run(
        command,
        cwd=cwd,
        env={**clean, "NO_COLOR": "1", **(env or {})},
        input="",  # chat: end of input at once
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_after_a_plain_pip_install_ask_answers_from_any_folder(tmp_path: Path) -> None:
    """The Quickstart's ``pip install .`` (not editable), then ``articlebot ask`` elsewhere."""
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "*.egg-info", "build", "dist", "__pycache__", "data"),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    # Offline and fast: this venv's pip builds the wheel; the dependencies come from this venv.
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q"]
    subprocess.run([*install, "--no-deps", str(source)], check=True, timeout=300, capture_output=True)
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "discord").is_dir())
    Path(site, "deps.pth").write_text(
        deps + "\n", encoding="utf-8"
    )  # a path line: its .pth files stay unread
    shutil.rmtree(source)  # nothing may lean on the source tree
    assert not any(Path(site).glob("__editable__*"))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ARTICLEBOT_", "PYTHON"))}
    result = subprocess.run(
        [str(venv / "bin" / "articlebot"), "ask", "Who owns X?", "--json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["answered"] and "owned by Musk" in answer["answer"]["sentence"]
    # The semantic stage's tokenizer ships as package data, and the installed copy finds its model.
    assert Path(site, "bot", "engine", "tokenizer", "all-MiniLM-L6-v2-tokenizer.json").is_file()
    index = subprocess.run(
        [str(venv / "bin" / "articlebot"), "index"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert "semantic: available (model all-MiniLM-L6-v2-onnx-int8)" in index.stdout, index.stderr
    # Every package of the source is installed (pyproject lists them by hand).
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "bot").rglob("__init__.py")}
    assert packages and all(Path(site, package, "__init__.py").is_file() for package in packages)


@pytest.mark.parametrize(
    "command", [["ask", "Who owns X?"], ["index"], ["eval", "questions.jsonl"], ["chat"]]
)
def test_corpus_in_dotenv_is_used_by_every_terminal_command(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / ".env").write_text("ARTICLEBOT_CORPUS=elsewhere/corpus\n", encoding="utf-8")
    (tmp_path / "questions.jsonl").write_text(
        (ROOT / "evals" / "dev.jsonl").read_text(encoding="utf-8"), encoding="utf-8"
    )
    missing = cli(*command, cwd=tmp_path)
    assert missing.returncode == 2
    assert "corpus not found: elsewhere/corpus" in missing.stderr

    corpus = tmp_path / "elsewhere" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "ferries.md").write_text(
        "# Harbour ferries\n\nThe blue ferry leaves the harbour every twenty minutes.\n", encoding="utf-8"
    )
    found = cli(*command, *(["--json"] if command[0] != "chat" else []), cwd=tmp_path)
    if command[0] == "ask":
        assert found.returncode == 1 and json.loads(found.stdout)["answered"] is False  # not about X
    elif command[0] == "index":
        assert json.loads(found.stdout)["documents"] == 1
    elif command[0] == "eval":
        assert found.returncode == 0 and json.loads(found.stdout)["hit@1"] == 0  # no evidence in ferries
    else:
        assert found.returncode == 0 and found.stdout.startswith("Ask about Harbour ferries (1 passages)")


def test_ask_does_not_import_discord_or_aiohttp() -> None:
    probe = (
        "import sys\n"
        "from bot.cli import main\n"
        "code = main(['ask', 'Who owns X?'])\n"
        "print('LOADED', sorted(m for m in ('discord', 'aiohttp', 'aiosqlite') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "owned by Musk" in result.stdout
    assert result.stdout.rstrip().endswith("LOADED []")
