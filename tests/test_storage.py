"""Every storage method, on both backends: SQLite on a real file, PostgreSQL on a real server.

``store`` and ``backend`` (tests/storage_backends.py) run each test once per backend; what only
one backend has (SQLite's pragmas, PostgreSQL's pool and restarts) is tested on that one alone,
here and in tests/test_storage_postgres.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from storage_backends import Backend

from bot.storage import (
    Admission,
    ChannelRules,
    FeedbackTally,
    GuildSettings,
    QuestionStats,
    SQLiteStorage,
    Storage,
    StorageError,
    open_storage,
    schema,
)
from bot.storage import sqlite as sqlite_backend
from bot.storage.postgres import PostgresStorage

G1, G2 = 1, 2
MOD, OTHER_MOD = 100, 101
START = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    """A settable clock, so rows can be placed in time."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(backend: Backend, clock: Clock) -> AsyncIterator[Storage]:
    storage = backend.storage(clock=clock)
    await storage.open()
    yield storage
    await storage.close()


async def populate(store: Storage, guild_id: int) -> int:
    """Write one of everything for ``guild_id``; returns the id of its logged miss."""
    await store.update_settings(guild_id, MOD, cooldown_seconds=30, moderator_role_id=555)
    await store.set_channel_rule(guild_id, 10, "allow", MOD)
    await store.set_channel_rule(guild_id, 11, "deny", MOD)
    await store.add_document(guild_id, "faq.md", "FAQ", "Some text.", MOD)
    await store.log_question(guild_id, 10, 7, "who?", True, "p1", 12.0)
    miss = await store.log_question(guild_id, 10, 7, "why?", False, None, 8.0)
    await store.record_feedback(guild_id, "p1", 7, +1)
    await store.block_user(guild_id, 8, MOD, "spam")
    return miss


# -- settings ---------------------------------------------------------------------------------------
async def test_unknown_guild_gets_defaults(store: Storage) -> None:
    assert await store.get_settings(G1) == GuildSettings()
    assert await store.get_channel_rules(G1) == ChannelRules()
    assert await store.list_documents(G1) == []
    assert await store.get_question(G1, 1) is None
    assert await store.question_stats(G1) == QuestionStats()
    assert await store.recent_misses(G1) == []
    assert await store.feedback_summary(G1) == []
    assert await store.list_blocks(G1) == []
    assert not await store.is_blocked(G1, 7)
    assert await store.audit_log(G1) == []


