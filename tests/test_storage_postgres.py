"""What only the PostgreSQL backend has: a server to reach, a pool, restarts, crashes.

A real server (tests/storage_backends.py): the tests restart it, crash it, stop it, log in with a
wrong password and to a database that does not exist. Each refusal is one line naming
host:port/database, never the password.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.parse

import asyncpg
import pytest
from standin import DiscordStandin
from storage_backends import PostgresBackend, PostgresServer
from test_storage_startup import assert_never_online, start_refused

from bot.storage import GuildSettings, StorageError, open_storage
from bot.storage import postgres as postgres_backend
from bot.storage.postgres import PostgresStorage

G = 1
MOD = 100


def with_url(url: str, **parts: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(**parts))


async def refusal(url: str) -> str:
    storage = open_storage(url)
    with pytest.raises(StorageError) as caught:
        await storage.open()
    message = str(caught.value)
    password = urllib.parse.urlsplit(url).password
    assert "\n" not in message, message
    assert password and password not in message, message
    with pytest.raises(RuntimeError, match="not open"):  # refused means nothing is left open
        await storage.get_settings(G)
    return message


# -- refused at open ----------------------------------------------------------------------------
async def test_a_wrong_password_is_refused_in_one_line(postgres: PostgresBackend) -> None:
    parts = urllib.parse.urlsplit(postgres.url)
    wrong = with_url(postgres.url, netloc=f"{parts.username}:not-the-password@{parts.hostname}:{parts.port}")
    database = parts.path.lstrip("/")
    message = await refusal(wrong)
    assert message == (
        f"PostgreSQL at {postgres.server.address}/{database} refused the password for user "
        f"{parts.username}: fix the password in ARTICLEBOT_DATABASE"
    )
    real_password = parts.password
    assert real_password and real_password not in message


async def test_an_unknown_database_is_refused_in_one_line(postgres_server: PostgresServer) -> None:
    message = await refusal(postgres_server.database_url("no_such_db"))
    assert message == (
        f"PostgreSQL at {postgres_server.address}/no_such_db: there is no database no_such_db; "
        "create it (createdb no_such_db) or fix ARTICLEBOT_DATABASE"
    )


async def test_a_password_that_breaks_the_url_is_told_how_to_write_it_and_never_quoted(
    postgres_server: PostgresServer,
) -> None:
    """`createuser --pwprompt` takes any password; pasted into the URL as it is, @ / : # split it
    in the wrong places. The line says how to encode it and quotes no piece of it."""
    url = f"postgresql://articlebot:p@ss:w/rd#1@{postgres_server.address}/articlebot"
    storage = open_storage(url)
    with pytest.raises(StorageError) as caught:
        await storage.open()
    message = str(caught.value)
    assert message.startswith("ARTICLEBOT_DATABASE is not a usable PostgreSQL URL: write it as ")
    assert "percent-encoded (@ as %40" in message
    for piece in ("ss", "w/rd", "rd", "'w'"):
        assert piece not in message.replace("password", ""), message


async def test_a_server_that_is_not_running_is_refused_in_one_line(postgres_server: PostgresServer) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = with_url(postgres_server.url, netloc=f"bot:s3cret@127.0.0.1:{port}", path="/articlebot")
    message = await refusal(url)
    assert message == (
        f"cannot reach PostgreSQL at 127.0.0.1:{port}/articlebot: connection refused; "
        "is the server running on that port?"
    )


async def test_a_read_only_database_is_refused_at_open(postgres: PostgresBackend) -> None:
    await postgres.set_read_only(True)
    message = await refusal(postgres.url)
    assert message == (
        f"PostgreSQL database {postgres.server.address}/{postgres.database} is read-only (a standby?): "
        "point ARTICLEBOT_DATABASE at the primary server"
    )
    await postgres.set_read_only(False)
    store = postgres.storage()
    await store.open()  # fixed: it opens
    await store.close()


# -- the pool -----------------------------------------------------------------------------------
async def test_the_pool_is_sized_by_the_setting(postgres: PostgresBackend) -> None:
    store = open_storage(postgres.url, pool_size=3)
    await store.open()
    try:
        # 12 questions at once: they queue for 3 connections, and all land.
        ids = await asyncio.gather(*(store.log_question(G, 10, n, "q", True, None, 1.0) for n in range(12)))
        assert len(set(ids)) == 12
        database = urllib.parse.urlsplit(postgres.url).path.lstrip("/")
        [(connections,)] = await postgres.rows(
            "SELECT COUNT(*) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND application_name = 'articlebot'"
        )
        assert 1 <= connections <= 3
        assert (await store.question_stats(G)).answered == 12
    finally:
        await store.close()


def test_the_pool_size_comes_from_articlebot_database_pool() -> None:
    from bot.settings import Settings, SettingsError

    env = {"ARTICLEBOT_DATABASE": "postgresql://bot@db/bot", "ARTICLEBOT_DATABASE_POOL": "9"}
    settings = Settings.from_env(env, require_token=False)
    store = open_storage(settings.database, pool_size=settings.database_pool)
    assert isinstance(store, PostgresStorage) and store.pool_size == 9
    assert Settings.from_env({}, require_token=False).database_pool == 4
    for bad in ("0", "many", "101"):
        with pytest.raises(SettingsError, match="ARTICLEBOT_DATABASE_POOL must be a number of connections"):
            Settings.from_env({"ARTICLEBOT_DATABASE_POOL": bad}, require_token=False)


# -- the server goes away -------------------------------------------------------------------------
async def test_the_next_call_after_a_server_restart_works(postgres: PostgresBackend) -> None:
    store = postgres.storage(pool_size=3)
    await store.open()
    try:
        # Several pooled connections, all of which the restart kills.
        await asyncio.gather(*(store.log_question(G, 10, n, "q", True, None, 1.0) for n in range(6)))
        await store.update_settings(G, MOD, cooldown_seconds=30)
        postgres.server.restart()
        assert (await store.get_settings(G)).cooldown_seconds == 30  # a read, on a fresh connection
        postgres.server.restart()
        await store.update_settings(G, MOD, passages_per_answer=2)  # a write, first thing after
        await store.add_document(G, "faq.md", "FAQ", "Some text.", MOD)
    finally:
        await store.close()
    assert await postgres.rows("SELECT passages_per_answer, cooldown_seconds FROM guild_settings") == [
        (2, 30)
    ]
    assert await postgres.rows("SELECT action, detail FROM audit_log ORDER BY id") == [
        ("settings.set", "cooldown_seconds: 10 -> 30"),
        ("settings.set", "passages_per_answer: 3 -> 2"),
        ("documents.add", "faq.md added (10 bytes)"),
    ]


async def test_acknowledged_changes_survive_a_server_crash(postgres: PostgresBackend) -> None:
    """A change is acknowledged (the method returns) only once committed: a crash right after
    (immediate shutdown: no checkpoint, recovery from the WAL) keeps every one."""
    store = postgres.storage()
    await store.open()
    try:
        await store.update_settings(G, MOD, cooldown_seconds=30)
        await store.set_channel_rule(G, 10, "deny", MOD)
        await store.block_user(G, 7, MOD, "spam")
        postgres.server.restart("immediate")
        assert await store.get_settings(G) == GuildSettings(cooldown_seconds=30)
        assert await store.is_blocked(G, 7)
    finally:
        await store.close()
    assert [action for (action,) in await postgres.rows("SELECT action FROM audit_log ORDER BY id")] == [
        "settings.set",
        "channels.deny",
        "block",
    ]


async def test_a_stopped_server_is_told_in_one_line_and_the_bot_recovers(postgres: PostgresBackend) -> None:
    store = postgres.storage()
    await store.open()
    try:
        postgres.server.stop()
        try:
            with pytest.raises(StorageError) as write:
                await store.update_settings(G, MOD, cooldown_seconds=30)
            with pytest.raises(StorageError) as read:
                await store.get_settings(G)
        finally:
            postgres.server.restart()  # starts it again
        assert str(write.value) == (
            "I couldn't save that: the bot's database server cannot be reached. "
            "Nothing was changed; try again in a minute."
        )
        assert str(read.value) == (
            "I couldn't read the bot's data: the bot's database server cannot be reached. "
            "Try again in a minute."
        )
        assert await store.get_settings(G) == GuildSettings()  # nothing was changed, as it said
        await store.update_settings(G, MOD, cooldown_seconds=30)
        assert (await store.get_settings(G)).cooldown_seconds == 30
    finally:
        await store.close()


async def test_a_connection_lost_during_commit_is_not_retried(
    postgres: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its fate is unknown: running it again could write it twice. The moderator is told so."""
    store = postgres.storage()
    await store.open()
    original = asyncpg.transaction.Transaction.commit
    calls = 0

    async def commit_then_lose_the_connection(self: asyncpg.transaction.Transaction) -> None:
        nonlocal calls
        calls += 1
        await original(self)  # it lands...
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    try:
        monkeypatch.setattr(asyncpg.transaction.Transaction, "commit", commit_then_lose_the_connection)
        with pytest.raises(StorageError) as caught:
            await store.block_user(G, 7, MOD, "spam")
        monkeypatch.undo()
        assert calls == 1  # not run a second time
        assert str(caught.value) == (
            "I couldn't save that: the connection to the bot's database was lost while saving. "
            "Tell the bot's operator."
        )
        assert await postgres.rows("SELECT action, detail FROM audit_log") == [("block", "user 7: spam")]
    finally:
        await store.close()


