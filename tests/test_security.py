"""Nobody let in: who may run each /admin command, servers that never see each other, the token.

The matrix runs every /admin subcommand as six kinds of user against the real bot; the expected
outcome comes from one rule (moderators: Manage Server or the moderator role; bot owners: all;
``reload``: bot owners only), written once below, not per cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bot_process import FAKE_TOKEN, BotProcess
from conftest import BOT_OWNER_ID, RunBot, bot_runner, invoke
from standin import DiscordStandin, SentMessage, payloads

REFUSED = ("Only moderators can use this", "Only the bot's owners can use this")
OWNER_ONLY = {"reload"}


def commands(standin: DiscordStandin) -> list[tuple[str, dict[str, Any]]]:
    """Every /admin subcommand with valid options, in an order where none undoes access to the next."""
    guild = standin.guild
    channel = standin.channel
    alice = standin.member
    upload = standin.add_attachment("notes.txt", b"Notes\nThe server was founded in 2020.\n", "text/plain")
    helpers = next(r for r in guild["roles"] if r["name"] == "Helpers")
    return [
        ("status", {}),
        ("settings show", {}),
        ("settings set", {"cooldown": 0}),
        ("channels list", {}),
        ("channels allow", {"channel": channel}),
        ("channels deny", {"channel": channel}),
        ("channels clear", {"channel": channel}),
        ("documents add", {"file": upload}),
        ("documents list", {}),
        ("documents remove", {"name": "notes.txt"}),
        ("misses", {}),
        ("feedback", {}),
        ("block", {"member": alice}),
        ("unblock", {"member": alice}),
        ("blocked", {}),
        ("audit", {}),
        ("reload", {}),
        ("modrole set", {"role": helpers}),  # re-sets the same role: the moderator-role user keeps access
        ("modrole clear", {}),  # last: it ends the moderator-role user's access
    ]


def add_users(standin: DiscordStandin) -> dict[str, dict[str, Any]]:
    """The six kinds of user, as members of the stand-in's first guild."""
    guild = standin.guild
    helpers = payloads.role("Helpers", position=1)  # becomes the moderator role
    guild["roles"].append(helpers)
    elsewhere_admin = payloads.role("Admin", permissions=8, position=1)  # Administrator, in server B only
    bot_owner = payloads.member(payloads.user("botowner", id=BOT_OWNER_ID))
    outsider = payloads.member(payloads.user("admin-of-b"))
    helper = payloads.member(payloads.user("helper"), roles=[helpers])
    guild["members"] += [bot_owner, outsider, helper]
    other = payloads.default_guild(standin.bot_user)
    other["roles"].append(elsewhere_admin)
    other["members"].append(payloads.member(outsider["user"], roles=[elsewhere_admin]))
    standin.add_guild(other)
    return {
        "member": standin.member,  # alice: no roles
        "moderator role": helper,
        "manage server": standin.find_member("mod"),
        "server owner": standin.find_member("owner"),
        "bot owner": bot_owner,
        "admin of another server": outsider,
    }


def allowed(user: str, command: str) -> bool:
    if user == "bot owner":
        return True
    if command in OWNER_ONLY:
        return False
    return user in ("moderator role", "manage server", "server owner")


USERS = ["member", "moderator role", "manage server", "server owner", "bot owner", "admin of another server"]


@pytest.mark.parametrize("user", USERS)
async def test_admin_security_matrix(standin: DiscordStandin, run_bot: RunBot, user: str) -> None:
    people = add_users(standin)
    owner = people["server owner"]
    results: dict[str, bool] = {}
    async with run_bot():
        helpers = next(r for r in standin.guild["roles"] if r["name"] == "Helpers")
        await invoke(standin, "admin", {"role": helpers}, subcommand="modrole set", member=owner)
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=owner)
        for command, options in commands(standin):
            sent = await invoke(standin, "admin", options, subcommand=command, member=people[user])
            text = (sent.content or "") + "".join(e.get("description", "") for e in sent.embeds)
            assert sent.ephemeral, (user, command)  # every /admin reply is private, refusals included
            results[command] = not text.startswith(REFUSED)
    expected = {command: allowed(user, command) for command in results}
    assert results == expected


