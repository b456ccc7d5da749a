"""Nobody let in: who may run each /admin command, servers that never see each other, the token.

The matrix runs every /admin subcommand as six kinds of user against the real bot. Who may run
what comes from one rule (moderators: Manage Server or the moderator role; bot owners: all;
``reload``: bot owners only); what each command must do comes from one table (``CASES``): the
row it stores and its audit entry, read back from the bot's SQLite file, or what its listing
must show. An allowed cell passes only when that effect is there; a refused cell only when the
reply is the refusal and the database is exactly as it was. Another test walks the bot's command
tree, so a new /admin subcommand cannot be left out of the table.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bot_process import FAKE_TOKEN, BotProcess
from conftest import BOT_OWNER_ID, RunBot, all_text, bot_runner, custom_ids, invoke
from discord import app_commands
from standin import DiscordStandin, SentMessage, payloads
from standin.payloads import Payload

from bot.client import ArticleBot

REFUSED = ("Only moderators can use this", "Only the bot's owners can use this")
OWNER_ONLY = {"reload"}
USERS = ["member", "moderator role", "manage server", "server owner", "bot owner", "admin of another server"]

Tables = dict[str, list[dict[str, Any]]]  # every table of the bot's database: its rows


# -- the database, read as the bot left it ----------------------------------------------------------
def read_database(path: Path) -> Tables:
    """Every row of every table, read from the SQLite file itself (the bot commits before it replies)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        names = [
            str(r[0])
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not str(r[0]).startswith("sqlite_")  # sqlite_sequence moves with every audit row
        ]
        return {name: [dict(r) for r in db.execute(f'SELECT * FROM "{name}"')] for name in names}


def rows(tables: Tables, table: str, **where: Any) -> list[dict[str, Any]]:
    return [r for r in tables[table] if all(r[k] == v for k, v in where.items())]


def added(before: Tables, after: Tables, table: str) -> list[dict[str, Any]]:
    old = Counter(tuple(sorted(r.items())) for r in before[table])
    new = Counter(tuple(sorted(r.items())) for r in after[table])
    return [dict(r) for r in (new - old).elements()]


def removed(before: Tables, after: Tables, table: str) -> list[dict[str, Any]]:
    return added(after, before, table)


def changed_tables(before: Tables, after: Tables) -> set[str]:
    return {t for t in before.keys() | after.keys() if added(before, after, t) or removed(before, after, t)}


_ESCAPED = re.compile(r"\\([^A-Za-z0-9\s])")
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def plain(text: str) -> str:
    """What a member reads: markdown escapes and invisible separators removed, however the reply
    made the text inert."""
    return _INVISIBLE.sub("", _ESCAPED.sub(r"\1", text))


# -- the world the matrix runs in -------------------------------------------------------------------
@dataclass
class Scene:
    bot: ArticleBot
    guild_id: int
    here: Payload  # the channel the commands are run in
    other: Payload
    alice: Payload
    stewards: Payload  # a second role the moderator-role user holds
    upload: Payload
    upload_text: str
    voted_place: str  # where the passage voted on sits, as /admin feedback must name it
    actor_id: int = 0  # who runs the current cell
    sent_at: float = 0.0  # time.time() just before the current cell was sent


def settings_row(scene: Scene, tables: Tables) -> dict[str, Any]:
    [row] = rows(tables, "guild_settings", guild_id=scene.guild_id)
    return row


def audit_shown(scene: Scene, tables: Tables) -> list[str]:
    newest = sorted(rows(tables, "audit_log", guild_id=scene.guild_id), key=lambda r: -int(r["id"]))[:10]
    return (
        [f"<@{r['actor_id']}>" for r in newest]
        + [r["action"] for r in newest]
        + [r["detail"] for r in newest]
    )


def settings_shown(scene: Scene, tables: Tables) -> list[str]:
    row = settings_row(scene, tables)
    return [
        str(row["passages_per_answer"]),
        str(row["default_visibility"]),
        f"{row['cooldown_seconds']} s",
        f"{row['strictness']:.2f}",
        f"<@&{row['moderator_role_id']}>",
    ]


def status_shown(scene: Scene, tables: Tables) -> list[str]:
    asked = rows(tables, "questions", guild_id=scene.guild_id)
    assert scene.bot.library.base is not None
    # The server has no documents of its own at this point: its engine is the corpus's.
    return [
        f"{len(scene.bot.library.base.passages)} passages",
        f"{sum(1 for q in asked if q['answered'])} answered",
        f"{sum(1 for q in asked if not q['answered'])} missed",
    ]