async def test_two_storages_starting_together_migrate_once(postgres: PostgresBackend) -> None:
    stores = [postgres.storage() for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        assert await postgres.schema_version() == len(postgres_backend.MIGRATIONS)
        await stores[0].update_settings(G, MOD, cooldown_seconds=30)
        assert (await stores[3].get_settings(G)).cooldown_seconds == 30
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_ids_past_32_bits_round_trip(postgres: PostgresBackend) -> None:
    """Discord ids are 64-bit: BIGINT columns, not INTEGER."""
    guild, user, role = 1_180_000_000_000_000_001, 1_180_000_000_000_000_002, 1_180_000_000_000_000_003
    store = postgres.storage()
    await store.open()
    try:
        await store.update_settings(guild, user, moderator_role_id=role)
        await store.block_user(guild, user, user)
        assert (await store.get_settings(guild)).moderator_role_id == role
        assert (await store.list_blocks(guild))[0].user_id == user
    finally:
        await store.close()


# -- the real process ---------------------------------------------------------------------------
@pytest.mark.parametrize("problem", ["wrong password", "unknown database"])
async def test_run_on_a_postgresql_it_cannot_use_is_one_line_and_never_online(
    standin: DiscordStandin, postgres: PostgresBackend, problem: str
) -> None:
    parts = urllib.parse.urlsplit(postgres.url)
    if problem == "wrong password":
        url = with_url(
            postgres.url, netloc=f"{parts.username}:wrong-{parts.password}@{parts.hostname}:{parts.port}"
        )
        expected = "refused the password for user"
    else:
        url = postgres.server.database_url("no_such_db")
        expected = "there is no database no_such_db"
    code, stderr = await start_refused(standin, url)  # type: ignore[arg-type]  # a URL, not a path
    assert "Traceback" not in stderr and code == 2, stderr
    [line] = stderr.splitlines()
    assert line.startswith(f"error: PostgreSQL at {postgres.server.address}/") and expected in line, line
    assert str(parts.password) not in stderr
    assert_never_online(standin)


async def test_an_older_release_refuses_a_database_a_newer_one_migrated(
    standin: DiscordStandin, postgres: PostgresBackend
) -> None:
    """A process of this release (schema N), started as one shard of two after a newer release
    migrated the shared database to N + 1: one line, never online, the database left as it was."""
    store = postgres.storage()
    await store.open()
    await store.update_settings(G, MOD, cooldown_seconds=0)
    await store.close()
    newer = len(postgres_backend.MIGRATIONS) + 1
    await postgres.rows("CREATE TABLE from_the_newer_release (id INTEGER)")
    await postgres.set_schema_version(newer)
    sharded = {"ARTICLEBOT_SHARD_COUNT": "2", "ARTICLEBOT_SHARD_IDS": "1"}
    code, stderr = await start_refused(standin, postgres.url, env_extra=sharded)  # type: ignore[arg-type]
    assert "Traceback" not in stderr and code == 2, stderr
    assert stderr.splitlines() == [
        f"error: database {postgres.server.address}/{postgres.database} has schema version {newer}, but "
        f"this articlebot only knows versions up to {newer - 1}: upgrade articlebot or use a different "
        "database"
    ]
    assert_never_online(standin)
    assert await postgres.schema_version() == newer
    assert "from_the_newer_release" in await postgres.tables()
    claims = postgres.storage()
    try:
        assert (await claims.shard_claims()).shard_ids == ()  # the refused process's claim went with it
    finally:
        await claims.close()


async def test_a_nul_character_is_refused_and_nothing_is_stored(postgres: PostgresBackend) -> None:
    """PostgreSQL's text cannot hold NUL (SQLite's can): a clear refusal, not a driver's traceback."""
    store = postgres.storage()
    await store.open()
    try:
        with pytest.raises(ValueError, match="NUL character"):
            await store.add_document(G, "faq.md", "FAQ", "one\x00two", MOD)
        assert await store.list_documents(G) == []
        assert await store.audit_log(G) == []
    finally:
        await store.close()
