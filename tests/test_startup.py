"""Start-up on Discord: who the bot's owners are (known once, at login), what a network or gateway
failure looks like (one line, exit 2), and the "connected" line."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from bot_process import FAKE_TOKEN, BotProcess
from conftest import BOT_OWNER_ID, ROOT, RunBot, all_text, invoke
from standin import DiscordStandin, eventually, payloads, running_bot

from bot.client import ArticleBot
from bot.settings import Settings
from bot.storage import SQLiteStorage

APPLICATION_ROUTE = "/oauth2/applications/@me"
REFUSED_MODERATOR = "Only moderators can use this"
REFUSED_OWNER = "Only the bot's owners can use this."


def application_fetches(standin: DiscordStandin) -> int:
    return sum(1 for r in standin.requests if r.method == "GET" and r.route == APPLICATION_ROUTE)


def join_guild(standin: DiscordStandin, user: payloads.Payload) -> payloads.Payload:
    member = payloads.member(user)
    standin.guild["members"].append(member)
    return member


# -- owners: known once, at login ------------------------------------------------------------------


async def test_a_storm_of_admin_commands_fetches_the_application_once(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    """No ARTICLEBOT_OWNER_IDS: discord.py used to fetch the application on every /admin until one
    fetch returned; 240 at once made 195 fetches and most replies missed the 3 s deadline."""
    alice = standin.member
    app_owner = join_guild(standin, standin.application["owner"])
    async with run_bot(owner_ids=frozenset()):
        events = [
            standin.slash_interaction("admin", subcommand="status", member=app_owner if i % 4 == 0 else alice)
            for i in range(40)
        ]
        await asyncio.gather(*(standin.dispatch("INTERACTION_CREATE", e) for e in events))
        replies = await asyncio.gather(
            *(standin.wait_for_sent_message(lambda m, e=e: m.interaction_id == e["id"]) for e in events)
        )
    assert application_fetches(standin) == 1  # the one discord.py makes at login
    for event, reply in zip(events, replies, strict=True):
        assert reply.ephemeral
        if event["member"]["user"]["id"] == app_owner["user"]["id"]:
            assert "Documents" in all_text(reply) and REFUSED_MODERATOR not in reply.content
        else:
            assert reply.content.startswith(REFUSED_MODERATOR)


async def test_configured_owner_ids_add_to_the_applications_owner(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    app_owner = join_guild(standin, standin.application["owner"])
    configured = join_guild(standin, payloads.user("botowner", id=BOT_OWNER_ID))
    async with run_bot(owner_ids=frozenset({BOT_OWNER_ID})):
        by_app_owner = await invoke(standin, "admin", subcommand="reload", member=app_owner)
        by_configured = await invoke(standin, "admin", subcommand="reload", member=configured)
        by_server_owner = await invoke(
            standin, "admin", subcommand="reload", member=standin.find_member("owner")
        )
    assert "Reloaded: 1 documents, 23 passages." in all_text(by_app_owner)
    assert "Reloaded: 1 documents, 23 passages." in all_text(by_configured)
    assert by_server_owner.content == REFUSED_OWNER
    assert application_fetches(standin) == 1


async def test_a_team_owned_application_makes_its_admins_and_developers_owners(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    lead, dev, viewer = payloads.user("lead"), payloads.user("dev"), payloads.user("viewer")
    team_id = "555000000000000001"
    standin.application["team"] = {
        "id": team_id,
        "name": "The Team",
        "icon": None,
        "owner_user_id": lead["id"],
        "members": [
            {"membership_state": 2, "team_id": team_id, "permissions": ["*"], "role": role, "user": user}
            for user, role in ((lead, "admin"), (dev, "developer"), (viewer, "read_only"))
        ],
    }
    members = [join_guild(standin, user) for user in (lead, dev, viewer)]
    async with run_bot(owner_ids=frozenset()):
        lead_reply, dev_reply, viewer_reply = [
            await invoke(standin, "admin", subcommand="reload", member=m) for m in members
        ]
    assert "Reloaded:" in all_text(lead_reply) and "Reloaded:" in all_text(dev_reply)
    assert viewer_reply.content.startswith(REFUSED_MODERATOR)  # read-only: not an owner, not a moderator


async def connected(bot: BotProcess) -> None:
    """on_ready: discord.py waits 2 s after the last GUILD_CREATE in a real process."""
    await eventually(lambda: " connected as " in bot.output(), timeout=10)


# -- the connected line ----------------------------------------------------------------------------


async def test_connected_is_logged_with_user_servers_and_shard(
    standin: DiscordStandin, tmp_path: Path
) -> None:
    async with BotProcess(standin, database=tmp_path / "bot.db") as bot:
        await connected(bot)
        output = bot.output()
    [line] = [line for line in output.splitlines() if " connected as " in line]
    assert " INFO " in line and "bot.client" in line
    assert "connected as standin-bot" in line and "in 1 server" in line and "shard 0 of 1" in line
    assert "invite" not in line and FAKE_TOKEN not in output


async def test_in_no_server_the_invite_link_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with DiscordStandin(guilds=[]) as standin:
        settings = Settings(token="standin-token", database=str(tmp_path / "bot.db"), corpus=ROOT / "corpus")
        bot = ArticleBot(settings, SQLiteStorage(tmp_path / "bot.db"))
        with caplog.at_level(logging.INFO, logger="bot.client"):
            async with running_bot(bot, standin):
                pass
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.client"]
    assert any("in 0 servers" in m for m in messages), messages
    [invite] = [m for m in messages if "https://discord.com/oauth2/authorize?" in m]
    assert f"client_id={standin.application_id}&" in invite


# -- network and gateway failures: one line, exit 2 ------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_child(*args: str, api: str, gateway: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` (through tests/bot_process.py) with discord.py pointed at ``api``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ARTICLEBOT_"))}
    env.update(
        DISCORD_TOKEN=FAKE_TOKEN,
        ARTICLEBOT_DATABASE=str(tmp_path / "bot.db"),
        STANDIN_API=api,
        STANDIN_GATEWAY=gateway,
        STANDIN_CDN=api,
    )
    child = [sys.executable, str(ROOT / "tests" / "bot_process.py"), *args]
    return subprocess.run(child, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def assert_one_error_line(output: str, *expected: str) -> str:
    assert "Traceback" not in output and FAKE_TOKEN not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert output.rstrip("\n").endswith(errors[0])  # the last thing printed
    for text in expected:
        assert text in errors[0], errors[0]
    # Nothing else but discord.py's own INFO lines before it: no ERROR log, no stray output.
    others = [line for line in output.splitlines() if line != errors[0]]
    assert all(" INFO " in line for line in others), output
    return errors[0]


@pytest.mark.parametrize("command", ["run", "sync"])
@pytest.mark.parametrize(
    ("host", "what"),
    [("127.0.0.1:{port}", "connection refused"), ("discord.invalid", "discord.invalid")],
    ids=["refused", "dns"],
)
def test_discord_unreachable_is_one_line_and_exit_2(
    tmp_path: Path, command: str, host: str, what: str
) -> None:
    where = host.format(port=closed_port())
    result = run_child(command, api=f"http://{where}/api/v10", gateway=f"ws://{where}/", tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "cannot reach Discord", what, "network")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (4004, "Discord rejected DISCORD_TOKEN"),
        (4013, "4013"),
        (4014, "intent"),
    ],
)
async def test_a_fatal_gateway_close_mid_run_is_one_line_and_exit_2(
    standin: DiscordStandin, tmp_path: Path, code: int, expected: str
) -> None:
    async with BotProcess(standin, database=tmp_path / "bot.db") as bot:  # a session is up
        await standin.close_connection(code)
        exit_code = await bot.wait()
        output = bot.output()
    assert exit_code == 2, output
    assert_one_error_line(output, expected)