@dataclass(frozen=True)
class Case:
    """What one /admin subcommand must do when it is allowed (and must not do when refused)."""

    options: Callable[[Scene], dict[str, Any]] = lambda scene: {}
    audit: str | None = None  # the action of the one audit row it writes, by the actor; None: no write
    writes: tuple[str, ...] = ()  # the tables it may change besides audit_log
    effect: str = ""  # the stored change, in words, for the failure message
    stored: Callable[[Scene, Tables], bool] | None = None  # that change, read back after the command
    shown: Callable[[Scene, Tables], list[str]] | None = None  # what its reply must show


def insights_figures(questions: list[dict[str, Any]]) -> list[str]:
    """The line of /admin insights that counts this server's questions (all asked today here)."""
    answered = sum(1 for q in questions if q["answered"])
    return [f"Questions: {len(questions)} · answered {answered}"] if questions else []


def _uid(member: Payload) -> int:
    return int(member["user"]["id"])


# Every /admin subcommand, in the order the matrix runs them: none undoes access to the next, and
# each listing comes after the changes it must show.
CASES: dict[str, Case] = {
    "status": Case(shown=status_shown),
    "settings show": Case(shown=settings_shown),
    "settings set": Case(
        options=lambda s: {"passages": 4},
        audit="settings.set",
        writes=("guild_settings",),
        effect="passages_per_answer 4",
        stored=lambda s, t: settings_row(s, t)["passages_per_answer"] == 4,
    ),
    "channels allow": Case(
        options=lambda s: {"channel": s.here},
        audit="channels.allow",
        writes=("channel_rules",),
        effect="an allow rule for the channel",
        stored=lambda s, t: bool(
            rows(t, "channel_rules", guild_id=s.guild_id, channel_id=int(s.here["id"]), rule="allow")
        ),
    ),
    "channels deny": Case(
        options=lambda s: {"channel": s.other},
        audit="channels.deny",
        writes=("channel_rules",),
        effect="a deny rule for the other channel",
        stored=lambda s, t: bool(
            rows(t, "channel_rules", guild_id=s.guild_id, channel_id=int(s.other["id"]), rule="deny")
        ),
    ),
    "channels list": Case(
        shown=lambda s, t: [f"<#{r['channel_id']}>" for r in rows(t, "channel_rules", guild_id=s.guild_id)]
    ),
    "channels clear": Case(
        options=lambda s: {"channel": s.here},
        audit="channels.clear",
        writes=("channel_rules",),
        effect="no rule left for the channel",
        stored=lambda s, t: not rows(t, "channel_rules", guild_id=s.guild_id, channel_id=int(s.here["id"])),
    ),
    "documents add": Case(
        options=lambda s: {"file": s.upload},
        audit="documents.add",
        writes=("documents",),
        effect="notes.txt stored with its text, added by the actor",
        stored=lambda s, t: (
            [(r["text"], r["added_by"]) for r in rows(t, "documents", name="notes.txt")]
            == [(s.upload_text, s.actor_id)]
        ),
    ),
    "documents list": Case(shown=lambda s, t: [r["name"] for r in rows(t, "documents", guild_id=s.guild_id)]),
    "documents remove": Case(
        options=lambda s: {"name": "notes.txt"},
        audit="documents.remove",
        writes=("documents",),
        effect="notes.txt gone",
        stored=lambda s, t: not rows(t, "documents", guild_id=s.guild_id, name="notes.txt"),
    ),
    "misses": Case(
        shown=lambda s, t: [r["question"] for r in rows(t, "questions", guild_id=s.guild_id, answered=0)]
    ),
    "feedback": Case(shown=lambda s, t: [s.voted_place]),
    "insights": Case(shown=lambda s, t: insights_figures(rows(t, "questions", guild_id=s.guild_id))),
    "block": Case(
        options=lambda s: {"member": s.alice, "reason": "spamming links"},
        audit="block",
        writes=("blocks",),
        effect="alice blocked by the actor, with the reason",
        stored=lambda s, t: (
            [(r["blocked_by"], r["reason"]) for r in rows(t, "blocks", user_id=_uid(s.alice))]
            == [(s.actor_id, "spamming links")]
        ),
    ),
    "blocked": Case(
        shown=lambda s, t: [
            text
            for r in rows(t, "blocks", guild_id=s.guild_id)
            for text in (f"<@{r['user_id']}>", r["reason"])
        ]
    ),
    "unblock": Case(
        options=lambda s: {"member": s.alice},
        audit="unblock",
        writes=("blocks",),
        effect="alice no longer blocked",
        stored=lambda s, t: not rows(t, "blocks", guild_id=s.guild_id, user_id=_uid(s.alice)),
    ),
    "audit": Case(shown=audit_shown),
    "reload": Case(
        effect="the corpus re-read",
        stored=lambda s, t: s.bot.library.loaded_at >= s.sent_at,
        shown=lambda s, t: [f"{len(s.bot.library.base.passages)} passages"] if s.bot.library.base else ["?"],
    ),
    "modrole set": Case(
        options=lambda s: {"role": s.stewards},  # the moderator-role user holds it too: keeps access
        audit="modrole.set",
        writes=("guild_settings",),
        effect="the moderator role is Stewards",
        stored=lambda s, t: settings_row(s, t)["moderator_role_id"] == int(s.stewards["id"]),
    ),
    "modrole clear": Case(  # last: it ends the moderator-role user's access
        audit="modrole.clear",
        writes=("guild_settings",),
        effect="no moderator role",
        stored=lambda s, t: settings_row(s, t)["moderator_role_id"] is None,
    ),
}