async def test_update_settings_round_trip(store: Storage) -> None:
    updated = await store.update_settings(
        G1,
        MOD,
        passages_per_answer=5,
        default_visibility="private",
        mention_replies=False,
        cooldown_seconds=0,
        strictness=1,
        moderator_role_id=42,
    )
    expected = GuildSettings(5, "private", False, 0, 1.0, 42)
    assert updated == expected
    assert await store.get_settings(G1) == expected
    # A later partial update keeps the rest.
    again = await store.update_settings(G1, MOD, cooldown_seconds=3600)
    assert again == GuildSettings(5, "private", False, 3600, 1.0, 42)
    assert isinstance(again.strictness, float)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("passages_per_answer", 0, "passages_per_answer must be between 1 and 5"),
        ("passages_per_answer", 6, "passages_per_answer must be between 1 and 5"),
        ("passages_per_answer", "3", "passages_per_answer must be between 1 and 5"),
        ("passages_per_answer", True, "passages_per_answer must be between 1 and 5"),
        ("default_visibility", "secret", "default_visibility must be public or private"),
        ("mention_replies", 1, "mention_replies must be true or false"),
        ("cooldown_seconds", -1, "cooldown_seconds must be between 0 and 3600"),
        ("cooldown_seconds", 3601, "cooldown_seconds must be between 0 and 3600"),
        ("cooldown_seconds", 1.5, "cooldown_seconds must be between 0 and 3600"),
        ("strictness", -0.1, "strictness must be between 0 and 1"),
        ("strictness", 1.01, "strictness must be between 0 and 1"),
        ("strictness", float("nan"), "strictness must be between 0 and 1"),
        ("strictness", "high", "strictness must be between 0 and 1"),
        ("moderator_role_id", "admins", "moderator_role_id must be a role id or none"),
        ("moderator_role_id", 0, "moderator_role_id must be a role id or none"),
        ("colour", "blue", "unknown setting: colour"),
    ],
)
async def test_update_settings_rejects_bad_values(
    store: Storage, name: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        await store.update_settings(G1, MOD, **{name: value})
    assert str(excinfo.value) == message


async def test_one_bad_value_applies_nothing(store: Storage) -> None:
    with pytest.raises(ValueError):
        await store.update_settings(G1, MOD, cooldown_seconds=30, passages_per_answer=9)
    assert await store.get_settings(G1) == GuildSettings()
    assert await store.audit_log(G1) == []


async def test_settings_changes_are_audited(store: Storage, clock: Clock) -> None:
    await store.update_settings(G1, MOD, cooldown_seconds=30)
    clock.now = START + dt.timedelta(minutes=1)
    await store.update_settings(G1, OTHER_MOD, mention_replies=False, moderator_role_id=555)
    await store.update_settings(G1, MOD, moderator_role_id=None)
    await store.update_settings(G1, MOD, cooldown_seconds=30)  # no change: no audit row

    entries = await store.audit_log(G1)
    assert [(e.actor_id, e.action, e.detail) for e in entries] == [
        (MOD, "modrole.clear", "moderator_role_id: 555 -> none"),
        (OTHER_MOD, "modrole.set", "moderator_role_id: none -> 555"),
        (OTHER_MOD, "settings.set", "mention_replies: on -> off"),
        (MOD, "settings.set", "cooldown_seconds: 10 -> 30"),
    ]
    assert all(e.guild_id == G1 for e in entries)
    assert entries[-1].at == START
    assert entries[0].at.tzinfo is not None and entries[0].at.utcoffset() == dt.timedelta(0)
    assert len(await store.audit_log(G1, limit=2)) == 2


# -- channels ---------------------------------------------------------------------------------------
async def test_channel_rules_allow_deny_clear(store: Storage) -> None:
    rules = await store.set_channel_rule(G1, 10, "allow", MOD)
    assert rules == ChannelRules(allowed={10})
    assert rules.permits(10) and not rules.permits(99)

    rules = await store.set_channel_rule(G1, 11, "deny", MOD)
    assert rules == ChannelRules(allowed={10}, denied={11})
    rules = await store.set_channel_rule(G1, 10, "deny", MOD)  # switching replaces the rule
    assert rules == ChannelRules(denied={10, 11})
    assert rules.permits(99) and not rules.permits(10)

    rules = await store.set_channel_rule(G1, 10, "clear", MOD)
    assert rules == ChannelRules(denied={11})
    assert await store.get_channel_rules(G1) == rules
    await store.set_channel_rule(G1, 10, "clear", MOD)  # nothing to clear: no audit row

    assert [(e.action, e.detail) for e in await store.audit_log(G1)] == [
        ("channels.clear", "channel 10: deny -> none"),
        ("channels.deny", "channel 10: allow -> deny"),
        ("channels.deny", "channel 11: none -> deny"),
        ("channels.allow", "channel 10: none -> allow"),
    ]


async def test_bad_channel_rule_is_rejected(store: Storage) -> None:
    with pytest.raises(ValueError):
        await store.set_channel_rule(G1, 10, "open", MOD)  # type: ignore[arg-type]


def test_channel_rules_permits() -> None:
    assert ChannelRules().permits(1)
    assert not ChannelRules(denied={1}).permits(1)
    assert ChannelRules(allowed={1}).permits(1)
    assert not ChannelRules(allowed={1}).permits(2)
    assert not ChannelRules(allowed={1}, denied={1}).permits(1)  # deny wins


# -- documents --------------------------------------------------------------------------------------
async def test_documents_add_replace_list_remove(store: Storage, clock: Clock) -> None:
    doc = await store.add_document(G1, "faq.md", "FAQ", "café", MOD)
    assert doc.size_bytes == 5  # UTF-8 bytes, not characters
    assert doc.added_at == START and doc.added_by == MOD
    await store.add_document(G1, "about.txt", "About", "About us.", MOD)
    assert [d.name for d in await store.list_documents(G1)] == ["about.txt", "faq.md"]

    clock.now = START + dt.timedelta(hours=1)
    replaced = await store.add_document(G1, "faq.md", "FAQ v2", "New text.", OTHER_MOD)
    docs = await store.list_documents(G1)
    assert len(docs) == 2
    assert docs[1] == replaced
    assert (replaced.title, replaced.text, replaced.added_by) == ("FAQ v2", "New text.", OTHER_MOD)
    assert replaced.added_at == START + dt.timedelta(hours=1)

    assert await store.remove_document(G1, "about.txt", MOD)
    assert not await store.remove_document(G1, "about.txt", MOD)  # already gone: no audit row
    assert [d.name for d in await store.list_documents(G1)] == ["faq.md"]

    assert [(e.actor_id, e.action, e.detail) for e in await store.audit_log(G1)] == [
        (MOD, "documents.remove", "about.txt"),
        (OTHER_MOD, "documents.add", "faq.md replaced (9 bytes)"),
        (MOD, "documents.add", "about.txt added (9 bytes)"),
        (MOD, "documents.add", "faq.md added (5 bytes)"),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "../evil.md",
        "a/b.md",
        "a\\b.md",
        ".hidden.md",
        "x.exe",
        "noext",
        "",
        ".md",
        "faq.md ",
        "faq.md\n",
        "caf\u00e9.md",
        "a" * 62 + ".md",  # 65 characters
    ],
)
async def test_invalid_document_names_are_rejected(store: Storage, name: str) -> None:
    with pytest.raises(ValueError, match="document names must be"):
        await store.add_document(G1, name, "t", "text", MOD)
    assert await store.list_documents(G1) == []
    assert await store.audit_log(G1) == []


