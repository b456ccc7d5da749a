"""Load benchmark: many members, /ask and mentions, 429s and reconnects; exactly-once, speed, memory.

Run by hand from the repository root (a few minutes with the defaults)::

    python benchmarks/bench_load.py [--questions 2000] [--members 200] [--channels 20] [--runs 3]
                                    [--rate-limit 0.1] [--settle 25] [--out docs/LOAD.md]
                                    [--database sqlite|postgresql|postgresql://...] [--shards N]

The real bot runs as its own process (``python -m bot run`` through ``tests/bot_process.py``) so its
memory is its own; this process runs the Discord stand-in (``tests/standin``) on 127.0.0.1 and the
load driver (``benchmarks/load_driver.py``, whose docstring explains the design).

``--database``: ``sqlite`` (the default: a SQLite file in a temporary folder), ``postgresql`` (a
throwaway cluster started with ``.ci/postgres``, as the test session starts one, stopped after), or
a ``postgresql://`` URL of a server of yours (its database is used as it is). ``--shards N`` (needs
PostgreSQL): N bot processes, process i started with ``ARTICLEBOT_SHARD_COUNT=N`` and
``ARTICLEBOT_SHARD_IDS=i``, and ``--servers`` servers (default N) split between the shards by
Discord's rule, id >> 22 mod N; each reconnect then hits every shard's session at once. Steps:

1. The stand-in's guild (or, sharded, each of the ``--servers`` servers) gets ``--members`` members
   and ``--channels`` text channels; the bot's commands are registered once per server
   (``discord_app.sync``, as ``python -m bot sync --guild`` does).
2. The bot processes start; a moderator sets each server's cooldown to 0 with ``/admin settings set``.
3. ``--runs`` back-to-back runs against the same processes. Each run: ``--questions`` questions, one
   in flight per member, half ``/ask`` and half mentions, ``--rate-limit`` of REST calls answered
   429, and one op 7 RESUME, one op 9 non-resumable invalid session and one dropped connection
   (each on every shard).
   Then every question is checked for exactly one answer (an interaction callback per interaction
   id, a channel reply per mention's message id), and every answer for the passage the engine
   itself gives for its question, in-process on the same corpus (or the honest miss).
4. Memory of each process from ``/proc/<pid>/status``: the peak (``VmHWM``, reset through
   ``/proc/<pid>/clear_refs`` before each run) and ``VmRSS`` right after the run and after
   ``--settle`` quiet seconds (longer than the 20 s after which the bot deletes its "not in the
   article" mention replies, so those timers have run too). Memory is "not growing" when, in every
   process, the settled RSS after the last run is within 5 % of the settled RSS after the first
   (``MEMORY_TOLERANCE``).

Prints the tables and writes them, with the machine and the command, as this configuration's
section of ``--out`` (the sections of other configurations there are kept). Exit status 0 when
every run answered every question exactly once with no stand-in violation and memory held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # standin and bot_process live in tests/

from bot_process import BotProcess  # noqa: E402
from postgres_cluster import ClusterError, throwaway_cluster  # noqa: E402
from standin import DiscordStandin  # noqa: E402

from benchmarks import machine  # noqa: E402
from benchmarks.load_driver import (  # noqa: E402
    LoadPlan,
    RunResult,
    add_servers,
    expected_answers,
    load_questions,
    percentile,
    populate,
    register_commands,
    run_load,
    set_cooldown,
    wait_for_vectors,
)
from bot.storage import GuildSettings  # noqa: E402

MEMORY_TOLERANCE = 0.05  # settled RSS after the last run may exceed the first run's by this share
LOG_LEVEL = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL)\s+(\S+):")


@dataclass(frozen=True)
class Memory:
    rss_kb: int
    hwm_kb: int

    @property
    def rss_mb(self) -> float:
        return self.rss_kb / 1024

    @property
    def hwm_mb(self) -> float:
        return self.hwm_kb / 1024


@dataclass
class Run:
    result: RunResult
    after: list[Memory]  # per process, right after the last answer
    settled: list[Memory]  # per process, after --settle seconds of quiet


@dataclass(frozen=True)
class Setup:
    """Which storage and how many processes: one section of docs/LOAD.md each."""

    backend: str  # "sqlite" or "postgresql"
    shards: int | None  # None: one unsharded process
    servers: int

    @property
    def key(self) -> str:
        return self.backend if self.shards is None else f"{self.backend}-{self.shards}-shards"

    @property
    def processes(self) -> list[str]:
        return ["bot"] if self.shards is None else [f"shard {i}" for i in range(self.shards)]

    @property
    def title(self) -> str:
        name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[self.backend]
        if self.shards is None:
            return f"{name}, one process"
        return f"{name}, {self.shards} shard processes"


@dataclass
class Report:
    args: argparse.Namespace
    setup: Setup
    plan: LoadPlan
    baseline: list[Memory]  # per process
    pool: tuple[int, int]  # the eval questions drawn from: answerable, not answerable
    runs: list[Run] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    log_levels: dict[str, int] = field(default_factory=dict)
    error_lines: list[str] = field(default_factory=list)  # the bots' ERROR / CRITICAL log lines
    standin_problems: list[str] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)  # replies not holding the engine's answer

    def memory_growth_mb(self, process: int) -> float:
        return self.runs[-1].settled[process].rss_mb - self.runs[0].settled[process].rss_mb

    def memory_growth_share(self, process: int) -> float:
        return self.memory_growth_mb(process) / self.runs[0].settled[process].rss_mb

    @property
    def memory_ok(self) -> bool:
        return all(self.memory_growth_share(i) < MEMORY_TOLERANCE for i in range(len(self.baseline)))

    @property
    def exactly_once_ok(self) -> bool:
        return all(not r.result.problems() for r in self.runs)

    @property
    def ok(self) -> bool:
        return (
            self.exactly_once_ok
            and not self.wrong_answers
            and self.memory_ok
            and not self.standin_problems
            and bool(self.exit_codes)
            and all(code == 0 for code in self.exit_codes)
        )


# -- /proc ----------------------------------------------------------------------------------------


def memory(pid: int) -> Memory:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])  # kB
    return Memory(fields["VmRSS"], fields["VmHWM"])


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux: "5" to clear_refs), so the next peak is this run's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# -- the benchmark --------------------------------------------------------------------------------


@contextlib.contextmanager
def database_url(choice: str) -> Iterator[str | None]:
    """None for SQLite; a PostgreSQL URL: the one given, or a throwaway cluster's for the run."""
    if choice == "sqlite":
        yield None
    elif choice == "postgresql":
        with throwaway_cluster() as (url, _directory):
            yield url
    else:
        yield choice


