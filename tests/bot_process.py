"""The real bot in its own process (``python -m bot run``), pointed at a Discord stand-in.

Tests that kill the bot (crash safety), signal it (graceful shutdown) or measure its memory
apart from the stand-in's run it this way. The child process is ``python tests/bot_process.py``:
it points discord.py at the stand-in named in ``STANDIN_API`` / ``STANDIN_GATEWAY`` (tests only,
as ``standin.point_discord_at`` does in-process), then runs the CLI's ``run`` command unchanged.

    async with BotProcess(standin, database=tmp_path / "bot.db") as bot:
        ...                      # the bot is connected (it has identified to the stand-in)
        bot.kill()               # SIGKILL, or bot.terminate() for SIGTERM
        code = await bot.wait()  # exit code; bot.output() has what it printed
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from standin import DiscordStandin

ROOT = Path(__file__).resolve().parents[1]
# Shaped like a bot token (the bot checks the shape); the stand-in accepts any token.
FAKE_TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GstndN.standin-token-for-tests-only-0000000000"


class BotProcess:
    def __init__(
        self,
        standin: DiscordStandin,
        *,
        database: Path,
        corpus: Path = ROOT / "corpus",
        env: dict[str, str] | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        self.standin = standin
        self.database = database
        self.corpus = corpus
        self.extra_env = env or {}
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log = database.with_suffix(".log")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        standin = self.standin
        identified = standin.identifies
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ARTICLEBOT_"))}
        env.update(
            DISCORD_TOKEN=FAKE_TOKEN,
            ARTICLEBOT_DATABASE=str(self.database),
            ARTICLEBOT_CORPUS=str(self.corpus),
            ARTICLEBOT_LOG_LEVEL="INFO",
            STANDIN_API=standin.api_base,
            STANDIN_GATEWAY=standin.gateway_url,
            STANDIN_CDN=standin.cdn_base,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve())], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        # Ready = identified and the READY/GUILD_CREATE burst sent; then give on_ready a moment.
        while standin.identifies <= identified or not standin.connected:
            if self.process.poll() is not None:
                raise RuntimeError(f"bot exited with {self.process.returncode}:\n{self.output()}")
            if loop.time() > deadline:
                raise TimeoutError(f"bot did not connect in {self.ready_timeout}s:\n{self.output()}")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)

    def output(self) -> str:
        return self._log.read_text(encoding="utf-8", errors="replace") if self._log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    def terminate(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.process.poll() is None:
            if loop.time() > deadline:
                raise TimeoutError(f"bot still running after {timeout}s:\n{self.output()}")
            await asyncio.sleep(0.02)
        return self.process.returncode

    async def __aenter__(self) -> BotProcess:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _child(argv: list[str]) -> int:
    """Inside the child: point discord.py at the stand-in, then run the CLI (``run`` unless other
    arguments are given) as a user would."""
    import discord
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    from bot.cli import main

    Route.BASE = os.environ["STANDIN_API"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["STANDIN_GATEWAY"])
    discord.Asset.BASE = os.environ["STANDIN_CDN"]
    if "ARTICLEBOT_VECTOR_CACHE" not in os.environ and "TESTS_VECTOR_CACHE" in os.environ:
        # Callers strip ARTICLEBOT_*: the session's vector cache (conftest.py), never the repo's data/.
        os.environ["ARTICLEBOT_VECTOR_CACHE"] = os.environ["TESTS_VECTOR_CACHE"]
    return main(argv or ["run"])


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