@pytest.mark.parametrize("name", ["faq.md", "Notes-2024_v1.2.txt", "a.md", "a" * 61 + ".md"])
async def test_valid_document_names_are_accepted(store: Storage, name: str) -> None:
    assert (await store.add_document(G1, name, "t", "text", MOD)).name == name


# -- question log -----------------------------------------------------------------------------------
async def test_log_and_get_question(store: Storage) -> None:
    first = await store.log_question(G1, 10, 7, "Who won?", True, "p3", 12.5)
    second = await store.log_question(G1, 10, 8, "Why?", False, None, 4.0)
    assert second > first

    q = await store.get_question(G1, first)
    assert q is not None
    assert (q.id, q.guild_id, q.channel_id, q.user_id) == (first, G1, 10, 7)
    assert (q.question, q.answered, q.top_passage_id, q.elapsed_ms) == ("Who won?", True, "p3", 12.5)
    assert q.asked_at == START and q.asked_at.tzinfo is not None
    missed = await store.get_question(G1, second)
    assert missed is not None and missed.answered is False and missed.top_passage_id is None
    assert await store.get_question(G1, second + 1) is None


async def test_times_are_stored_and_returned_in_utc(store: Storage, clock: Clock, backend: Backend) -> None:
    clock.now = dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 12:00 UTC
    question_id = await store.log_question(G1, 10, 7, "q", True, None, 1.0)
    stored = {"sqlite": "2024-05-01T12:00:00.000000+00:00", "postgresql": START}  # text; TIMESTAMPTZ
    assert await backend.rows("SELECT asked_at FROM questions") == [(stored[backend.name],)]
    question = await store.get_question(G1, question_id)
    assert question is not None and question.asked_at == START and question.asked_at.tzinfo == dt.UTC
    # A naive ``since`` means UTC, not the server's local time.
    naive = START.replace(tzinfo=None)
    assert (await store.question_stats(G1, since=naive)).answered == 1
    assert (await store.question_stats(G1, since=naive + dt.timedelta(seconds=1))).answered == 0