async def _everything_in(standin: DiscordStandin, guild: dict[str, Any]) -> dict[str, str]:
    mod = standin.find_member("mod", guild)
    channel = guild["channels"][0]
    seen = {}
    for command in (
        "status",
        "settings show",
        "documents list",
        "misses",
        "feedback",
        "blocked",
        "audit",
        "channels list",
    ):
        sent = await invoke(standin, "admin", subcommand=command, member=mod, guild=guild, channel=channel)
        seen[command] = sent.content or ""
    return seen


async def test_a_servers_data_is_invisible_from_every_other_server(
    standin: DiscordStandin, database: Path
) -> None:
    first, second = standin.guild, payloads.default_guild(standin.bot_user)
    standin.add_guild(second)
    mod_a, alice_a = standin.find_member("mod", first), standin.find_member("alice", first)
    a = {"guild": first, "channel": first["channels"][0]}
    upload = standin.add_attachment(
        "secret.md", b"# Secret\n\nThe vault code is swordfish.\n", "text/markdown"
    )
    async with bot_runner(standin, database)():
        await invoke(
            standin, "admin", {"passages": 1, "cooldown": 0}, subcommand="settings set", member=mod_a, **a
        )
        await invoke(standin, "admin", {"file": upload}, subcommand="documents add", member=mod_a, **a)
        await invoke(
            standin, "admin", {"channel": first["channels"][1]}, subcommand="channels deny", member=mod_a, **a
        )
        await invoke(
            standin, "admin", {"member": alice_a, "reason": "zebra"}, subcommand="block", member=mod_a, **a
        )
        await invoke(standin, "ask", {"question": "What is the vault code?"}, member=mod_a, **a)
        await invoke(standin, "ask", {"question": "How do I knit a scarf?"}, member=mod_a, **a)
        in_a = await _everything_in(standin, first)
        in_b = await _everything_in(standin, second)
        b = {
            "guild": second,
            "channel": second["channels"][0],
            "member": standin.find_member("alice", second),
        }
        asked_in_b = await invoke(standin, "ask", {"question": "What is the vault code?"}, **b)
    # Server A sees its own data...
    assert "secret.md" in in_a["documents list"] and "knit" in in_a["misses"] and "zebra" in in_a["blocked"]
    # ...and server B none of it: documents, settings, the question log, blocks, audit, channel rules.
    leaked = ("secret", "swordfish", "knit", "zebra", "vault", f"<#{first['channels'][1]['id']}>")
    for command, text in in_b.items():
        assert not any(word in text.lower() for word in leaked), (command, text)
    assert "Passages per answer: 3" in in_b["settings show"]
    assert "0 answered, 0 missed" in in_b["status"] and in_b["audit"] == "No admin changes yet."
    assert "swordfish" not in _all_text(asked_in_b)


def _all_text(sent: SentMessage) -> str:
    return (sent.content or "") + " ".join(str(e) for e in sent.embeds)


async def test_the_token_never_appears_in_logs_or_replies(standin: DiscordStandin, tmp_path: Path) -> None:
    """The real `python -m bot run`, logging at DEBUG (discord.py's HTTP traffic included)."""
    mod = standin.find_member("mod")
    async with BotProcess(
        standin, database=tmp_path / "bot.db", env={"ARTICLEBOT_LOG_LEVEL": "DEBUG"}
    ) as bot:
        await invoke(standin, "ask", {"question": "Who owns X?"})
        await invoke(standin, "admin", subcommand="status", member=mod)
        await invoke(standin, "admin", subcommand="reload", member=mod)  # a refusal
        bot.terminate()
        assert await bot.wait() == 0
        output = bot.output()
    assert "DEBUG" in output and "discord.http" in output  # it really logged its HTTP traffic
    assert FAKE_TOKEN not in output
    assert all(FAKE_TOKEN not in str(r.json) for r in standin.requests if r.json is not None)
    # The token did reach Discord, where it belongs: in the Authorization header.
    assert any(r.headers.get("Authorization") == f"Bot {FAKE_TOKEN}" for r in standin.requests)