def process_env(url: str | None, setup: Setup, shard: int, pool: int | None = None) -> dict[str, str]:
    env = {} if url is None else {"ARTICLEBOT_DATABASE": url}
    if pool is not None:
        env["ARTICLEBOT_DATABASE_POOL"] = str(pool)
    if setup.shards is not None:
        env |= {"ARTICLEBOT_SHARD_COUNT": str(setup.shards), "ARTICLEBOT_SHARD_IDS": str(shard)}
    return env


async def bench(args: argparse.Namespace) -> Report:
    # SIGTERM or ^C: cancelled, so the bot processes are killed and a throwaway cluster stopped.
    main_task = asyncio.current_task()
    assert main_task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, main_task.cancel)
    setup = setup_of(args)
    plan = LoadPlan(
        questions=args.questions,
        members=args.members,
        channels=args.channels,
        mention_share=args.mention_share,
        rate_limit_fraction=args.rate_limit,
        seed=args.seed,
        shard_count=setup.shards,
    )
    questions = load_questions()
    async with DiscordStandin(seed=args.seed) as standin:
        if setup.shards is None:
            world = populate(standin, plan.members, plan.channels)
        else:
            world = add_servers(standin, setup.servers, plan.members, plan.channels, setup.shards)
        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, database_url(args.database) as url:
            folder = Path(tmp)
            await register_commands(standin, world, folder / "sync.db")
            async with contextlib.AsyncExitStack() as stack:
                bots = []
                for shard, label in enumerate(setup.processes):
                    # One at a time: each is ready once it has identified (its shard's session).
                    database = folder / f"{label.replace(' ', '-')}.db"  # SQLite's file, and the log's name
                    process = BotProcess(
                        standin, database=database, env=process_env(url, setup, shard, args.database_pool)
                    )
                    bots.append(await stack.enter_async_context(process))
                pids = [bot.pid for bot in bots]
                await set_cooldown(standin, world, 0)
                await wait_for_vectors(standin, world)  # expected answers are semantic
                # The engine's own answers, with a new server's settings (cooldown aside): what
                # every reply must hold.
                expected = expected_answers(questions, bots[0].corpus, GuildSettings(cooldown_seconds=0))
                await asyncio.sleep(1.0)  # let start-up allocations finish before the baseline
                answerable = sum(q.answerable for q in questions)
                pool = (answerable, len(questions) - answerable)
                baseline = [memory(pid) for pid in pids]
                report = Report(args=args, setup=setup, plan=plan, baseline=baseline, pool=pool)
                for number in range(args.runs):
                    for pid in pids:
                        reset_peak(pid)
                    result = await run_load(standin, plan, world, questions, salt=number)
                    after = [memory(pid) for pid in pids]
                    await asyncio.sleep(args.settle)  # nothing sent meanwhile
                    settled = [memory(pid) for pid in pids]
                    report.runs.append(Run(result, after, settled))
                    report.wrong_answers += result.wrong_answers(expected)
                    print(f"run {number + 1}: {summary(report.runs[-1])}", file=sys.stderr)
                for bot in bots:
                    bot.terminate()  # SIGTERM: answers in flight finish, then a clean exit
                report.exit_codes = [await bot.wait(30.0) for bot in bots]
                logs = []
                for label, bot in zip(setup.processes, bots, strict=True):
                    output = bot.output()
                    logs.append(f"==> {label} <==\n{output}")
                    for key, count in log_levels(output).items():
                        report.log_levels[key] = report.log_levels.get(key, 0) + count
                    report.error_lines += [
                        f"{label}: {line[:240]}"
                        for line in output.splitlines()
                        if (m := LOG_LEVEL.match(line)) and m[1] != "WARNING"
                    ]
                if args.log is not None:
                    args.log.write_text("\n".join(logs), encoding="utf-8")
        report.standin_problems = [f"handler crashed: {e}" for e in standin.errors]
        report.standin_problems += [f"unknown route: {r.method} {r.path}" for r in standin.unknown_requests]
    return report


