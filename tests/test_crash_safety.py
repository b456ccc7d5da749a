"""Crash safety: ``kill -9`` the bot in the middle of a burst of /admin changes, restart it on the
same database, and every change it had acknowledged to the moderator is still there.

The bot runs as its own process (``python -m bot run`` through ``tests/bot_process.py``) against the
Discord stand-in. Each burst mixes every kind of moderator change: ``settings set`` with varying
values, ``channels allow``/``deny``/``clear``, ``modrole set``, ``block``/``unblock`` and
``documents add`` with attachments the stand-in serves. The changes go out as fast as the bot
acknowledges them, with up to ``IN_FLIGHT`` sent and not yet acknowledged, and the bot is killed
either after it has acknowledged N changes or at a seeded random moment, and always before it has
acknowledged ``len(burst) - IN_FLIGHT``: so no kill point lands after the burst's last commit (the
bot commits each change before acknowledging it, and it never holds more than ``IN_FLIGHT`` it has
not acknowledged). Without the window the bot committed all 44 changes within ~0.1 s, before three
of the six kill points.

"Acknowledged" means the stand-in recorded the bot's success reply for that interaction (the
interaction callback, or for ``documents add`` the follow-up after the deferral). Those changes
must be in the database after the crash, each with its audit row. Unacknowledged ones may or may
not be there, but never half: a change and its audit row are written together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import pytest
from bot_process import BotProcess
from conftest import invoke
from standin import DiscordStandin, payloads
from standin.payloads import Payload

from bot.storage import AuditEntry, Block, ChannelRules, GuildSettings, SQLiteStorage, StoredDocument

SEED = 20_240_611  # fixes the burst's order and values, and the random kill moment
CHANNELS_RULED = 10  # fresh channels that get one allow or deny each in the burst
CHANNELS_CLEARED = 3  # channels denied before the burst and cleared in it
ROLES = 5
MEMBERS_BLOCKED = 6  # blocked in the burst
MEMBERS_UNBLOCKED = 3  # blocked before the burst, unblocked in it
SETTINGS_CHANGES = 10
DOCUMENTS = 7
BURST_DEADLINE = 20.0  # seconds: a bound on every wait in the burst
IN_FLIGHT = 8  # burst changes sent to the bot and not yet acknowledged, at most


# -- the world ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    guild: Payload
    general: Payload
    mod: Payload
    ruled: list[Payload]  # channels
    cleared: list[Payload]  # channels
    roles: list[Payload]
    to_block: list[Payload]  # members
    to_unblock: list[Payload]  # members


def make_world() -> World:
    """One server with enough channels, roles and members that no two burst changes share a target."""
    bot_user = payloads.user("standin-bot", id=payloads.DEFAULT_APPLICATION_ID, bot=True)
    owner, mod = payloads.user("owner"), payloads.user("mod")
    moderator = payloads.role("Moderator", permissions=discord.Permissions(manage_guild=True), position=1)
    roles = [payloads.role(f"team-{i}", position=2 + i) for i in range(ROLES)]
    general = payloads.text_channel("general", position=0)
    ruled = [payloads.text_channel(f"ruled-{i}", position=1 + i) for i in range(CHANNELS_RULED)]
    cleared = [payloads.text_channel(f"cleared-{i}", position=20 + i) for i in range(CHANNELS_CLEARED)]
    people = [
        payloads.member(payloads.user(f"member-{i}")) for i in range(MEMBERS_BLOCKED + MEMBERS_UNBLOCKED)
    ]
    mod_member = payloads.member(mod, roles=[moderator])
    guild = payloads.guild(
        "Crash Guild",
        owner_id=owner["id"],
        roles=[moderator, *roles],
        channels=[general, *ruled, *cleared],
        members=[payloads.member(owner), mod_member, *people, payloads.member(bot_user)],
    )
    channels = {c["id"]: c for c in guild["channels"]}  # payloads.guild filled in guild_id

    def pick(found: list[Payload]) -> list[Payload]:
        return [channels[c["id"]] for c in found]

    return World(
        guild=guild,
        general=channels[general["id"]],
        mod=mod_member,
        ruled=pick(ruled),
        cleared=pick(cleared),
        roles=roles,
        to_block=people[:MEMBERS_BLOCKED],
        to_unblock=people[MEMBERS_BLOCKED:],
    )


# -- the changes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One /admin change: what the moderator sends, the reply that acknowledges it, and the audit
    rows (action, detail pattern) it must have written if it was acknowledged."""

    kind: str  # settings, allow, deny, clear, modrole, block, unblock, document
    subcommand: str
    options: dict[str, Any] = field(repr=False)  # payloads: too long for an assertion message
    ack: str  # the acknowledging reply starts with this
    audits: tuple[tuple[str, str], ...]
    target: int = 0  # channel, role or member id
    name: str = ""  # document name
    text: str = field(default="", repr=False)  # document text
    reason: str = ""  # block reason