def allowed(user: str, command: str) -> bool:
    if user == "bot owner":
        return True
    if command in OWNER_ONLY:
        return False
    return user in ("moderator role", "manage server", "server owner")


def check_cell(case: Case, scene: Scene, allow: bool, before: Tables, after: Tables, reply: str) -> list[str]:
    """What is wrong with one cell; empty when the command did exactly what the table says."""
    refused = reply.startswith(REFUSED)
    if not allow:
        problems = [] if refused else [f"not refused: {reply[:80]!r}"]
        if changed_tables(before, after):
            problems.append(f"refused, yet changed {sorted(changed_tables(before, after))}")
        if scene.bot.library.loaded_at >= scene.sent_at:
            problems.append("refused, yet the corpus was reloaded")
        return problems
    if refused:
        return [f"refused: {reply[:80]!r}"]
    problems = []
    may_change = set(case.writes) | ({"audit_log"} if case.audit else set())
    if stray := changed_tables(before, after) - may_change:
        problems.append(f"changed {sorted(stray)}, which it must not write")
    if case.audit:
        entries = [(e["guild_id"], e["actor_id"], e["action"]) for e in added(before, after, "audit_log")]
        if entries != [(scene.guild_id, scene.actor_id, case.audit)] or removed(before, after, "audit_log"):
            problems.append(f"audit rows written {entries}, not one {case.audit!r} by the actor")
    if case.stored is not None and not case.stored(scene, after):
        problems.append(f"not stored: {case.effect} (reply {reply[:80]!r})")
    if case.shown is not None:
        must_show = case.shown(scene, after)
        if not must_show:  # an earlier change is missing: a listing of nothing would prove nothing
            problems.append("the database holds nothing for this listing to show")
        elif missing := [text for text in must_show if plain(text) not in plain(reply)]:
            problems.append(f"listing lacks {missing} (reply {reply[:120]!r})")
    return problems


def add_users(standin: DiscordStandin) -> dict[str, dict[str, Any]]:
    """The six kinds of user, as members of the stand-in's first guild."""
    guild = standin.guild
    helpers = payloads.role("Helpers", position=1)  # becomes the moderator role
    stewards = payloads.role("Stewards", position=1)  # the moderator role the matrix then sets
    guild["roles"] += [helpers, stewards]
    elsewhere_admin = payloads.role("Admin", permissions=8, position=1)  # Administrator, in server B only
    bot_owner = payloads.member(payloads.user("botowner", id=BOT_OWNER_ID))
    outsider = payloads.member(payloads.user("admin-of-b"))
    helper = payloads.member(payloads.user("helper"), roles=[helpers, stewards])
    guild["members"] += [bot_owner, outsider, helper]
    # The application's owner is a bot owner however the bot learns its owners: the bot-owner user,
    # never the server's owner (the stand-in's default), whose row of the matrix would change.
    standin.application["owner"] = bot_owner["user"]
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


def role_named(standin: DiscordStandin, name: str) -> Payload:
    return next(r for r in standin.guild["roles"] if r["name"] == name)


