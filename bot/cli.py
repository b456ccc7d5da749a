"""``python -m bot`` / ``articlebot``: ask the article from a terminal, evaluate, index, run the bot.

Exit codes, like grep: 0 answered (or done), 1 the article doesn't answer it, 2 bad input or setup.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__
from .engine import CorpusError, Engine
from .engine.evaluate import evaluate, evaluate_squad, is_squad, parse_questions, parse_squad, read_text
from .settings import Settings, SettingsError, default_corpus, load_env_file, setup_logging
from .terminal import Progress, render_answer, render_report, render_squad_report, use_colour

# discord.py, aiohttp, asyncio and the storage are imported by run, sync and invite only: the
# terminal commands start in well under half the time without them.
if TYPE_CHECKING:
    from .storage import Storage

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2
MAX_K = 10


class UsageError(Exception):
    """Bad input or setup: one clear line, exit code 2."""


def load_engine(path: str | None, *, quiet: bool = False, semantic: bool | None = None) -> Engine:
    progress = Progress("indexing")
    encoding = Progress("encoding vectors", minimum=200)  # ~0.03 s a text: worth a bar past 200
    try:
        engine = Engine.from_path(
            path or default_corpus(), progress=progress, semantic=semantic, encode_progress=encoding
        )
    except CorpusError as exc:
        raise UsageError(f"{exc} (pass --corpus PATH or set ARTICLEBOT_CORPUS)") from None
    finally:
        progress.close()
        encoding.close()
    if not quiet:
        for error in engine.load_errors:
            print(f"warning: skipped {error}", file=sys.stderr)
    return engine


def _question(text: str) -> str:
    if not text.strip():
        raise UsageError('the question is empty: ask something, e.g. python -m bot ask "Who owns X?"')
    return text


def _k(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_K}")
    return k


def cmd_ask(args: argparse.Namespace) -> int:
    question = _question(" ".join(args.question))
    engine = load_engine(args.corpus, quiet=args.json)
    answer = engine.ask(question, k=args.k)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_answer(answer, use_colour(sys.stdout, args.color)))
    return EXIT_OK if answer.answered else EXIT_NOT_FOUND


def cmd_chat(args: argparse.Namespace) -> int:
    engine = load_engine(args.corpus)
    with contextlib.suppress(ImportError):  # Windows has no readline; input() still works
        import readline  # noqa: F401  (arrow keys and history for input())
    colour = use_colour(sys.stdout, args.color)
    stats = engine.stats()
    print(
        f"Ask about {', '.join(d.title for d in engine.documents)} "
        f"({stats.passages} passages). Ctrl-D to leave."
    )
    while True:
        try:
            question = input("\n? ")
        except EOFError:
            print()
            return EXIT_OK
        except KeyboardInterrupt:
            print()
            continue
        if question.strip():
            print(render_answer(engine.ask(question, k=args.k), colour))


def cmd_eval(args: argparse.Namespace) -> int:
    try:
        text = read_text(args.file)
        # Told by content, not by name: SQuAD JSON is one object with a "data" list.
        articles = parse_squad(text, args.file) if is_squad(text) else None
        questions = parse_questions(text, args.file) if articles is None else []
    except (OSError, ValueError) as exc:  # a file that is not UTF-8 is a ValueError too
        raise UsageError(f"cannot read questions: {exc}") from None
    if articles is None:
        report = evaluate(load_engine(args.corpus, quiet=args.json), questions)
        print(json.dumps(report.to_dict(), indent=2) if args.json else render_report(report))
        return EXIT_OK
    if args.corpus:
        raise UsageError("--corpus does not apply to a SQuAD file: each of its articles is the corpus")
    squad = evaluate_squad(articles)
    print(json.dumps(squad.to_dict(), indent=2) if args.json else render_squad_report(squad))
    return EXIT_OK


def cmd_index(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    engine = load_engine(args.corpus)
    stats = engine.stats()
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({**stats.to_dict(), "seconds": round(seconds, 4)}, indent=2))
        return EXIT_OK
    for doc in engine.documents:
        count = sum(1 for p in engine.passages if p.document_id == doc.id)
        print(f"{doc.id}: {doc.title} — {count} passages, {len(doc.sections)} sections")
    print(
        f"{stats.documents} documents, {stats.passages} passages, {stats.vocabulary} terms, "
        f"built in {stats.build_seconds * 1000:.0f} ms ({seconds * 1000:.0f} ms with loading)"
    )
    print(stats.semantic)
    return EXIT_OK


def _settings(require_token: bool = True) -> Settings:
    try:
        return Settings.from_env(require_token=require_token)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


def _storage(settings: Settings) -> Storage:
    return _open_database(settings.database, "ARTICLEBOT_DATABASE", pool_size=settings.database_pool)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from . import discord_app
    from .storage import StorageError

    settings = _settings()
    setup_logging(settings)
    # A broken corpus is a clear line, not a traceback later. Lexical: a check, nothing to encode
    # (the bot's library encodes the vectors in a worker thread once it runs).
    load_engine(str(settings.corpus), quiet=True, semantic=False)
    try:
        asyncio.run(discord_app.run(settings, _storage(settings)))
    except discord_app.DISCORD_FAILURES as exc:
        raise UsageError(discord_app.failure_line(exc)) from None
    except StorageError as exc:  # raised before logging in: the bot never went online
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    import asyncio

    from . import discord_app
    from .storage import StorageError

    settings = _settings()
    setup_logging(settings)
    guild = args.guild if args.guild is not None else settings.dev_guild_id
    try:
        names = asyncio.run(discord_app.sync(settings, _storage(settings), guild))
    except discord_app.DISCORD_FAILURES as exc:
        raise UsageError(discord_app.failure_line(exc)) from None
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    where = f"in server {guild} (available now)" if guild else "globally (may take up to an hour to appear)"
    print(f"Registered {len(names)} commands {where}: {', '.join(names)}")
    return EXIT_OK


def cmd_migrate_db(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from .storage import SQLiteStorage, StorageError
    from .storage.migrate import copy_database

    if args.source.strip() == args.target.strip():
        raise UsageError("FROM and TO are the same database")

    async def migrate() -> dict[str, int]:
        source = _open_database(args.source, "FROM")
        if isinstance(source, SQLiteStorage) and not Path(source.path).is_file():
            raise UsageError(f"FROM: there is no SQLite database at {source.path}")
        target = _open_database(args.target, "TO")
        try:
            await source.open()
            await target.open()
            return await copy_database(source, target)
        finally:
            await target.close()
            await source.close()

    try:
        copied = asyncio.run(migrate())
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    rows = ", ".join(f"{table} {n}" for table, n in copied.items())
    print(f"Copied {sum(copied.values())} rows from {_shown(args.source)} to {_shown(args.target)}: {rows}")
    return EXIT_OK


def cmd_insights(args: argparse.Namespace) -> int:
    """/admin insights from the terminal: the figures printed, the chart written to ``--out``."""
    import asyncio
    from pathlib import Path

    from . import insights
    from .engine.semantic import SemanticUnavailable, shared_embedder
    from .engine.semantic import available as semantic_available
    from .library import server_document
    from .storage import StorageError

    settings = _settings(require_token=False)
    out = Path(args.out or f"insights-{args.guild}.png")
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must name a .png file, got {out}")
    engine = load_engine(str(settings.corpus), quiet=True, semantic=False)

    async def read() -> insights.Insights:
        storage = _storage(settings)
        await storage.open()
        try:
            first, questions, votes = await insights.read(storage, args.guild, args.days)
            stored = await storage.list_documents(args.guild)
        finally:
            await storage.close()
        server = engine.with_documents([server_document(d) for d in stored])  # its sections' names
        embedder = None
        if semantic_available().ok:
            with contextlib.suppress(SemanticUnavailable):
                embedder = shared_embedder()  # themes by meaning, as the bot groups them
        return insights.build(first, args.days, questions, votes, server, embedder)

    try:
        found = asyncio.run(read())
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    print("\n".join(insights.summary_lines(found, args.days)))
    if found.empty:
        return EXIT_NOT_FOUND
    png = insights.render_png(found, args.days)
    try:
        out.write_bytes(png)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"Chart written to {out}")
    return EXIT_OK


def _days(value: str) -> int:
    from .insights import MAX_DAYS

    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_DAYS}")
    return days


def cmd_shards(args: argparse.Namespace) -> int:
    """Which shards live processes on ARTICLEBOT_DATABASE claim; exit 1 when some of the count
    are claimed by none (their servers go unanswered), so a monitor can run it."""
    import asyncio

    from .client import describe_shards
    from .storage import SQLiteStorage, StorageError

    settings = _settings(require_token=False)
    storage = _storage(settings)
    if isinstance(storage, SQLiteStorage):
        raise UsageError(
            "ARTICLEBOT_DATABASE is SQLite: one process serves it and runs every shard; "
            "shard claims are PostgreSQL's (ARTICLEBOT_DATABASE=postgresql://…)"
        )

    async def read() -> tuple[tuple[int, ...], tuple[int, ...]]:
        try:
            claims = await storage.shard_claims()
            assert claims is not None  # PostgreSQL always answers
            return claims.shard_ids, claims.counts
        finally:
            await storage.close()

    try:
        shard_ids, counts = asyncio.run(read())
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    where = _shown(settings.database)
    count = settings.shard_count or (counts[0] if len(counts) == 1 else None)
    if count is None:
        if not counts:
            print(f"{where}: no live articlebot process claims a shard")
            return EXIT_NOT_FOUND
        raise UsageError(
            f"{where}: live processes run with different shard counts ({counts}); set each one's alike"
        )
    claimed = describe_shards(shard_ids) or "none"
    uncovered = [shard_id for shard_id in range(count) if shard_id not in set(shard_ids)]
    print(f"{where}: shards of {count} claimed by live processes: {claimed}")
    if uncovered:
        print(f"not claimed by any: {describe_shards(uncovered)} (their servers go unanswered)")
        return EXIT_NOT_FOUND
    print("every shard is claimed")
    return EXIT_OK


def _open_database(url_or_path: str, which: str, *, pool_size: int | None = None) -> Storage:
    """The backend for ``url_or_path`` (unopened); a malformed one is a UsageError naming ``which``."""
    from .storage import open_storage

    try:
        return open_storage(url_or_path, pool_size=pool_size)
    except ValueError as exc:
        raise UsageError(f"{which}: {exc}") from None


def _shown(url_or_path: str) -> str:
    """A database for output: a PostgreSQL URL as host:port/database, never its password."""
    if "://" in url_or_path and url_or_path.split("://", 1)[0].lower() in ("postgresql", "postgres"):
        from .storage.postgres import server_label

        return f"PostgreSQL {server_label(url_or_path)}"
    return url_or_path


def cmd_invite(args: argparse.Namespace) -> int:
    from . import discord_app

    client_id = args.client_id
    if client_id is None:
        token = _settings().token
        client_id = discord_app.application_id_from_token(token)
        if client_id is None:
            raise UsageError("cannot read the application id from DISCORD_TOKEN; pass --client-id")
    print(discord_app.invite_url(client_id))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="articlebot", description="Answers questions about a news article by quoting its best passages."
    )
    parser.add_argument("--version", action="version", version=f"articlebot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    corpus = argparse.ArgumentParser(add_help=False)
    corpus.add_argument(
        "--corpus",
        metavar="PATH",
        help="corpus folder or file (default: $ARTICLEBOT_CORPUS, else the article)",
    )
    colour = argparse.ArgumentParser(add_help=False)
    colour.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="highlighting")

    ask = sub.add_parser("ask", parents=[corpus, colour], help="answer one question")
    ask.add_argument("question", nargs="+", help="the question (quote it, or not)")
    ask.add_argument("-k", type=_k, default=3, metavar="N", help=f"passages to show, 1-{MAX_K} (default 3)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.set_defaults(func=cmd_ask)

    chat = sub.add_parser("chat", parents=[corpus, colour], help="ask questions interactively")
    chat.add_argument("-k", type=_k, default=3, metavar="N", help="passages to show (default 3)")
    chat.set_defaults(func=cmd_chat)

    ev = sub.add_parser(
        "eval", parents=[corpus], help="score the engine on a questions file (JSONL, or SQuAD 2.0 JSON)"
    )
    ev.add_argument("file", help="questions file, e.g. evals/dev.jsonl or ../shared/eval/squad2-public.json")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    ev.set_defaults(func=cmd_eval)

    index = sub.add_parser("index", parents=[corpus], help="build the index and print its size and time")
    index.add_argument("--json", action="store_true", help="print the figures as JSON")
    index.set_defaults(func=cmd_index)

    run = sub.add_parser("run", help="start the Discord bot (settings from the environment and .env)")
    run.set_defaults(func=cmd_run)

    sync = sub.add_parser("sync", help="register the slash commands with Discord, without starting the bot")
    sync.add_argument(
        "--guild",
        type=int,
        metavar="ID",
        help="one server, instantly (default: $ARTICLEBOT_DEV_GUILD_ID, else global)",
    )
    sync.set_defaults(func=cmd_sync)

    migrate = sub.add_parser(
        "migrate-db",
        help="copy every table from one database to another, empty one (SQLite <-> PostgreSQL)",
    )
    migrate.add_argument("source", metavar="FROM", help="a SQLite path or sqlite:///path, or postgresql://…")
    migrate.add_argument("target", metavar="TO", help="the same forms; must hold no data yet")
    migrate.set_defaults(func=cmd_migrate_db)

    insights = sub.add_parser(
        "insights", help="a server's questions, answers, votes and gaps: the figures, and a chart (PNG)"
    )
    insights.add_argument("--guild", type=int, required=True, metavar="ID", help="the server's id")
    insights.add_argument(
        "--days", type=_days, default=14, metavar="N", help="days back, today included (default 14)"
    )
    insights.add_argument(
        "--out", metavar="FILE.png", help="where to write the chart (default insights-ID.png)"
    )
    insights.set_defaults(func=cmd_insights)
    shards = sub.add_parser(
        "shards",
        help="which shards of ARTICLEBOT_SHARD_COUNT live processes on the PostgreSQL database claim "
        "(exit 1 if some none does)",
    )
    shards.set_defaults(func=cmd_shards)

    invite = sub.add_parser("invite", help="print the link that adds the bot to a server")
    invite.add_argument(
        "--client-id", type=int, metavar="ID", help="application id (default: read from the token)"
    )
    invite.set_defaults(func=cmd_invite)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    load_env_file()  # the one place .env is read, for every command alike
    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `python -m bot ask ... | head`
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