def _member_id(member: Payload) -> int:
    return int(member["user"]["id"])


def setup_changes(world: World) -> list[Change]:
    """Done one by one before the burst: the rules and blocks the burst then removes."""
    changes = [
        Change(
            "deny",
            "channels deny",
            {"channel": channel},
            "Saved.",
            (("channels.deny", rf"channel {channel['id']}: none -> deny"),),
            target=int(channel["id"]),
        )
        for channel in world.cleared
    ]
    for member in world.to_unblock:
        uid = _member_id(member)
        changes.append(
            Change(
                "block",
                "block",
                {"member": member, "reason": "setup"},
                f"<@{uid}> is blocked",
                (("block", rf"user {uid}: setup"),),
                target=uid,
                reason="setup",
            )
        )
    return changes


def burst_changes(world: World, rng: random.Random, standin: DiscordStandin) -> list[Change]:
    changes: list[Change] = []
    for i in range(SETTINGS_CHANGES):
        # cooldown and strictness are unique per change, so each one always writes its audit rows;
        # the other settings repeat values, so some of their writes are no-ops (no audit row).
        cooldown, strictness = 100 + i, round(0.101 + i / 100, 3)
        options: dict[str, Any] = {
            "passages": rng.randint(1, 5),
            "visibility": rng.choice(["public", "private"]),
            "mentions": rng.choice([True, False]),
            "cooldown": cooldown,
            "strictness": strictness,
        }
        audits = (
            ("settings.set", rf"cooldown_seconds: \d+ -> {cooldown}"),
            ("settings.set", rf"strictness: [0-9.]+ -> {re.escape(str(strictness))}"),
        )
        changes.append(Change("settings", "settings set", options, "Saved.\n**Settings**", audits))
    for i, channel in enumerate(world.ruled):
        rule = "allow" if i % 2 == 0 else "deny"
        audit = (f"channels.{rule}", rf"channel {channel['id']}: none -> {rule}")
        changes.append(
            Change(rule, f"channels {rule}", {"channel": channel}, "Saved.", (audit,), int(channel["id"]))
        )
    for channel in world.cleared:
        audit = ("channels.clear", rf"channel {channel['id']}: deny -> none")
        changes.append(
            Change("clear", "channels clear", {"channel": channel}, "Saved.", (audit,), int(channel["id"]))
        )
    for role in world.roles:
        audit = ("modrole.set", rf"moderator_role_id: \w+ -> {role['id']}")
        ack = f"Moderator role set to <@&{role['id']}>"
        changes.append(Change("modrole", "modrole set", {"role": role}, ack, (audit,), int(role["id"])))
    for i, member in enumerate(world.to_block):
        uid, reason = _member_id(member), f"burst-{i}"
        changes.append(
            Change(
                "block",
                "block",
                {"member": member, "reason": reason},
                f"<@{uid}> is blocked",
                (("block", rf"user {uid}: {reason}"),),
                target=uid,
                reason=reason,
            )
        )
    for member in world.to_unblock:
        uid = _member_id(member)
        changes.append(
            Change(
                "unblock",
                "unblock",
                {"member": member},
                f"<@{uid}> can ask again.",
                (("unblock", rf"user {uid}"),),
                target=uid,
            )
        )
    for i in range(DOCUMENTS):
        name = f"drill-{i}.txt"
        text = f"Drill {i}\nThe crash drill number {i} keeps the code word {rng.randrange(10**9)} safe.\n"
        upload = standin.add_attachment(name, text.encode(), "text/plain")
        size = len(text.encode())
        audit = ("documents.add", rf"{re.escape(name)} added \({size} bytes\)")
        ack = f"Added `{name}`"
        changes.append(
            Change("document", "documents add", {"file": upload}, ack, (audit,), name=name, text=text)
        )
    rng.shuffle(changes)
    return changes