async def test_question_stats_window_and_median(store: Storage, clock: Clock) -> None:
    # Two days ago: 1 answered, 1 missed.
    clock.now = START - dt.timedelta(days=2)
    await store.log_question(G1, 10, 7, "old a", True, "p1", 100.0)
    await store.log_question(G1, 10, 7, "old b", False, None, 200.0)
    # Now: 2 answered, 1 missed.
    clock.now = START
    for ms, answered in [(10.0, True), (30.0, True), (20.0, False)]:
        await store.log_question(G1, 10, 7, "new", answered, None, ms)

    day = await store.question_stats(G1, since=START - dt.timedelta(hours=24))
    assert day == QuestionStats(answered=2, missed=1, median_ms=20.0)  # odd count: the middle one
    ever = await store.question_stats(G1)
    assert ever == QuestionStats(answered=3, missed=2, median_ms=30.0)  # 10 20 30 100 200
    await store.log_question(G1, 10, 7, "newer", True, None, 40.0)
    assert (await store.question_stats(G1, since=START)).median_ms == 25.0  # even: mean of middle two
    assert await store.question_stats(G1, since=START + dt.timedelta(days=1)) == QuestionStats()


async def test_recent_misses_newest_first(store: Storage, clock: Clock) -> None:
    for minute in range(5):
        clock.now = START + dt.timedelta(minutes=minute)
        await store.log_question(G1, 10, 7, f"miss {minute}", False, None, 1.0)
        await store.log_question(G1, 10, 7, f"hit {minute}", True, "p1", 1.0)
    misses = await store.recent_misses(G1, limit=3)
    assert [m.question for m in misses] == ["miss 4", "miss 3", "miss 2"]
    assert not any(m.answered for m in misses)


async def test_insight_columns_round_trip(store: Storage) -> None:
    first = await store.log_question(
        G1, 10, 7, "Who called Musk a rocket man?", True, "p8", 3.0, confidence=0.75, section="The Rift"
    )
    follow = await store.log_question(
        G1, 10, 7, "and what did he reply?", True, "p8", 2.0, follow_up_of=first
    )
    plain = await store.get_question(G1, first)
    reply = await store.get_question(G1, follow)
    assert plain is not None and (plain.confidence, plain.section, plain.follow_up_of) == (
        0.75,
        "The Rift",
        None,
    )
    assert reply is not None and (reply.confidence, reply.section, reply.follow_up_of) == (None, None, first)


async def test_questions_and_votes_since_oldest_first_per_guild(store: Storage, clock: Clock) -> None:
    for day in range(3):
        clock.now = START + dt.timedelta(days=day)
        await store.log_question(G1, 10, 7, f"day {day}", day != 1, None, 1.0)
        await store.log_question(G2, 10, 7, f"other {day}", True, None, 1.0)
        await store.record_feedback(G1, f"p{day}", 7, -1 if day else +1)
    since = START + dt.timedelta(days=1)
    assert [q.question for q in await store.questions_since(G1, since)] == ["day 1", "day 2"]
    assert [q.question for q in await store.questions_since(G1, START, limit=1)] == ["day 0"]
    votes = await store.votes_since(G1, since)
    assert [(v.passage_id, v.vote, v.voted_at) for v in votes] == [
        ("p1", -1, START + dt.timedelta(days=1)),
        ("p2", -1, START + dt.timedelta(days=2)),
    ]
    assert await store.votes_since(G2, START) == []


