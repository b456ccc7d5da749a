"""Graceful shutdown: SIGTERM or SIGINT lets the answers in flight finish, closes the gateway and the
database, and exits 0 within a few seconds; while idle it exits at once.

The bot runs as its own process (``python -m bot run`` through ``tests/bot_process.py``) against the
Discord stand-in, so the signal reaches the real ``discord_app.run`` handlers.

What "closed" means here, checkably:
- gateway: the stand-in receives a websocket CLOSE frame from the client (a closing handshake),
  not just a dropped TCP connection, which is what a killed process leaves;
- database: SQLite removes the ``-wal`` and ``-shm`` files when the last connection to a WAL
  database closes cleanly, after checkpointing the WAL into the database file
  (https://www.sqlite.org/wal.html); a connection that did not close cleanly leaves them behind.
  So after the exit both files must be gone, and the database file alone, copied somewhere else,
  must hold every question answered during the shutdown and pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from bot_process import BotProcess
from conftest import all_text, invoke
from standin import CHANNEL_MESSAGE, FOLLOWUP, INTERACTION_CALLBACK, DiscordStandin, eventually, payloads

from bot.client import GENERIC_ERROR
from bot.storage import SQLiteStorage

SHUTDOWN_BOUND = 5.0  # seconds from the signal to the exit, answers in flight included
IDLE_BOUND = 2.0  # seconds from the signal to the exit with nothing to finish
ASKED = [  # /ask; all answerable, so each gets a public embed
    "Who owns X?",
    "What was X called before?",
    "What did Trump call Musk at the campaign rally?",
    "Which hashtags trended during the feud?",
    "Which Trump allies attacked Musk?",
    "What did Musk say about Truth Social?",
]
MENTIONED = [  # @bot questions
    "Which companies did MAGA loyalists want to boycott?",
    "Whose voices was Musk amplifying?",
    "What did Trump post when he briefly returned to X?",
    "What platforms are competing with X?",
]
SIGNALS = [signal.SIGTERM, signal.SIGINT]


@dataclass(frozen=True)
class Frame:
    type: WSMsgType
    data: Any
    at: float  # time.monotonic() on arrival, as the stand-in's Request.time


@pytest.fixture
def gateway_frames(monkeypatch: pytest.MonkeyPatch) -> list[Frame]:
    """Every message the stand-in's gateway receives, close frames included.

    The stand-in records gateway ops but not how a connection ended; its loop stops at a CLOSE
    frame without keeping the code. Wrapping aiohttp's server-side ``receive`` (in this process
    only the stand-in uses it) sees the frame itself.
    """
    frames: list[Frame] = []
    receive = web.WebSocketResponse.receive

    async def recording(self: web.WebSocketResponse, timeout: float | None = None) -> Any:
        message = await receive(self, timeout)
        frames.append(Frame(message.type, message.data, time.monotonic()))
        return message

    monkeypatch.setattr(web.WebSocketResponse, "receive", recording)
    return frames


def close_frames(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.type is WSMsgType.CLOSE]


def wal_files(database: Path) -> list[str]:
    return [p.name for p in (Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists()]


async def questions_in_file_alone(database: Path, guild_id: int, tmp_path: Path) -> int:
    """Questions logged in the database file by itself: a copy without any -wal beside it."""
    alone = tmp_path / "alone" / database.name
    alone.parent.mkdir()
    shutil.copyfile(database, alone)
    with contextlib.closing(sqlite3.connect(alone)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    storage = SQLiteStorage(alone)
    await storage.open()
    try:
        stats = await storage.question_stats(guild_id)
    finally:
        await storage.close()
    return stats.answered + stats.missed


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
async def test_a_signal_lets_answers_in_flight_finish_then_closes_gateway_and_database(
    standin: DiscordStandin, tmp_path: Path, gateway_frames: list[Frame], sig: signal.Signals
) -> None:
    database = tmp_path / "articlebot.db"
    alice, mod = standin.member, standin.find_member("mod")
    asks = [standin.slash_interaction("ask", {"question": q}, member=alice) for q in ASKED]
    mentions = [
        standin.message_create(f"{payloads.mention(standin.bot_user)} {q}", author=alice) for q in MENTIONED
    ]
    async with BotProcess(standin, database=database) as bot:
        # One member asks everything: without this, all but the first would get "Easy there".
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        before = len(standin.sent_messages())
        for i, event in enumerate(asks):  # interleaved: slash commands and mentions in flight together
            await standin.dispatch("INTERACTION_CREATE", event)
            if i < len(mentions):
                await standin.dispatch("MESSAGE_CREATE", mentions[i])
        bot.terminate(sig)
        signalled = time.monotonic()
        answered_at_signal = len(standin.sent_messages()[before:])
        code = await bot.wait(timeout=SHUTDOWN_BOUND + 5)
        took = time.monotonic() - signalled
        log = bot.output()

    assert code == 0, log
    assert took < SHUTDOWN_BOUND, f"exit took {took:.2f}s after {sig.name}"
    # Something was really in flight: the stand-in had recorded few or none of the answers yet.
    assert answered_at_signal < len(asks) + len(mentions)

    # Each question got its answer (not the generic error, not a timeout).
    answered_at: list[float] = []
    for event in asks:
        # Answered by the callback, or (an interaction already 1 s old: a busy machine) deferred
        # and completed by the follow-up: either way one message, the answer.
        [reply] = standin.sent_messages(interaction_id=event["id"])
        assert reply.kind in (INTERACTION_CALLBACK, FOLLOWUP) and reply.embeds, all_text(reply)
        assert GENERIC_ERROR not in all_text(reply)
        answered_at.append(reply.request.time)
    replies = standin.sent_messages(kind=CHANNEL_MESSAGE)
    for message in mentions:
        [reply] = [r for r in replies if str((r.message_reference or {}).get("message_id")) == message["id"]]
        text = reply.content or ""
        assert text and not text.startswith("I couldn't find") and GENERIC_ERROR not in text, text
        answered_at.append(reply.request.time)

    # Then, and only then, the client closed the gateway with a closing handshake.
    [close] = close_frames(gateway_frames)
    assert close.at > max(answered_at)
    # 1000: Discord ends the session (ArticleBot.close sends it before discord.py's reader sends 4000).
    assert close.data == 1000, close
    assert not standin.connected

    # The database was closed: WAL checkpointed into the file and removed, the file whole.
    assert wal_files(database) == []
    logged = await questions_in_file_alone(database, int(standin.guild["id"]), tmp_path)
    assert logged == len(asks) + len(mentions)
    assert "shutting down: finishing answers in flight" in log
    assert "Traceback" not in log and " ERROR " not in log, log
    print(
        f"{sig.name}: {len(asks)} /ask + {len(mentions)} mentions in flight, {answered_at_signal} answered "
        f"at the signal, all answered; exit 0 after {took:.3f}s; gateway close code {close.data}; "
        f"{logged} questions in the checkpointed database file"
    )


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
async def test_a_signal_while_idle_exits_at_once(
    standin: DiscordStandin, tmp_path: Path, gateway_frames: list[Frame], sig: signal.Signals
) -> None:
    database = tmp_path / "articlebot.db"
    async with BotProcess(standin, database=database) as bot:
        bot.terminate(sig)
        signalled = time.monotonic()
        code = await bot.wait(timeout=IDLE_BOUND + 5)
        took = time.monotonic() - signalled
    assert code == 0, bot.output()
    assert took < IDLE_BOUND, f"idle exit took {took:.2f}s after {sig.name}"
    assert len(close_frames(gateway_frames)) == 1 and not standin.connected
    assert wal_files(database) == []
    print(f"{sig.name} while idle: exit 0 after {took:.3f}s")


async def test_the_checks_tell_a_crash_from_a_clean_exit(
    standin: DiscordStandin, tmp_path: Path, gateway_frames: list[Frame]
) -> None:
    """SIGKILL, the control: no close frame reaches the stand-in and the WAL stays behind, so the
    checks above do tell a clean shutdown from a process that merely stopped."""
    database = tmp_path / "articlebot.db"
    async with BotProcess(standin, database=database) as bot:
        await invoke(standin, "ask", {"question": ASKED[0]})
        bot.kill()
        assert await bot.wait() == -signal.SIGKILL
    # The stand-in notices the dead socket on its own time (CLOSED after a FIN, ERROR after a RST).
    await eventually(
        lambda: any(f.type in (WSMsgType.CLOSED, WSMsgType.ERROR) for f in gateway_frames), timeout=5
    )
    assert close_frames(gateway_frames) == []
    assert wal_files(database) == [f"{database.name}-wal", f"{database.name}-shm"]


async def test_a_clean_shutdown_ends_the_discord_session(
    standin: DiscordStandin, tmp_path: Path, gateway_frames: list[Frame]
) -> None:
    """Discord ends a session, and shows the bot offline, only on close code 1000 or 1001; any other
    code keeps it resumable until it times out (https://discord.com/developers/docs/events/gateway,
    "Initiating a Disconnect")."""
    async with BotProcess(standin, database=tmp_path / "articlebot.db") as bot:
        bot.terminate(signal.SIGTERM)
        assert await bot.wait() == 0
    [close] = close_frames(gateway_frames)
    assert close.data in (1000, 1001)