# -- what the database holds --------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    settings: GuildSettings
    rules: ChannelRules
    documents: dict[str, StoredDocument]
    blocks: dict[int, Block]
    audit: list[AuditEntry]  # oldest first


async def read_snapshot(database: Path, guild_id: int) -> Snapshot:
    storage = SQLiteStorage(database)
    await storage.open()  # runs WAL recovery and the migration check, as the bot's start does
    try:
        return Snapshot(
            settings=await storage.get_settings(guild_id),
            rules=await storage.get_channel_rules(guild_id),
            documents={d.name: d for d in await storage.list_documents(guild_id)},
            blocks={b.user_id: b for b in await storage.list_blocks(guild_id)},
            audit=list(reversed(await storage.audit_log(guild_id, limit=100_000))),
        )
    finally:
        await storage.close()


def integrity(database: Path) -> str:
    """``PRAGMA integrity_check`` on the database as it is on disk, its WAL included."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(r[0]) for r in rows)


def audit_rows(change: Change, snapshot: Snapshot) -> list[list[AuditEntry]]:
    """For each audit row the change must write, the rows in the log that match it."""
    return [
        [e for e in snapshot.audit if e.action == action and re.fullmatch(detail, e.detail)]
        for action, detail in change.audits
    ]


def effect_present(change: Change, snapshot: Snapshot) -> bool | None:
    """Whether the change's own effect is in the state; None for settings and the moderator role,
    whose values a later change may overwrite (their history is checked through the audit chain)."""
    rules, blocks = snapshot.rules, snapshot.blocks
    if change.kind == "allow":
        return change.target in rules.allowed
    if change.kind == "deny":
        return change.target in rules.denied
    if change.kind == "clear":
        return change.target not in rules.allowed | rules.denied
    if change.kind == "block":
        block = blocks.get(change.target)
        return block is not None and block.reason == change.reason
    if change.kind == "unblock":
        return change.target not in blocks
    if change.kind == "document":
        doc = snapshot.documents.get(change.name)
        return doc is not None and doc.text == change.text
    return None


def shown(value: object) -> str:
    """A setting as the audit log writes it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def check_setting_histories(snapshot: Snapshot) -> None:
    """Each setting's audit rows form one chain from the default to the stored value: every committed
    change saw the one before it, and nothing was stored without its row (or the reverse)."""
    defaults = GuildSettings()
    for setting in (
        "passages_per_answer",
        "default_visibility",
        "mention_replies",
        "cooldown_seconds",
        "strictness",
        "moderator_role_id",
    ):
        value = shown(getattr(defaults, setting))
        for entry in snapshot.audit:
            match = re.fullmatch(rf"{setting}: (\S+) -> (\S+)", entry.detail)
            if match and entry.action in ("settings.set", "modrole.set", "modrole.clear"):
                assert match[1] == value, (
                    f"{setting}: audit row {entry.id} starts from {match[1]}, not {value}"
                )
                value = match[2]
        assert shown(getattr(snapshot.settings, setting)) == value, setting


# -- the burst ----------------------------------------------------------------------------------
def replies_by_interaction(standin: DiscordStandin) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for sent in standin.sent_messages():
        if sent.interaction_id is not None:
            found.setdefault(sent.interaction_id, []).append(sent.content or "")
    return found


def acknowledged(standin: DiscordStandin, sent: dict[str, Change]) -> set[str]:
    replies = replies_by_interaction(standin)
    return {
        iid for iid, change in sent.items() if any(r.startswith(change.ack) for r in replies.get(iid, []))
    }


@dataclass(frozen=True)
class KillPoint:
    acks: int | None = None  # kill once this many burst changes are acknowledged
    delay: float | None = None  # or this many seconds after the burst starts

    def __str__(self) -> str:
        return f"after-{self.acks}-acks" if self.acks is not None else f"at-{self.delay:.3f}s"