async def test_follow_up_window_setting_round_trip(store: Storage) -> None:
    assert (await store.get_settings(G1)).follow_up_minutes == schema.FOLLOW_UP_MINUTES.default
    assert (await store.update_settings(G1, MOD, follow_up_minutes=0)).follow_up_minutes == 0
    assert (await store.get_settings(G1)).follow_up_minutes == 0
    with pytest.raises(ValueError, match="follow_up_minutes must be between 0 and 1440"):
        await store.update_settings(G1, MOD, follow_up_minutes=1441)


async def test_schema_1_database_gains_the_insight_columns_and_keeps_its_rows(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database made by the release before insights (schema 1) opens, migrates and keeps its rows."""
    with monkeypatch.context() as patch:
        patch.setattr(backend.module, "MIGRATIONS", backend.module.MIGRATIONS[:1])
        old = backend.storage()
        await old.open()
        await backend.rows(
            "INSERT INTO questions (guild_id, channel_id, user_id, question, answered, top_passage_id, "
            f"elapsed_ms, asked_at) VALUES ({G1}, 10, 7, 'old?', {backend.true}, 'p1', 1.0, "
            + ("'2024-05-01T12:00:00.000000+00:00'" if backend.name == "sqlite" else "now()")
            + ")"
        )
        await backend.rows(
            "INSERT INTO guild_settings (guild_id, passages_per_answer, default_visibility, mention_replies, "
            f"cooldown_seconds, strictness) VALUES ({G1}, 3, 'public', {backend.true}, 30, 0.5)"
        )
        await old.close()
    assert await backend.schema_version() == 1
    storage = backend.storage()
    await storage.open()
    try:
        (kept,) = await storage.questions_since(G1, START - dt.timedelta(days=3650))
        settings = await storage.get_settings(G1)
    finally:
        await storage.close()
    assert await backend.schema_version() == len(backend.module.MIGRATIONS)
    assert (kept.question, kept.confidence, kept.section, kept.follow_up_of) == ("old?", None, None, None)
    assert settings.cooldown_seconds == 30 and settings.follow_up_minutes == schema.FOLLOW_UP_MINUTES.default


# -- feedback ---------------------------------------------------------------------------------------
async def test_feedback_upsert_and_summary(store: Storage) -> None:
    await store.record_feedback(G1, "p1", 7, +1)
    await store.record_feedback(G1, "p1", 7, -1)  # same user changes their mind: replaces
    await store.record_feedback(G1, "p1", 8, -1)
    await store.record_feedback(G1, "p2", 7, +1)
    await store.record_feedback(G1, "p3", 7, +1)
    await store.record_feedback(G1, "p3", 8, +1)
    await store.record_feedback(G1, "p3", 9, -1)
    assert await store.feedback_summary(G1) == [
        FeedbackTally("p3", up=2, down=1),
        FeedbackTally("p1", up=0, down=2),
        FeedbackTally("p2", up=1, down=0),
    ]
    assert len(await store.feedback_summary(G1, limit=1)) == 1


@pytest.mark.parametrize("vote", [0, 2, -2, True])
async def test_feedback_rejects_bad_votes(store: Storage, vote: int) -> None:
    with pytest.raises(ValueError, match=r"vote must be \+1 or -1"):
        await store.record_feedback(G1, "p1", 7, vote)
    assert await store.feedback_summary(G1) == []


# -- blocks -----------------------------------------------------------------------------------------
async def test_block_and_unblock(store: Storage, clock: Clock) -> None:
    await store.block_user(G1, 7, MOD, "spam")
    assert await store.is_blocked(G1, 7)
    assert not await store.is_blocked(G1, 8)
    [block] = await store.list_blocks(G1)
    assert (block.guild_id, block.user_id, block.blocked_by, block.reason, block.at) == (
        G1,
        7,
        MOD,
        "spam",
        START,
    )

    clock.now = START + dt.timedelta(minutes=5)
    await store.block_user(G1, 7, OTHER_MOD)  # blocking again: the latest decision stands
    [block] = await store.list_blocks(G1)
    assert (block.blocked_by, block.reason, block.at) == (OTHER_MOD, "", clock.now)

    assert await store.unblock_user(G1, 7, MOD)
    assert not await store.unblock_user(G1, 7, MOD)  # not blocked: no audit row
    assert not await store.is_blocked(G1, 7)
    assert await store.list_blocks(G1) == []
    assert [(e.actor_id, e.action, e.detail) for e in await store.audit_log(G1)] == [
        (MOD, "unblock", "user 7"),
        (OTHER_MOD, "block", "user 7"),
        (MOD, "block", "user 7: spam"),
    ]


async def test_admission_reads_settings_block_and_channel_rules_together(store: Storage) -> None:
    """The gate's one read per question says what the three separate reads say, per server."""
    assert await store.admission(G1, 7) == Admission(GuildSettings(), False, ChannelRules())
    await store.update_settings(G1, MOD, cooldown_seconds=12)
    await store.set_channel_rule(G1, 10, "allow", MOD)
    await store.set_channel_rule(G1, 11, "deny", MOD)
    await store.block_user(G1, 7, MOD, "spam")
    found = await store.admission(G1, 7)
    assert found == Admission(await store.get_settings(G1), True, await store.get_channel_rules(G1))
    assert found.settings.cooldown_seconds == 12 and found.channel_rules == ChannelRules({10}, {11})
    assert not (await store.admission(G1, 8)).blocked  # another member
    assert await store.admission(G2, 7) == Admission(GuildSettings(), False, ChannelRules())  # another server
    await store.unblock_user(G1, 7, MOD)
    assert not (await store.admission(G1, 7)).blocked


# -- isolation and persistence ----------------------------------------------------------------------
async def test_guilds_are_isolated(store: Storage) -> None:
    miss_id = await populate(store, G1)

    # Guild 2 sees none of it, through every read method...
    assert await store.get_settings(G2) == GuildSettings()
    assert await store.get_channel_rules(G2) == ChannelRules()
    assert await store.list_documents(G2) == []
    assert await store.get_question(G2, miss_id) is None
    assert await store.question_stats(G2) == QuestionStats()
    assert await store.recent_misses(G2) == []
    assert await store.feedback_summary(G2) == []
    assert not await store.is_blocked(G2, 8)
    assert await store.list_blocks(G2) == []
    assert await store.audit_log(G2) == []
    # ...and cannot change it through the writes keyed by name or id.
    assert not await store.remove_document(G2, "faq.md", MOD)
    assert not await store.unblock_user(G2, 8, MOD)
    await store.set_channel_rule(G2, 10, "clear", MOD)
    await store.record_feedback(G2, "p1", 7, -1)

    # Guild 1 still has all of it.
    assert (await store.get_settings(G1)).cooldown_seconds == 30
    assert await store.get_channel_rules(G1) == ChannelRules(allowed={10}, denied={11})
    assert [d.name for d in await store.list_documents(G1)] == ["faq.md"]
    assert await store.get_question(G1, miss_id) is not None
    assert await store.feedback_summary(G1) == [FeedbackTally("p1", 1, 0)]
    assert await store.is_blocked(G1, 8)


async def test_everything_survives_close_and_reopen(backend: Backend, clock: Clock) -> None:
    first = backend.storage(clock=clock)
    await first.open()
    miss_id = await populate(first, G1)
    await first.close()

    second = backend.storage(clock=clock)
    await second.open()
    try:
        assert await second.get_settings(G1) == GuildSettings(cooldown_seconds=30, moderator_role_id=555)
        assert await second.get_channel_rules(G1) == ChannelRules(allowed={10}, denied={11})
        [doc] = await second.list_documents(G1)
        assert (doc.name, doc.title, doc.text, doc.added_at) == ("faq.md", "FAQ", "Some text.", START)
        question = await second.get_question(G1, miss_id)
        assert question is not None and question.question == "why?"
        assert await second.question_stats(G1) == QuestionStats(answered=1, missed=1, median_ms=10.0)
        assert [m.id for m in await second.recent_misses(G1)] == [miss_id]
        assert await second.feedback_summary(G1) == [FeedbackTally("p1", 1, 0)]
        assert await second.is_blocked(G1, 8)
        assert len(await second.list_blocks(G1)) == 1
        # cooldown + modrole, 2 channel rules, 1 document, 1 block
        assert len(await second.audit_log(G1)) == 6
    finally:
        await second.close()


# -- schema and connection --------------------------------------------------------------------------
TABLES = {"guild_settings", "channel_rules", "documents", "questions", "feedback", "blocks", "audit_log"}


async def test_migrates_an_empty_database(backend: Backend) -> None:
    storage = backend.storage()
    await storage.open()
    await storage.close()
    assert await backend.schema_version() == len(backend.module.MIGRATIONS)
    assert await backend.tables() >= TABLES


async def test_sqlite_migrates_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    path.touch()  # a zero-byte file is a valid, empty SQLite database
    storage = SQLiteStorage(path)
    await storage.open()
    await storage.close()
    with sqlite3.connect(path) as conn:
        assert list(conn.execute("PRAGMA user_version")) == [(len(sqlite_backend.MIGRATIONS),)]


async def test_upgrades_an_older_schema_and_keeps_data(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = backend.storage()
    await storage.open()
    await storage.update_settings(G1, MOD, cooldown_seconds=30)
    await storage.close()
    current = len(backend.module.MIGRATIONS)

    # A newer release adds a step; opening the old database runs just that step.
    new_step = ("CREATE TABLE extra (id INTEGER PRIMARY KEY)", "INSERT INTO extra (id) VALUES (1)")
    monkeypatch.setattr(backend.module, "MIGRATIONS", (*backend.module.MIGRATIONS, new_step))
    storage = backend.storage()
    await storage.open()
    try:
        assert (await storage.get_settings(G1)).cooldown_seconds == 30
    finally:
        await storage.close()
    assert await backend.schema_version() == current + 1
    assert await backend.rows("SELECT id FROM extra") == [(1,)]


async def test_failed_migration_leaves_the_old_version(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = backend.storage()
    await storage.open()
    await storage.close()
    current = len(backend.module.MIGRATIONS)

    broken = ("CREATE TABLE half_done (id INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(backend.module, "MIGRATIONS", (*backend.module.MIGRATIONS, broken))
    with pytest.raises(backend.sql_error):  # a broken migration is our bug: its traceback, not a line
        await backend.storage().open()
    assert await backend.schema_version() == current
    assert "half_done" not in await backend.tables()


async def test_refuses_a_newer_schema(backend: Backend) -> None:
    storage = backend.storage()
    await storage.open()
    await storage.close()
    newer = len(backend.module.MIGRATIONS) + 1
    await backend.set_schema_version(newer)

    storage = backend.storage()
    with pytest.raises(StorageError, match=f"schema version {newer}, but this articlebot only knows"):
        await storage.open()
    await storage.close()  # harmless after a failed open
    with pytest.raises(RuntimeError, match="not open"):
        await storage.get_settings(G1)


@pytest.mark.parametrize("setting", [s for s in schema.SETTINGS if s.low is not None], ids=lambda s: s.name)
async def test_the_databases_checks_agree_with_the_settings_schema(
    store: Storage, backend: Backend, setting: schema.Setting[object]
) -> None:
    """The CHECKs are frozen in migrations; a range changed in schema.py alone must fail here."""
    assert setting.low is not None and setting.high is not None
    step = 1 if setting.kind == "int" else 0.01

    async def insert(guild_id: int, value: float) -> None:
        values = {s.name: repr(s.default) for s in schema.SETTINGS if s.name != "moderator_role_id"}
        values["mention_replies"] = backend.true
        values[setting.name] = repr(value)
        await backend.rows(
            f"INSERT INTO guild_settings (guild_id, {', '.join(values)}) VALUES ({guild_id}, "
            + ", ".join(values.values())
            + ")"
        )

    await insert(1, setting.low)
    await insert(2, setting.high)
    for guild_id, outside in ((3, setting.low - step), (4, setting.high + step)):
        with pytest.raises(Exception, match=r"(?i)check"):
            await insert(guild_id, outside)
    assert [getattr(await store.get_settings(g), setting.name) for g in (1, 2)] == [
        setting.low,
        setting.high,
    ]
    assert await store.get_settings(3) == GuildSettings()  # refused rows: nothing stored


async def test_sqlite_connection_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = SQLiteStorage(path)
    await store.open()
    try:
        with sqlite3.connect(path) as other:  # WAL is stored in the file itself
            assert list(other.execute("PRAGMA journal_mode")) == [("wal",)]
        # The rest are per connection: look at the storage's own.
        conn = store._db
        assert conn is not None
        for pragma, expected in [("synchronous", 2), ("foreign_keys", 1), ("busy_timeout", 5000)]:
            async with conn.execute(f"PRAGMA {pragma}") as cursor:
                row = await cursor.fetchone()
                assert row is not None and row[0] == expected, pragma
    finally:
        await store.close()


async def test_close_is_idempotent_and_methods_then_fail(store: Storage) -> None:
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError, match="storage is not open"):
        await store.log_question(G1, 10, 7, "q", True, None, 1.0)


async def test_concurrent_writes_all_land(store: Storage) -> None:
    ids = await asyncio.gather(
        *(store.log_question(G1, 10, n, f"q{n}", True, None, float(n)) for n in range(50))
    )
    assert len(set(ids)) == 50
    stats = await store.question_stats(G1)
    assert (stats.answered, stats.missed) == (50, 0)


async def test_a_failed_write_rolls_back_and_the_connection_recovers(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_audit(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "_write_audit", broken_audit)
    with pytest.raises(RuntimeError, match="disk on fire"):
        await store.update_settings(G1, MOD, cooldown_seconds=30)
    monkeypatch.undo()
    assert await store.get_settings(G1) == GuildSettings()  # the change went with its audit row
    await store.update_settings(G1, MOD, cooldown_seconds=30)
    assert (await store.get_settings(G1)).cooldown_seconds == 30


# -- factory ----------------------------------------------------------------------------------------
def test_open_storage_accepts_paths_and_sqlite_and_postgresql_urls(tmp_path: Path) -> None:
    plain = open_storage(str(tmp_path / "a.db"))
    assert isinstance(plain, SQLiteStorage) and plain.path == tmp_path / "a.db"
    relative = open_storage("sqlite:///data/bot.db")
    assert isinstance(relative, SQLiteStorage) and relative.path == Path("data/bot.db")
    absolute = open_storage(f"sqlite:///{tmp_path}/b.db")  # four slashes in total
    assert isinstance(absolute, SQLiteStorage) and absolute.path == tmp_path / "b.db"
    server = open_storage("postgresql://bot:s3cret@db.example:6543/articlebot", pool_size=7)
    assert isinstance(server, PostgresStorage)
    assert (server.label, server.pool_size) == ("db.example:6543/articlebot", 7)
    short = open_storage("postgres://bot@localhost/bot")
    assert isinstance(short, PostgresStorage) and short.label == "localhost:5432/bot" and short.pool_size == 4


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://", "needs at least a host"),
        ("mysql://x", "unsupported storage scheme 'mysql'"),
        ("sqlite://bot.db", "three slashes"),
        ("sqlite:///", "empty"),
        ("", "empty"),
    ],
)
def test_open_storage_rejects_other_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_storage(url)