def log_levels(output: str) -> dict[str, int]:
    """Warnings and errors in the bot's log, by level and logger (429 retries are discord.http's)."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        if match := LOG_LEVEL.match(line):
            key = f"{match[1]} {match[2]}"
            counts[key] = counts.get(key, 0) + 1
    counts["tracebacks"] = output.count("Traceback (most recent call last)")
    return counts


# -- the report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def mb(values: Sequence[Memory], attribute: str = "rss_mb") -> str:
    """One figure per process, ``76.7 · 75.2``."""
    return " · ".join(f"{getattr(m, attribute):.1f}" for m in values)


def summary(run: Run) -> str:
    r = run.result
    return (
        f"{r.exactly_once}/{len(r.asks)} exactly once, {len(r.lost)} lost, {len(r.duplicated)} duplicated, "
        f"{r.questions_per_second:.0f} q/s, p50 {ms(percentile(r.latencies(), 50))} ms, "
        f"p99 {ms(percentile(r.latencies(), 99))} ms, RSS {mb(run.settled)} MB"
    )


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(head))) + " |",
    ]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def delivery_table(report: Report) -> list[str]:
    head = [
        "run",
        "asked",
        "/ask · mention",
        "exactly once",
        "lost",
        "duplicated",
        "answered · declined",
        "cooldown · error",
        "late (> 3 s)",
        "REST calls · 429s",
        "resumes · identifies",
    ]
    rows = []
    for number, run in enumerate(report.runs, 1):
        r = run.result
        slash = sum(1 for a in r.asks if a.kind == "slash")
        outcomes = r.outcomes()
        rows.append(
            [
                str(number),
                f"{len(r.asks):,}",
                f"{slash:,} · {len(r.asks) - slash:,}",
                f"**{r.exactly_once:,}**",
                str(len(r.lost)),
                str(len(r.duplicated)),
                f"{outcomes['answered']:,} · {outcomes['declined']:,}",
                f"{outcomes['cooldown']} · {outcomes['error']}",
                str(r.late_interactions),
                f"{r.requests:,} · {r.rate_limited:,}",
                f"{r.resumes} · {r.identifies}",
            ]
        )
    return table(head, rows)


def speed_table(report: Report) -> list[str]:
    head = [
        "run",
        "wall s",
        "q/s",
        "q/s connected",
        "reconnects s (op 7 · op 9 · drop)",
        "p50 ms",
        "p99 ms",
        "max ms",
        "/ask p50 · p99 ms",
        "mention p50 · p99 ms",
        "RSS after run MB",
        "peak (VmHWM) MB",
        "settled RSS MB",
    ]
    rows = []
    for number, run in enumerate(report.runs, 1):
        r = run.result
        every, slash, mention = r.latencies(), r.latencies("slash"), r.latencies("mention")
        rows.append(
            [
                str(number),
                f"{r.wall_seconds:.1f}",
                f"{r.questions_per_second:.0f}",
                f"{r.questions_per_second_connected:.0f}",
                " · ".join(f"{d.seconds:.1f}" for d in r.disruptions),
                ms(percentile(every, 50)),
                ms(percentile(every, 99)),
                ms(percentile(every, 100)),
                f"{ms(percentile(slash, 50))} · {ms(percentile(slash, 99))}",
                f"{ms(percentile(mention, 50))} · {ms(percentile(mention, 99))}",
                mb(run.after),
                mb(run.after, "hwm_mb"),
                mb(run.settled),
            ]
        )
    return table(head, rows)


def machine_facts() -> dict[str, str]:
    versions = {"discord.py / aiohttp": f"{metadata.version('discord.py')} / {metadata.version('aiohttp')}"}
    return machine.facts(versions, ("bot (last commit to bot/)", machine.last_commit("bot")))


WHO_ONE = """\
- {members} members in {channels} text channels of one server (added to the stand-in's guild
  before the bot connects); the real bot as its own process (`python -m bot run`) on {storage},
  its commands registered once beforehand as `python -m bot sync --guild` does.