# Four ack counts and two seeded random moments inside the burst; a moment the burst outlasts
# kills at LAST_KILL_ACKS instead. Six kill points take ~15-25 s in all.
BURST_SIZE = SETTINGS_CHANGES + CHANNELS_RULED + CHANNELS_CLEARED + ROLES + MEMBERS_BLOCKED
BURST_SIZE += MEMBERS_UNBLOCKED + DOCUMENTS
LAST_KILL_ACKS = BURST_SIZE - IN_FLIGHT  # by then at most BURST_SIZE - 1 changes have been sent
_moments = random.Random(SEED)
KILL_POINTS = [
    *(KillPoint(acks=n) for n in (1, 8, 20, LAST_KILL_ACKS)),
    *(KillPoint(delay=round(_moments.uniform(0.02, 0.15), 3)) for _ in range(2)),
]


@pytest.mark.parametrize("kill_point", KILL_POINTS, ids=str)
async def test_acknowledged_changes_survive_kill_9(tmp_path: Path, kill_point: KillPoint) -> None:
    world = make_world()
    guild_id = int(world.guild["id"])
    database = tmp_path / "articlebot.db"
    rng = random.Random(f"{SEED}-{kill_point}")
    async with DiscordStandin(guilds=[world.guild]) as standin:
        changes = burst_changes(world, rng, standin)
        before = setup_changes(world)
        sent: dict[str, Change] = {}
        async with BotProcess(standin, database=database) as bot:
            for change in before:
                reply = await invoke(
                    standin, "admin", change.options, subcommand=change.subcommand, member=world.mod,
                    channel=world.general,
                )  # fmt: skip
                assert (reply.content or "").startswith(change.ack), reply.content
            assert len(changes) == BURST_SIZE
            loop = asyncio.get_running_loop()
            started = loop.time()
            unsent = list(changes)
            while True:  # bounded by BURST_DEADLINE
                elapsed = loop.time() - started
                done = len(acknowledged(standin, sent))
                if done >= min(kill_point.acks or LAST_KILL_ACKS, LAST_KILL_ACKS):
                    break
                if kill_point.delay is not None and elapsed >= kill_point.delay:
                    break
                assert elapsed < BURST_DEADLINE, f"only {done} changes acknowledged in {elapsed:.1f}s"
                # Never more than IN_FLIGHT unacknowledged, counted from ``done``: acknowledgements
                # arriving while these go out do not let more out before the next check.
                while unsent and len(sent) < done + IN_FLIGHT:
                    change = unsent.pop(0)
                    event = standin.slash_interaction(
                        "admin", change.options, subcommand=change.subcommand, member=world.mod,
                        channel=world.general,
                    )  # fmt: skip
                    sent[event["id"]] = change
                    await standin.dispatch("INTERACTION_CREATE", event)
                await asyncio.sleep(0.002)  # the stand-in shares this loop: leave it time to serve
            bot.kill()
            killed_at, acked_at_kill = loop.time() - started, len(acknowledged(standin, sent))
            assert await bot.wait() == -signal.SIGKILL
        # Requests the bot finished sending before it died may still be in the stand-in's hands.
        await asyncio.sleep(0.2)
        acked = acknowledged(standin, sent)
        replies = replies_by_interaction(standin)
        for iid, change in sent.items():  # under load, no change was refused or failed
            for text in replies.get(iid, []):
                assert text.startswith(change.ack), (change, text)
        wal = Path(f"{database}-wal")
        assert wal.exists(), "a SIGKILL leaves the WAL behind: the restart has to recover from it"
        wal_bytes = wal.stat().st_size

        # The crash image (database + WAL, as the kill left them), checked before the bot touches it.
        image = tmp_path / "image" / database.name
        image.parent.mkdir()
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{database}{suffix}", f"{image}{suffix}")
        assert integrity(image) == "ok"
        crashed = await read_snapshot(image, guild_id)
        # The kill landed inside the burst, before its last commit: some change is not in the
        # crash image, and the bot had not acknowledged them all.
        committed_at_kill = sum(1 for c in changes if audit_rows(c, crashed)[0])
        assert committed_at_kill < len(changes) and acked_at_kill < len(changes), (
            f"killed after the burst's last commit: {committed_at_kill} of {len(changes)} committed, "
            f"{acked_at_kill} acknowledged"
        )

        # The bot restarts on the same database and reports every acknowledged change itself.
        async with BotProcess(standin, database=database) as bot:
            shown_settings = await invoke(standin, "admin", subcommand="settings show", member=world.mod)
            channels = await invoke(standin, "admin", subcommand="channels list", member=world.mod)
            documents = await invoke(standin, "admin", subcommand="documents list", member=world.mod)
            blocked = await invoke(standin, "admin", subcommand="blocked", member=world.mod)
            bot.terminate()
            assert await bot.wait() == 0
            restart_log = bot.output()
        after = await read_snapshot(database, guild_id)
        assert integrity(database) == "ok"
        standin.assert_clean()

    burst_acked = [sent[i] for i in acked]
    never_sent = [c for c in changes if c not in sent.values()]
    for snapshot in (crashed, after):
        for change in never_sent:
            assert not any(audit_rows(change, snapshot)), f"never sent, yet written: {change}"
        for change in before:  # acknowledged one by one; the burst may have undone their effect since
            assert all(len(r) == 1 for r in audit_rows(change, snapshot)), f"lost: {change}"
        for change in sent.values():
            rows = audit_rows(change, snapshot)
            effect = effect_present(change, snapshot)
            assert all(len(r) <= 1 for r in rows), f"audit row written twice: {change}"
            written = [bool(r) for r in rows]
            # Atomic: a change's audit rows and its effect are all there or none is.
            assert len(set(written)) == 1, (change, written)
            assert effect is None or effect == written[0], (change, written, effect)
            if change in burst_acked:
                assert written[0], f"acknowledged but lost: {change}"
        check_setting_histories(snapshot)
    assert after == crashed  # the restart itself lost or changed nothing
    assert "Traceback" not in restart_log and " ERROR " not in restart_log, restart_log

    # The restarted bot's own /admin replies show the database, so every acknowledged change.
    settings, text = after.settings, shown_settings.content or ""
    assert f"Passages per answer: {settings.passages_per_answer}" in text
    assert f"Default visibility: {settings.default_visibility}" in text
    assert f"Cooldown per member: {settings.cooldown_seconds} s" in text
    assert f"Strictness of “not in the article”: {settings.strictness:.2f}" in text
    assert f"Reply to mentions: {shown(settings.mention_replies)}" in text
    role = settings.moderator_role_id
    assert f"Moderator role: {f'<@&{role}>' if role else 'none'}" in text
    answers_in, never_in = (channels.content or "").split("\n", 1)
    assert sorted(map(int, re.findall(r"<#(\d+)>", answers_in))) == sorted(after.rules.allowed)
    assert sorted(map(int, re.findall(r"<#(\d+)>", never_in))) == sorted(after.rules.denied)
    assert sorted(re.findall(r"^`([^`]+)` “", documents.content or "", flags=re.M)) == sorted(after.documents)
    listed = re.findall(r"^<@(\d+)> by", blocked.content or "", flags=re.M)
    assert sorted(map(int, listed)) == sorted(after.blocks)
    for change in burst_acked:
        if change.kind == "allow":
            assert f"<#{change.target}>" in answers_in
        elif change.kind == "deny":
            assert f"<#{change.target}>" in never_in
        elif change.kind == "clear":
            assert f"<#{change.target}>" not in (channels.content or "")
        elif change.kind == "document":
            assert f"`{change.name}`" in (documents.content or "")
        elif change.kind == "block":
            assert f"<@{change.target}> by" in (blocked.content or "")
        elif change.kind == "unblock":
            assert f"<@{change.target}>" not in (blocked.content or "")
    for reply in (shown_settings, channels, documents, blocked):
        assert not (reply.content or "").endswith("…"), "a listing was cut: the check would miss entries"

    committed = sum(1 for c in sent.values() if audit_rows(c, after)[0])
    print(
        f"kill {kill_point}: killed {killed_at * 1000:.0f} ms into the burst with {acked_at_kill} of "
        f"{len(sent)} changes sent acknowledged ({len(acked)} once the stand-in had read everything "
        f"sent) and {committed_at_kill} of {len(changes)} committed; "
        f"all {len(acked)} + {len(before)} set up before are present after the restart; {committed} "
        f"committed in all; {len(after.audit)} audit rows; the kill left a {wal_bytes}-byte WAL"
    )