ANSWERED = ("Who owns X?", "Who called Musk a rocket man?")
MISSED = "How do I knit a scarf?"


async def set_the_scene(standin: DiscordStandin, bot: ArticleBot, database: Path) -> Scene:
    """As the server's owner, through the bot: the moderator role, questions, a vote, settings."""
    owner = standin.find_member("owner")
    guild_id = int(standin.guild["id"])
    helpers = role_named(standin, "Helpers")
    await invoke(standin, "admin", {"role": helpers}, subcommand="modrole set", member=owner)
    await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=owner)
    answers = [await invoke(standin, "ask", {"question": q}, member=owner) for q in ANSWERED]
    await invoke(standin, "ask", {"question": MISSED}, member=owner)
    up = next(i for i in custom_ids(answers[0]) if i.startswith("ask:vote:up:"))
    assert answers[0].message is not None
    vote = standin.component_interaction(up, answers[0].message, member=owner)
    await standin.dispatch("INTERACTION_CREATE", vote)
    await standin.wait_for_sent_message(lambda m: m.interaction_id == vote["id"])
    later = {"strictness": 0.65, "visibility": "private"}  # after the votes: answers turn private
    await invoke(standin, "admin", later, subcommand="settings set", member=owner)

    tables = read_database(database)  # the scene is really there, so no listing check is empty
    passage_id = up.removeprefix("ask:vote:up:")
    assert [r["passage_id"] for r in rows(tables, "feedback", guild_id=guild_id)] == [passage_id]
    assert sorted(r["answered"] for r in rows(tables, "questions", guild_id=guild_id)) == [0, 1, 1]
    [settings] = rows(tables, "guild_settings", guild_id=guild_id)
    assert (settings["cooldown_seconds"], settings["strictness"]) == (0, 0.65)
    assert settings["moderator_role_id"] == int(helpers["id"])

    assert bot.library.base is not None
    voted = bot.library.base.passage(passage_id)
    assert voted is not None
    upload_text = "Notes\nThe server was founded in 2020.\n"
    return Scene(
        bot=bot,
        guild_id=guild_id,
        here=standin.channel,
        other=standin.guild["channels"][1],
        alice=standin.member,
        stewards=role_named(standin, "Stewards"),
        upload=standin.add_attachment("notes.txt", upload_text.encode(), "text/plain"),
        upload_text=upload_text,
        voted_place=voted.place,
    )


@pytest.mark.parametrize("user", USERS)
async def test_admin_security_matrix(
    standin: DiscordStandin, run_bot: RunBot, database: Path, user: str
) -> None:
    people = add_users(standin)
    who = people[user]
    problems: list[str] = []
    async with run_bot() as bot:
        scene = await set_the_scene(standin, bot, database)
        scene.actor_id = _uid(who)
        for command, case in CASES.items():
            before = read_database(database)
            scene.sent_at = time.time()
            sent = await invoke(standin, "admin", case.options(scene), subcommand=command, member=who)
            after = read_database(database)
            assert sent.ephemeral, (user, command)  # every /admin reply is private, refusals included
            allow = allowed(user, command)
            for problem in check_cell(case, scene, allow, before, after, all_text(sent)):
                problems.append(f"{user} /admin {command} ({'allowed' if allow else 'refused'}): {problem}")
    assert not problems, "\n".join(problems)


def admin_subcommands(group: app_commands.Group) -> Iterator[str]:
    """Every command under ``group``, its sub-groups included, by name below /admin."""
    for command in group.commands:
        if isinstance(command, app_commands.Group):
            yield from admin_subcommands(command)
        else:
            yield command.qualified_name.removeprefix("admin ")


async def test_the_matrix_covers_every_admin_subcommand(run_bot: RunBot) -> None:
    """The command tree the bot registers, after its cogs loaded: a new /admin subcommand that the
    matrix's table lacks fails here, and so does a table entry for a command that no longer exists."""
    async with run_bot() as bot:
        [admin] = [c for c in bot.tree.get_commands() if c.name == "admin"]
        assert isinstance(admin, app_commands.Group)
        found = sorted(admin_subcommands(admin))
    assert len(found) >= len(CASES) // 2  # the walk found the tree, not an empty group
    assert not set(found) - set(CASES), f"not in the matrix's table: {sorted(set(found) - set(CASES))}"
    assert not set(CASES) - set(found), f"no such /admin subcommand: {sorted(set(CASES) - set(found))}"
    assert len(found) == len(set(found))


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
