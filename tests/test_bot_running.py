"""Running the bot: settings, the token, errors, command sync and the invite link."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import discord
import pytest
from conftest import ROOT, RunBot, custom_ids, invoke
from standin import DiscordStandin, point_discord_at

from bot import discord_app
from bot.settings import RedactingFormatter, Settings, SettingsError, check_token
from bot.storage import SQLiteStorage

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB"


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ARTICLEBOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "DISCORD_TOKEN is not set"),
        ("not-a-token", "does not look like a bot token"),
        (f"Bot {TOKEN}", "starts with 'Bot '"),
        ("abc.def.ghi", "does not look like a bot token"),
    ],
)
def test_a_missing_or_malformed_token_is_one_line_without_a_traceback(
    tmp_path: Path, token: str, message: str
) -> None:
    result = cli("run", env={"DISCORD_TOKEN": token, "ARTICLEBOT_CORPUS": str(ROOT / "corpus")}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert message in result.stderr and "README" in result.stderr
    assert "Traceback" not in result.stderr
    if token:
        assert token.removeprefix("Bot ") not in result.stderr


def test_the_token_can_come_from_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_TOKEN=not-a-token\n", encoding="utf-8")
    result = cli("run", env={}, cwd=tmp_path)
    assert result.returncode == 2 and "does not look like a bot token" in result.stderr


def test_other_settings_are_checked_too() -> None:
    with pytest.raises(SettingsError, match="ARTICLEBOT_OWNER_IDS must be Discord ids"):
        Settings.from_env({"DISCORD_TOKEN": TOKEN, "ARTICLEBOT_OWNER_IDS": "me"})
    with pytest.raises(SettingsError, match="ARTICLEBOT_LOG_LEVEL"):
        Settings.from_env({"DISCORD_TOKEN": TOKEN, "ARTICLEBOT_LOG_LEVEL": "loud"})
    settings = Settings.from_env(
        {"DISCORD_TOKEN": f'"{TOKEN}"', "ARTICLEBOT_OWNER_IDS": "1, 2", "ARTICLEBOT_DEV_GUILD_ID": "3"}
    )
    assert settings.token == TOKEN and settings.owner_ids == {1, 2} and settings.dev_guild_id == 3
    assert TOKEN not in repr(settings)
    assert check_token(f"  {TOKEN}\n") == TOKEN


def test_logs_never_show_the_token() -> None:
    formatter = RedactingFormatter("%(message)s", [TOKEN])
    try:
        raise RuntimeError(f"failed with {TOKEN}")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "login as %s", (TOKEN,), sys.exc_info())
    text = formatter.format(record)
    assert TOKEN not in text and text.count("[token redacted]") >= 2


def test_invite_link_has_the_scopes_and_minimal_permissions(tmp_path: Path) -> None:
    result = cli("invite", env={"DISCORD_TOKEN": TOKEN}, cwd=tmp_path)
    assert result.returncode == 0
    url = result.stdout.strip()
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=123456789012345678")
    assert "scope=bot+applications.commands" in url
    permissions = discord.Permissions(int(url.rsplit("permissions=", 1)[1]))
    assert permissions.send_messages and permissions.embed_links and permissions.read_message_history
    assert not (permissions.administrator or permissions.manage_guild or permissions.mention_everyone)
    explicit = cli("invite", "--client-id", "42", env={}, cwd=tmp_path)
    assert "client_id=42&" in explicit.stdout


async def test_sync_registers_commands_without_connecting(standin: DiscordStandin, tmp_path: Path) -> None:
    settings = Settings(token="standin-token", database=str(tmp_path / "db.sqlite"), corpus=ROOT / "corpus")
    with point_discord_at(standin):
        names = await discord_app.sync(
            settings, SQLiteStorage(tmp_path / "db.sqlite"), int(standin.guild["id"])
        )
    assert sorted(names) == ["Ask the article", "admin", "article", "ask", "help"]
    assert standin.identifies == 0  # HTTP only: no gateway session
    assert {c["name"] for c in standin.registered_commands(standin.guild["id"])} == set(names)


async def test_an_unexpected_error_is_private_for_the_member_and_full_in_the_log(
    standin: DiscordStandin, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_bot() as bot:

        async def broken(*args: object, **kwargs: object) -> int:
            raise RuntimeError("database on fire")

        # Not log_question: a failed log no longer stops the answer (best effort, counted).
        bot.storage.admission = broken  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR):
            sent = await invoke(standin, "ask", {"question": "Who owns X?"})
    assert sent.ephemeral and sent.content.startswith("Something went wrong on my side")
    [record] = [r for r in caplog.records if r.name == "bot.client"]
    assert (
        f"command /ask failed in guild {standin.guild['id']} channel {standin.channel['id']}"
        in record.getMessage()
    )
    assert record.exc_info is not None and "database on fire" in str(record.exc_info[1])


async def test_a_failing_button_is_reported_the_same_way(
    standin: DiscordStandin, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_bot() as bot:
        sent = await invoke(standin, "ask", {"question": "Who owns X?"})
        assert sent.message is not None

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk full")

        bot.storage.record_feedback = broken  # type: ignore[method-assign]
        click = standin.component_interaction(custom_ids(sent)[1], sent.message)
        with caplog.at_level(logging.ERROR):
            await standin.dispatch("INTERACTION_CREATE", click)
            reply = await standin.wait_for_sent_message(lambda m: m.interaction_id == click["id"])
    assert reply.ephemeral and reply.content.startswith("Something went wrong")
    assert any("button vote failed" in r.getMessage() for r in caplog.records)