- {runs} back-to-back runs against that one process, {questions:,} questions each: about"""

WHO_SHARDED = """\
- {members} members in {channels} text channels of {servers} servers, split between {shards} shards
  as Discord splits them (server id >> 22 mod {shards}: {per_shard}); one real bot process
  (`python -m bot run`) per shard, started with `ARTICLEBOT_SHARD_COUNT={shards}` and
  `ARTICLEBOT_SHARD_IDS=0`, `1`, ..., all on {storage}; the commands registered once per server
  beforehand as `python -m bot sync --guild` does. Each process is sent only its own shard's
  servers (its IDENTIFY's GUILD_CREATEs, then their events).
- {runs} back-to-back runs against those processes, {questions:,} questions each: about"""

SCENARIO = """\
{who}
  {mention_share:.0%} mentions (`@bot question`, MESSAGE_CREATE), the rest `/ask` (INTERACTION_CREATE).
  The questions cycle through `evals/dev.jsonl`, `heldout.jsonl` and `heldout2.jsonl`: {answerable}
  answerable ones and {unanswerable} off-topic ones or near misses, in a seeded order.
- Closed loop: each member asks again as soon as its previous question is answered, so at most
  {members} questions are in flight and the stand-in sends as fast as the answers come back.
- Cooldown: set to 0 first, through the bot's own `/admin settings set cooldown:0` as {moderator},
  so back-to-back questions get real answers, not "ask again in N s".
- Faults: {rate_limit:.0%} of all REST calls answered 429 (`retry_after` 0.05 s, with `Via` and a
  JSON body: a rate limit discord.py retries). Per run, after 1/4, 1/2 and 3/4 of the questions:
  an op 7 RECONNECT (the bot RESUMEs, the stand-in replays what it missed), an op 9 non-resumable
  invalid session (the bot IDENTIFYs again, after discord.py's 5 s wait) and a dropped TCP
  connection (RESUME){every_shard}. Nothing is sent while the bot is disconnected, so every question sent was
  delivered, and "no loss" means every question sent got an answer.
- Exactly once: one successful interaction callback per interaction id; one successful channel
  message whose `message_reference` is the mention's id per mention; nothing else answering it
  (no follow-up, no second reply). A 429 is not an answer; the retried call that succeeds is.
- Answer time: from just before the gateway send of the event to the arrival at the stand-in of
  the REST call that delivered the answer (after its 429 retries), on the stand-in's clock.
"""


def storage_words(args: argparse.Namespace, setup: Setup) -> str:
    if setup.backend == "sqlite":
        return "a SQLite file"
    if args.database == "postgresql":
        return "one PostgreSQL database (a throwaway cluster started by `.ci/postgres`, fsync off as there)"
    return "one PostgreSQL database (a server given by URL)"


def scenario(report: Report) -> str:
    plan, setup = report.plan, report.setup
    if setup.shards is None:
        who = WHO_ONE.format(
            members=plan.members,
            channels=plan.channels,
            storage=storage_words(report.args, setup),
            runs=len(report.runs),
            questions=plan.questions,
        )
    else:
        per_shard = ", ".join(
            f"{sum(1 for n in range(setup.servers) if n % setup.shards == shard)} on shard {shard}"
            for shard in range(setup.shards)
        )
        who = WHO_SHARDED.format(
            members=plan.members,
            channels=plan.channels,
            servers=setup.servers,
            shards=setup.shards,
            per_shard=per_shard,
            storage=storage_words(report.args, setup),
            runs=len(report.runs),
            questions=plan.questions,
        )
    return SCENARIO.format(
        who=who,
        members=plan.members,
        mention_share=plan.mention_share,
        rate_limit=plan.rate_limit_fraction,
        answerable=report.pool[0],
        unanswerable=report.pool[1],
        moderator="the server's moderator" if setup.shards is None else "each server's moderator",
        every_shard="" if setup.shards is None else ", each on every shard's session at once",
    )


LEGEND_DELIVERY = """\
*answered · declined*: answers quoting the article · honest "I couldn't find that in the article"
(both real answers); *cooldown · error*: "ask again in N s" or the generic error reply. *late*:
interactions answered after Discord's 3 s (the stand-in refuses those, so a late one is also
lost). *REST calls*: every call the bot made during the run, 429s and retries included.
"""

LEGEND_SPEED = """\
*q/s*: questions answered exactly once over the run's wall time (first send to last answer);
*q/s connected*: the same without the time spent reconnecting (nothing is sent meanwhile; op 9
costs discord.py's 5 s wait before it IDENTIFYs again).
Memory is {whose}: *peak* is `VmHWM` during the run (reset before it), *settled* `VmRSS` after
{settle:g} s of quiet. Before the first run (started, cooldown set): {baseline} MB.
"""


def findings(report: Report) -> list[str]:
    """The "What they show" bullets, from the figures."""
    plan, runs, setup = report.plan, report.runs, report.setup
    total = sum(len(r.result.asks) for r in runs)
    once = sum(r.result.exactly_once for r in runs)
    problems = [p for r in runs for p in r.result.problems()] + report.standin_problems
    problems += [f"wrong answer: {w}" for w in report.wrong_answers]
    qps = [r.result.questions_per_second for r in runs]
    qps_connected = [r.result.questions_per_second_connected for r in runs]
    p50 = [percentile(r.result.latencies(), 50) for r in runs]
    slowest_ask = max(percentile(r.result.latencies("slash"), 100) for r in runs)
    if once == total and not problems:
        delivery = (
            f"none lost, none answered twice, none wrong (each the engine's own passage or its honest "
            f"miss), through {sum(r.result.rate_limited for r in runs):,} 429s "
            f"and {sum(r.result.reconnects for r in runs)} reconnects"
            + ("." if setup.shards is None else f" ({setup.shards} shards × 3 kinds × {len(runs)} runs).")
        )
    else:
        delivery = f"**{len(problems)} problem(s)**, listed below."
    memory_lines = []
    for i, label in enumerate(setup.processes):
        settled = ", ".join(f"{r.settled[i].rss_mb:.1f}" for r in runs)
        steps = ", ".join(f"{b.settled[i].rss_mb - a.settled[i].rss_mb:+.1f}" for a, b in pairwise(runs))
        peaks = ", ".join(f"{r.after[i].hwm_mb:.1f}" for r in runs)
        share = report.memory_growth_share(i)
        whose = "" if setup.shards is None else f"{label}: "
        memory_lines.append(
            f"{whose}settled RSS per run {settled} MB (run to run: {steps} MB): "
            f"{report.memory_growth_mb(i):+.1f} MB ({share:+.1%}) from the first run to the last, "
            f"against a bar of < {MEMORY_TOLERANCE:.0%}: "
            + ("not growing" if share < MEMORY_TOLERANCE else "**growing**")
            + f"; peak per run {peaks} MB."
        )
    log = ", ".join(f"{k}: {v}" for k, v in sorted(report.log_levels.items()) if v) or "nothing logged"
    codes = " · ".join(str(code) for code in report.exit_codes)
    return [
        f"- **Exactly once: {once:,} of {total:,}** questions over {len(runs)} runs; {delivery}",
        f"- **Deadline**: {sum(r.result.late_interactions for r in runs)} interaction(s) answered after "
        f"3 s; the slowest `/ask` answer took {ms(slowest_ask)} ms.",
        f"- **Throughput**: {min(qps):.0f}–{max(qps):.0f} questions/s over whole runs, "
        f"{min(qps_connected):.0f}–{max(qps_connected):.0f} while connected, with {plan.members} in "
        f"flight; the p50 of {ms(min(p50))}–{ms(max(p50))} ms is mostly waiting in line "
        "(Little's law: in flight / throughput), not answering.",
        "- **Memory**: "
        + " ".join(memory_lines)
        + " A leak would add about the same amount every run; a cache warming up adds less each run.",
        f"- **Bot log**: exit code{'' if len(report.exit_codes) == 1 else 's'} {codes} after SIGTERM; "
        f"{log} (429 retries are discord.http's and discord.webhook's warnings).",
        *cores_note(report),
    ]


def cores_note(report: Report) -> list[str]:
    """Sharded on one machine: what the figures can and cannot say about more processes."""
    if report.setup.shards is None:
        return []
    cores = len(os.sched_getaffinity(0))
    return [
        f"- **Processes and cores**: {report.setup.shards} bot processes, the stand-in, this load driver "
        f"and PostgreSQL share this machine's {cores} cores, so the figures show that the processes "
        "split the servers and answer each question exactly once between them, not what more "
        "processes on more machines gain: one machine's throughput is bounded by its cores either way."
    ]


TITLE = "# Load: every question answered exactly once"
INTRO = """\
Measured by `benchmarks/bench_load.py` (its docstring and `benchmarks/load_driver.py`'s say
how); `tests/test_load.py` runs the same machinery at 200 questions in the test suite. One section
per configuration; a run of the benchmark rewrites its own section and keeps the others, and the
notes at the end.
"""


def section(report: Report, command: str) -> str:
    """This configuration's section of docs/LOAD.md, between markers naming it."""
    runs, setup = report.runs, report.setup
    problems = [p for r in runs for p in r.result.problems()] + report.standin_problems
    problems += [f"wrong answer: {w}" for w in report.wrong_answers]
    one = setup.shards is None
    lines = [
        f"<!-- bench_load: {setup.key} -->",
        f"## {setup.title}",
        "",
        "### Machine",
        "",
        *machine.facts_and_command(machine_facts(), command),
        "### Scenario",
        "",
        scenario(report),
        "### Delivery",
        "",
        *delivery_table(report),
        "",
        LEGEND_DELIVERY,
        "### Speed and memory",
        "",
        *speed_table(report),
        "",
        LEGEND_SPEED.format(
            whose="the bot process's"
            if one
            else f"per process ({' · '.join(setup.processes)}; the bot is their sum)",
            settle=report.args.settle,
            baseline=mb(report.baseline),
        ),
        "### What they show",
        "",
        *findings(report),
        "",
    ]
    if problems or report.error_lines:
        lines += ["### Problems", ""]
        lines += [f"- {p}" for p in problems]
        lines += [f"- bot log: `{line}`" for line in report.error_lines]
        lines.append("")
    lines.append(f"<!-- /bench_load: {setup.key} -->")
    return "\n".join(lines)


SECTION = re.compile(r"<!-- bench_load: (\S+) -->\n.*?<!-- /bench_load: \1 -->", re.S)


def merged(existing: str, key: str, new_section: str) -> str:
    """The document with ``key``'s section replaced (or added); other configurations' kept, and
    the hand-written notes after the last section too."""
    found = list(SECTION.finditer(existing))
    sections = {m[1]: m[0] for m in found}
    sections[key] = new_section
    order = sorted(sections, key=lambda k: (not k.startswith("sqlite"), k))  # the default first
    notes = existing[found[-1].end() :].strip() if found else ""
    parts = [TITLE, INTRO.rstrip(), *(sections[k] for k in order), *([notes] if notes else [])]
    return "\n\n".join(parts) + "\n"


def setup_of(args: argparse.Namespace) -> Setup:
    backend = "sqlite" if args.database == "sqlite" else "postgresql"
    return Setup(backend, args.shards, args.servers or args.shards or 1)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--questions", type=int, default=2_000, help="per run")
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="back-to-back runs against the same processes")
    parser.add_argument("--mention-share", type=float, default=0.5)
    parser.add_argument("--rate-limit", type=float, default=0.1, help="share of REST calls answered 429")
    parser.add_argument("--settle", type=float, default=25.0, help="quiet seconds before settled RSS")
    parser.add_argument("--seed", type=int, default=20240607)
    parser.add_argument(
        "--database",
        default="sqlite",
        help="sqlite (default), postgresql (a throwaway cluster from .ci/postgres) or a postgresql:// URL",
    )
    parser.add_argument(
        "--database-pool", type=int, default=None, help="ARTICLEBOT_DATABASE_POOL per process (PostgreSQL)"
    )
    parser.add_argument("--shards", type=int, default=None, help="N processes, one shard each (PostgreSQL)")
    parser.add_argument(
        "--servers", type=int, default=None, help="servers split between the shards (default N)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "LOAD.md", help="'-' for none")
    parser.add_argument("--log", type=Path, default=None, help="keep the bots' logs here")
    args = parser.parse_args(argv)
    if args.database not in ("sqlite", "postgresql") and not args.database.startswith(
        ("postgresql://", "postgres://")
    ):
        parser.error(f"--database {args.database!r}: give sqlite, postgresql or a postgresql:// URL")
    if args.shards is not None and not 1 <= args.shards <= 16:
        parser.error("--shards must be a number of shard processes from 1 to 16")
    if args.shards is not None and args.database == "sqlite":
        parser.error(
            "--shards runs one process per shard, and a SQLite file serves one process: "
            "add --database postgresql"
        )
    if args.servers is not None and (args.shards is None or args.servers < args.shards):
        parser.error("--servers needs --shards, and at least one server per shard")
    if args.members < (args.servers or 1) or args.channels < (args.servers or 1):
        parser.error("--members and --channels need at least one per server")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = asyncio.run(bench(args))
    except asyncio.CancelledError:
        print("interrupted: bot processes stopped, nothing written", file=sys.stderr)
        return 130
    except ClusterError as error:
        print(
            f"error: --database postgresql could not start a cluster with .ci/postgres: {error}",
            file=sys.stderr,
        )
        return 2
    command = "python benchmarks/bench_load.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = section(report, command.strip())
    print(text)
    if str(args.out) != "-":
        existing = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        args.out.write_text(merged(existing, report.setup.key, text), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
