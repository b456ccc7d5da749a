"""``python -m bot run`` on a database it cannot use: one line, exit 2, and never online.

The real process (tests/bot_process.py) against the Discord stand-in, which records every REST
request and gateway connection: a refused start must have made none, so the bot never logged in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from bot_process import FAKE_TOKEN, ROOT, BotProcess
from fs_faults import fill, read_only, small_disk
from standin import DiscordStandin
from test_storage_failures import make_database

from bot.storage import sqlite as sqlite_backend

BOT_PROCESS = ROOT / "tests" / "bot_process.py"


async def start_refused(
    standin: DiscordStandin, database: Path, timeout: float = 20.0, *, env_extra: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run the bot to its exit; returns (exit code, stderr). Fails at once if it goes online."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ARTICLEBOT_"))}
    env.update(
        DISCORD_TOKEN=FAKE_TOKEN,
        ARTICLEBOT_DATABASE=str(database),
        ARTICLEBOT_CORPUS=str(ROOT / "corpus"),
        ARTICLEBOT_LOG_LEVEL="INFO",  # as chatty as a real run: any log line would show up below
        STANDIN_API=standin.api_base,
        STANDIN_GATEWAY=standin.gateway_url,
        STANDIN_CDN=standin.cdn_base,
    )
    env.update(env_extra or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(BOT_PROCESS), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    exited = asyncio.ensure_future(process.communicate())
    connections = len(standin.gateway_connections)  # another bot may be online already
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not exited.done():
        if len(standin.gateway_connections) > connections or loop.time() > deadline:
            process.kill()
            out, err = await exited
            pytest.fail(
                f"the bot went online (or ran {timeout}s) on a database it cannot use:\n"
                f"{err.decode(errors='replace')[-3000:]}"
            )
        await asyncio.sleep(0.05)
    out, err = exited.result()
    assert process.returncode is not None
    assert out == b"", out
    return process.returncode, err.decode()


def assert_one_line_refusal(code: int, stderr: str, database: Path, *words: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and str(database) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def assert_never_online(standin: DiscordStandin) -> None:
    assert standin.gateway_connections == []
    assert [str(r) for r in standin.requests] == []  # not even the login's GET /users/@me


async def random_bytes(database: Path) -> None:
    database.write_bytes(os.urandom(16384))


async def corrupt_pages(database: Path) -> None:
    await make_database(database, rows=400)
    size = database.stat().st_size
    with database.open("r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(os.urandom(3 * 4096))


async def newer_schema(database: Path) -> None:
    await make_database(database)
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute(f"PRAGMA user_version = {len(sqlite_backend.MIGRATIONS) + 1}")


CASES: dict[str, tuple[Callable[[Path], Awaitable[None]], tuple[str, ...]]] = {
    "random bytes": (random_bytes, ("is not an SQLite database",)),
    "corrupt pages": (corrupt_pages, ("is damaged", "restore it from a backup")),
    "newer schema": (
        newer_schema,
        (f"schema version {len(sqlite_backend.MIGRATIONS) + 1}", "upgrade articlebot"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_unusable_database_stops_the_start_with_one_line(
    standin: DiscordStandin, tmp_path: Path, case: str
) -> None:
    database = tmp_path / "bot.db"
    make, words = CASES[case]
    await make(database)
    code, stderr = await start_refused(standin, database)
    assert_one_line_refusal(code, stderr, database, *words)
    assert_never_online(standin)


async def test_a_read_only_database_file_stops_the_start(standin: DiscordStandin, tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    await make_database(database)
    with read_only(database):
        code, stderr = await start_refused(standin, database)
    assert_one_line_refusal(code, stderr, database, "is read-only", "write access")
    assert_never_online(standin)


async def test_a_read_only_folder_stops_the_start(standin: DiscordStandin, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    database = folder / "bot.db"
    with read_only(folder):
        code, stderr = await start_refused(standin, database)
    assert_one_line_refusal(code, stderr, database, "writable")
    assert_never_online(standin)


async def test_a_full_disk_stops_the_start(standin: DiscordStandin, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        database = disk / "bot.db"
        await make_database(database, rows=50)
        fill(disk)
        code, stderr = await start_refused(standin, database)
    assert_one_line_refusal(code, stderr, database, "is full", "free some space")
    assert_never_online(standin)


async def test_a_second_bot_on_the_same_database_refuses_to_start(
    standin: DiscordStandin, tmp_path: Path
) -> None:
    database = tmp_path / "bot.db"
    async with BotProcess(standin, database=database) as first:
        connections, requests = len(standin.gateway_connections), len(standin.requests)
        code, stderr = await start_refused(standin, database)
        assert_one_line_refusal(code, stderr, database, "already in use", f"pid {first.pid}")
        # The second process made no connection and no request of its own; the first still runs.
        assert len(standin.gateway_connections) == connections and len(standin.requests) == requests
        assert first.process is not None and first.process.poll() is None
        first.kill()  # no cleanup at all: the kernel must still release the lock
        await first.wait()
    async with BotProcess(standin, database=database) as restarted:
        assert restarted.process is not None and restarted.process.poll() is None


async def test_sync_works_while_the_bot_runs_and_leaves_the_database_alone(
    standin: DiscordStandin, tmp_path: Path
) -> None:
    """The README's "run sync again when commands change" must not need the bot stopped first."""
    database = tmp_path / "bot.db"
    async with BotProcess(standin, database=database) as running:
        before = database.stat().st_mtime_ns
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ARTICLEBOT_"))}
        env.update(
            DISCORD_TOKEN=FAKE_TOKEN,
            ARTICLEBOT_DATABASE=str(database),
            STANDIN_API=standin.api_base,
            STANDIN_GATEWAY=standin.gateway_url,
            STANDIN_CDN=standin.cdn_base,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(BOT_PROCESS), "sync", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, err.decode()
        assert out.decode().startswith("Registered "), out
        assert "ask" in out.decode() and "admin" in out.decode()
        assert database.stat().st_mtime_ns == before  # sync opened nothing of the bot's
        assert running.process is not None and running.process.poll() is None
