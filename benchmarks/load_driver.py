"""Load driver shared by ``benchmarks/bench_load.py`` (by hand, full size) and ``tests/test_load.py``.

Many members in many channels ask questions through the Discord stand-in (``tests/standin``), half
as ``/ask`` interactions and half as ``@bot question`` mentions, while the stand-in answers a share
of REST calls with a proper 429 and forces gateway reconnects (op 7 RESUME, op 9 non-resumable
invalid session, a dropped TCP connection). Then every question is checked for exactly one answer.
The members may be spread over several servers on several shards (``add_servers``), each shard a
process of its own; each reconnect then hits every shard, so every process lives through each.

Needs ``tests/`` on ``sys.path`` (pytest does that; the benchmark adds it): ``standin``, ``bot_process``.

Design:

- **Closed loop, one question in flight per member.** Each simulated member asks its next question
  as soon as the bot has answered the previous one, so the stand-in sends as fast as answers come
  back and at most ``members`` questions are in flight. An open-loop blast of every question at
  once would measure the bot's backlog, not its answers: with N questions queued, the last waits
  N / throughput seconds and interactions miss Discord's 3 s deadline by construction.
- **Cooldown off through the bot itself.** A moderator runs ``/admin settings set cooldown:0`` first
  (:func:`set_cooldown`), so back-to-back questions get real answers, not "ask again in N s".
- **One dispatcher.** Every event goes out through one task, which also performs the reconnects
  between two sends and waits until the client is back before the next send. So nothing is sent
  while the client is disconnected, and nothing is sent behind an op 9 on a dying connection:
  every dispatched question was delivered (events sent before a RESUME are replayed by the
  stand-in), and "no loss" means every dispatched question got an answer.
- **The right answer, not just an answer.** :func:`expected_answers` asks the real engine,
  in-process, on the same corpus with the server's settings; :meth:`RunResult.wrong_answers`
  then checks that each reply quotes that engine's top passage (its place, and its text where the
  reply shows it) and its answer sentence, or, when the engine declines, that the reply is the
  honest miss with the engine's reason.
- **Answer time** is the stand-in's own clock: from just before the event's gateway send to the
  arrival of the REST call that delivered the answer (the successful one, after any 429 retries).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import discord
from bot_process import FAKE_TOKEN
from standin import (
    CHANNEL_MESSAGE,
    DiscordStandin,
    Request,
    SentMessage,
    payloads,
    point_discord_at,
    shard_of,
)
from standin.payloads import Payload

from bot import discord_app
from bot.client import GENERIC_ERROR
from bot.engine import Engine
from bot.settings import Settings
from bot.storage import GuildSettings, SQLiteStorage

ROOT = Path(__file__).resolve().parents[1]
EVAL_FILES = tuple(ROOT / "evals" / name for name in ("dev.jsonl", "heldout.jsonl", "heldout2.jsonl"))

Kind = Literal["slash", "mention"]
Disruption = Literal["resume", "invalid_session", "drop"]
ALL_DISRUPTIONS: tuple[Disruption, ...] = ("resume", "invalid_session", "drop")

_CALLBACK_ROUTE = "/interactions/{interaction_id}/{interaction_token}/callback"
_FOLLOWUP_ROUTE = "/webhooks/{webhook_id}/{webhook_token}"
_MESSAGES_ROUTE = "/channels/{channel_id}/messages"
POLL = 0.005  # how often the watcher looks at new stand-in requests

# How the bot's replies begin, by outcome (bot/cogs/ask.py, bot/replies.py, bot/checks.py).
MISS_PREFIX = "I couldn't find that in the article."
COOLDOWN_MARK = "you can ask again in"
ELLIPSIS = "…"  # how bot/replies.py marks a cut passage


@dataclass(frozen=True)
class LoadPlan:
    questions: int = 2_000
    members: int = 200
    channels: int = 20
    mention_share: float = 0.5
    rate_limit_fraction: float = 0.1
    disruptions: tuple[Disruption, ...] = ALL_DISRUPTIONS
    seed: int = 20240607
    shard_count: int | None = None  # sharded: each reconnect hits every shard, and waits for it
    answer_timeout: float = 10.0  # per question, from its dispatch; a real answer takes < 3 s
    reconnect_timeout: float = 30.0  # discord.py sleeps 5 s before re-identifying
    run_timeout: float = 900.0
    quiet: float = 1.0  # after the last answer, how long to keep watching for duplicates


@dataclass(frozen=True)
class Question:
    text: str
    answerable: bool


@dataclass(frozen=True)
class Expected:
    """What the engine itself answers to one question; the bot's reply must say the same."""

    answered: bool
    reason: str | None  # why it declines, when it does
    sentence: str | None  # the direct answer, when it answers
    place: str | None  # the top passage's place ("The Rift Begins · passage 8 of 23"), if any
    text: str | None  # the top passage's text, if any


@dataclass
class Server:
    """One server of the load: its members, its channels, and who moderates it."""

    guild: Payload
    members: list[Payload]
    channels: list[Payload]
    moderator: Payload


@dataclass
class World:
    """What :func:`populate` or :func:`add_servers` added to the stand-in."""

    servers: list[Server]

    @property
    def members(self) -> list[Payload]:
        return [member for server in self.servers for member in server.members]

    def server_of(self, member: Payload) -> Server:
        user_id = member["user"]["id"]
        return next(s for s in self.servers if any(m["user"]["id"] == user_id for m in s.members))


@dataclass
class Ask:
    """One question a member asks, and what happened to it."""

    index: int
    kind: Kind
    member: Payload
    channel: Payload
    guild: Payload
    question: Question
    event_id: str = ""  # the interaction id (slash) or the message id (mention)
    dispatched_at: float | None = None  # time.monotonic() just before the gateway send
    sent: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class DisruptionRecord:
    kind: Disruption
    after_questions: int  # questions dispatched before it
    seconds: float  # from the control to the client being back (RESUMED or READY), every shard
    shards: int = 1  # sessions it hit at once (one per shard)


@dataclass
class RunResult:
    plan: LoadPlan
    asks: list[Ask]
    answers: dict[int, list[SentMessage]]  # ask index -> every message that answered it
    failed_attempts: dict[int, list[Request]]  # ask index -> answering calls that failed, 429s included
    disruptions: list[DisruptionRecord]
    violations: list[str]
    requests: int
    rate_limited: int
    identifies: int
    resumes: int
    first_dispatch: float
    last_answer: float

    # -- exactly once -----------------------------------------------------------------------------
    @property
    def dispatched(self) -> list[Ask]:
        return [a for a in self.asks if a.dispatched_at is not None]

    @property
    def lost(self) -> list[Ask]:
        return [a for a in self.dispatched if not self.answers.get(a.index)]

    @property
    def duplicated(self) -> list[Ask]:
        return [a for a in self.dispatched if len(self.answers.get(a.index, [])) > 1]

    @property
    def exactly_once(self) -> int:
        return sum(1 for a in self.dispatched if len(self.answers.get(a.index, [])) == 1)

    # -- what the answers were ------------------------------------------------------------------
    def outcomes(self) -> Counter[str]:
        """answered / declined (both real answers), cooldown ("ask again"), error, per answer."""
        counts: Counter[str] = Counter()
        for sent in (s for answers in self.answers.values() for s in answers):
            counts[classify(sent)] += 1
        return counts

    def latencies(self, kind: Kind | None = None) -> list[float]:
        """Seconds from dispatch to the first answering call, per answered question."""
        out = []
        for ask in self.dispatched:
            answers = self.answers.get(ask.index)
            if answers and (kind is None or ask.kind == kind):
                assert ask.dispatched_at is not None
                out.append(answers[0].request.time - ask.dispatched_at)
        return sorted(out)

    @property
    def late_interactions(self) -> int:
        return sum(1 for v in self.violations if v.startswith("late_response"))

    @property
    def wall_seconds(self) -> float:
        return max(self.last_answer - self.first_dispatch, 1e-9)

    @property
    def reconnects(self) -> int:
        """Gateway faults injected: each disruption once per shard it hit."""
        return sum(d.shards for d in self.disruptions)

    @property
    def reconnect_seconds(self) -> float:
        return sum(d.seconds for d in self.disruptions)

    @property
    def questions_per_second(self) -> float:
        return self.exactly_once / self.wall_seconds

    @property
    def questions_per_second_connected(self) -> float:
        """Throughput with the time the client spent reconnecting (nothing dispatched) left out."""
        return self.exactly_once / max(self.wall_seconds - self.reconnect_seconds, 1e-9)

    def _attempts(self, ask: Ask) -> str:
        statuses = Counter(r.status for r in self.failed_attempts.get(ask.index, []))
        return f" (its replies were answered {dict(statuses)})" if statuses else " (no reply was sent)"

    def wrong_answers(self, expected: Mapping[str, Expected]) -> list[str]:
        """Every reply that does not hold what the engine answers to its question (see
        :func:`wrong_answer`); empty when each one quotes the right passage or the honest miss."""
        found = []
        for ask in self.dispatched:
            for sent in self.answers.get(ask.index, []):
                if problem := wrong_answer(sent, expected[ask.question.text]):
                    found.append(f"{describe(ask)}: {problem}")
        return found

    def problems(self) -> list[str]:
        """Everything that breaks exactly-once or Discord's rules; empty when the run was clean."""
        found = [f"lost: {describe(a)}{self._attempts(a)}" for a in self.lost]
        found += [f"answered {len(self.answers[a.index])} times: {describe(a)}" for a in self.duplicated]
        found += [f"not dispatched: {describe(a)}" for a in self.asks if a.dispatched_at is None]
        found += [f"stand-in violation: {v}" for v in self.violations]
        return found


def _answers(request: Request) -> bool:
    """A successful call that delivers a message (a deferral, callback type 5, only acknowledges)."""
    if not 200 <= (request.status or 0) < 300:
        return False
    if request.route == _CALLBACK_ROUTE:
        return isinstance(request.json, dict) and request.json.get("type") in (4, 7)
    return True


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (p in 0..100); NaN when empty."""
    if not values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def describe(ask: Ask) -> str:
    return f"#{ask.index} {ask.kind} {ask.event_id or '(no event)'} {ask.question.text!r}"


def classify(sent: SentMessage) -> str:
    text = sent.content or ""
    if COOLDOWN_MARK in text:
        return "cooldown"
    if text == GENERIC_ERROR:
        return "error"
    if text.startswith(MISS_PREFIX):
        return "declined"
    return "answered"


_ESCAPED = re.compile(r"\\([^A-Za-z0-9\s])")
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def readable(text: str) -> str:
    """Text as a member reads it: markdown escapes, bold markers and invisible separators gone,
    whitespace collapsed, however the reply made the quoted text inert."""
    text = _INVISIBLE.sub("", _ESCAPED.sub(r"\1", text)).replace("**", "")
    return " ".join(text.split())


def quotes(shown: str, text: str) -> bool:
    """Whether ``shown`` is ``text`` as quoted: whole, or cut with an ellipsis after a fair start."""
    shown, text = readable(shown), readable(text)
    if shown.endswith(ELLIPSIS):
        shown = shown.removesuffix(ELLIPSIS).rstrip()
        return len(shown) >= min(40, len(text)) and text.startswith(shown)
    return shown == text or text in shown


def reply_text(sent: SentMessage) -> str:
    """Everything a member reads in one reply: content, embed description and fields."""
    parts = [sent.content or ""]
    for embed in sent.embeds:
        parts += [embed.get("description", "")]
        parts += [f"{f['name']}\n{f['value']}" for f in embed.get("fields", [])]
    return readable("\n".join(parts))


def wrong_answer(sent: SentMessage, expected: Expected) -> str | None:
    """What is wrong with one reply, given what the engine answers to its question; None if right.

    Answered: an embed's first field names the top passage's place and quotes its text; a message
    (a mention's compact reply, or text where embeds are not allowed) names the place, and quotes the
    text unless compact; either way the answer sentence is there. Declined: the honest miss, with
    the engine's reason (and, in a private ``/ask`` miss, the closest passage's place).
    """
    kind, text = classify(sent), reply_text(sent)
    if not expected.answered:
        if kind != "declined":
            return f"{kind}, but the engine declines ({expected.reason}): {text[:100]!r}"
        if expected.reason and readable(expected.reason) not in text:
            return f"declined without the engine's reason {expected.reason!r}: {text[:100]!r}"
        if sent.interaction_id is not None and expected.place and readable(expected.place) not in text:
            return f"a private miss without the closest passage {expected.place!r}: {text[:100]!r}"
        return None
    assert expected.place is not None and expected.text is not None and expected.sentence is not None
    if kind != "answered":
        return f"{kind}, but the engine answers from {expected.place}: {text[:100]!r}"
    if expected.sentence and readable(expected.sentence) not in text:
        return f"not the engine's answer sentence {expected.sentence[:60]!r}: {text[:100]!r}"
    if sent.embeds:
        fields = sent.embeds[0].get("fields") or []
        if not fields:
            return "no passage quoted"
        name, value = fields[0]["name"], fields[0]["value"]
        if readable(expected.place) not in readable(name):
            return f"first passage is {readable(name)!r}, the engine's is {expected.place!r}"
        if not quotes(value, expected.text):
            return f"first passage quotes {readable(value)[:60]!r}, the engine's {expected.text[:60]!r}"
        return None
    if readable(expected.place) not in text:
        return f"does not cite the engine's passage {expected.place!r}: {text[:100]!r}"
    if "> " in (sent.content or "") and readable(expected.text)[:40] not in text:
        return f"does not quote the engine's passage {expected.text[:60]!r}: {text[:100]!r}"
    return None


def expected_answers(
    questions: Iterable[Question], corpus: Path, settings: GuildSettings
) -> dict[str, Expected]:
    """The real engine's answer to each question, in-process on the corpus the bot reads, with the
    server's settings (passages per answer, strictness): what each reply must quote."""
    engine = Engine.from_path(corpus)
    expected = {}
    for question in questions:
        answer = engine.ask(question.text, k=settings.passages_per_answer, strictness=settings.strictness)
        top = answer.hits[0].passage if answer.hits else None
        expected[question.text] = Expected(
            answered=answer.answered,
            reason=answer.reason,
            sentence=answer.sentence,
            place=top.place if top else None,
            text=top.text if top else None,
        )
    return expected


# -- the world and the questions ----------------------------------------------------------------


def populate(standin: DiscordStandin, members: int, channels: int) -> World:
    """Add ``members`` members and ``channels`` text channels to the stand-in's first guild.

    Call before the bot connects: its GUILD_CREATE then carries them, as Discord's would.
    """
    guild = standin.guild
    added_channels = [
        payloads.text_channel(f"load-{i:02d}", guild_id=guild["id"], position=10 + i) for i in range(channels)
    ]
    added_members = [payloads.member(payloads.user(f"member{i:03d}")) for i in range(members)]
    guild["channels"].extend(added_channels)
    guild["members"].extend(added_members)
    guild["member_count"] = len(guild["members"])
    for channel in added_channels:
        standin.channels[channel["id"]] = channel
    for member in added_members:
        standin.users[member["user"]["id"]] = member["user"]
    server = Server(guild, added_members, added_channels, moderator=standin.find_member("mod"))
    return World([server])


def add_servers(
    standin: DiscordStandin, servers: int, members: int, channels: int, shard_count: int
) -> World:
    """``servers`` new servers, server i on shard i % ``shard_count`` (its id >> 22, as Discord
    splits them), with ``members`` members and ``channels`` text channels dealt out between them.

    Call before the bot connects: each shard's IDENTIFY then gets its own servers' GUILD_CREATEs.
    """
    made = []
    for number in range(servers):
        share = range(number, members, servers)
        moderator_role = payloads.role(
            "Moderator", permissions=discord.Permissions(manage_guild=True), position=1
        )
        moderator = payloads.member(payloads.user(f"mod{number:02d}"), roles=[moderator_role])
        owner = payloads.user(f"owner{number:02d}")
        guild = payloads.guild(
            f"Load {number:02d}",
            id=payloads.snowflake_on_shard(number % shard_count, shard_count),
            owner_id=owner["id"],
            roles=[moderator_role],
            channels=[
                payloads.text_channel(f"load-{i:02d}", position=i) for i in range(number, channels, servers)
            ],
            members=[
                payloads.member(owner),
                moderator,
                *(payloads.member(payloads.user(f"member{i:03d}")) for i in share),
            ],
        )
        guild = standin.add_guild(guild)
        text = [c for c in guild["channels"] if c["type"] == 0]
        people = [m for m in guild["members"] if m["user"]["username"].startswith("member")]
        made.append(Server(guild, people, text, moderator=standin.find_member(f"mod{number:02d}", guild)))
    return World(made)


def load_questions(paths: Iterable[Path] = EVAL_FILES) -> list[Question]:
    """Every question of the eval sets: answerable ones, off-topic ones and near misses."""
    questions = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                questions.append(Question(item["question"], bool(item["answerable"])))
    return questions


def plan_asks(plan: LoadPlan, world: World, questions: Sequence[Question], *, salt: int = 0) -> list[Ask]:
    """Seeded: member i asks questions i, i + members, ...; channel and /ask-or-mention drawn at
    random; the eval questions cycle in a shuffled order so every one is asked about equally."""
    rng = random.Random(plan.seed + salt)
    order = list(questions)
    asks = []
    members = world.members
    server_of = {m["user"]["id"]: world.server_of(m) for m in members}
    for index in range(plan.questions):
        if index % len(order) == 0:
            rng.shuffle(order)
        kind: Kind = "mention" if rng.random() < plan.mention_share else "slash"
        member = members[index % len(members)]
        server = server_of[member["user"]["id"]]
        asks.append(
            Ask(
                index=index,
                kind=kind,
                member=member,
                channel=rng.choice(server.channels),
                guild=server.guild,
                question=order[index % len(order)],
            )
        )
    return asks


async def register_commands(standin: DiscordStandin, world: World, database: Path) -> None:
    """What ``python -m bot sync --guild ID`` does, once per server, before the bot runs (HTTP
    only: the storage is never opened, so a SQLite path stands in whatever the bot runs on)."""
    settings = Settings(token=FAKE_TOKEN, database=str(database), corpus=ROOT / "corpus")
    with point_discord_at(standin):
        for server in world.servers:
            await discord_app.sync(settings, SQLiteStorage(database), int(server.guild["id"]))


async def set_cooldown(standin: DiscordStandin, world: World, seconds: int = 0) -> None:
    """``/admin settings set cooldown:<seconds>`` as each server's moderator, through the bot itself
    (through each shard's process, when sharded)."""
    for server in world.servers:
        event = standin.slash_interaction(
            "admin",
            {"cooldown": seconds},
            subcommand="settings set",
            member=server.moderator,
            guild=server.guild,
            channel=server.channels[0],
        )
        await standin.dispatch("INTERACTION_CREATE", event)
        reply = await standin.wait_for_sent_message(
            lambda m, asked=event["id"]: m.interaction_id == asked, timeout=30.0
        )
        if f"Cooldown per member: {seconds} s" not in (reply.content or ""):
            raise RuntimeError(
                f"the bot did not set the cooldown in {server.guild['name']}: {reply.content!r}"
            )


async def wait_for_vectors(standin: DiscordStandin, world: World, timeout: float = 60.0) -> None:
    """Until each server's engine runs in semantic mode, as its moderator's ``/admin status`` says.

    A bot answers lexically while its vectors load in a worker thread (model load and reading
    the cache: a second or more on a busy machine); the expected answers are the semantic ones.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    for server in world.servers:
        while True:
            event = standin.slash_interaction(
                "admin",
                subcommand="status",
                member=server.moderator,
                guild=server.guild,
                channel=server.channels[0],
            )
            await standin.dispatch("INTERACTION_CREATE", event)
            reply = await standin.wait_for_sent_message(
                lambda m, asked=event["id"]: m.interaction_id == asked, timeout=30.0
            )
            if "being encoded" not in reply_text(reply):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{server.guild['name']}: vectors not ready in {timeout:.0f} s")
            await asyncio.sleep(0.2)


# -- one run --------------------------------------------------------------------------------------


class LoadRun:
    """Sends ``asks`` through ``standin`` with faults on, then checks every answer (see module doc)."""

    def __init__(self, standin: DiscordStandin, plan: LoadPlan, asks: list[Ask]) -> None:
        self.standin = standin
        self.plan = plan
        self.asks = asks
        self.by_event: dict[str, Ask] = {}
        self.disruptions: list[DisruptionRecord] = []
        self._queue: asyncio.Queue[Ask] = asyncio.Queue()
        self._cursor = 0
        self._pending: list[Request] = []
        self._last_answer = 0.0

    async def run(self) -> RunResult:
        standin = self.standin
        mark, violations_before = standin.mark(), len(standin.violations)
        identifies, resumes = standin.identifies, standin.resumes
        started = time.monotonic()
        watcher = asyncio.create_task(self._watch(), name="load-watcher")
        dispatcher = asyncio.create_task(self._dispatch_all(), name="load-dispatcher")
        standin.rate_limit_fraction = self.plan.rate_limit_fraction
        try:
            members: dict[str, list[Ask]] = {}
            for ask in self.asks:
                members.setdefault(ask.member["user"]["id"], []).append(ask)
            askers = [self._member(asks) for asks in members.values()]
            await asyncio.wait_for(asyncio.gather(*askers, dispatcher), self.plan.run_timeout)
            # Late duplicates (a replayed event answered twice) would arrive after the first answer.
            await asyncio.sleep(self.plan.quiet)
            self._poll()
        finally:
            standin.rate_limit_fraction = 0.0
            watcher.cancel()
            dispatcher.cancel()
            await asyncio.gather(watcher, dispatcher, return_exceptions=True)
        return self._result(mark, violations_before, identifies, resumes, started)

    async def _member(self, asks: list[Ask]) -> None:
        """One member: the next question as soon as the previous one is answered (or given up on)."""
        for ask in asks:
            await self._queue.put(ask)
            try:
                # The dispatcher may be waiting out a reconnect (op 9: discord.py sleeps 5 s).
                await asyncio.wait_for(ask.sent.wait(), self.plan.reconnect_timeout * 2)
                await asyncio.wait_for(ask.answered.wait(), self.plan.answer_timeout)
            except TimeoutError:
                pass  # counted as lost by the check, which only looks at what the stand-in saw

    async def _dispatch_all(self) -> None:
        total = len(self.asks)
        kinds = self.plan.disruptions
        # Spread the reconnects evenly through the run: after 1/4, 2/4 and 3/4 of the questions.
        due = {total * (i + 1) // (len(kinds) + 1): kind for i, kind in enumerate(kinds)}
        for sent in range(total):
            if sent in due:
                await self._disrupt(due[sent], sent)
            ask = await self._queue.get()
            shard = self._shard(ask)
            await self.standin.wait_until_connected(self.plan.reconnect_timeout, shard=shard)
            await self._send(ask)

    def _shard(self, ask: Ask) -> int | None:
        count = self.plan.shard_count
        return None if count is None else shard_of(ask.guild["id"], count)

    async def _send(self, ask: Ask) -> None:
        standin = self.standin
        if ask.kind == "slash":
            event = standin.slash_interaction(
                "ask",
                {"question": ask.question.text},
                member=ask.member,
                channel=ask.channel,
                guild=ask.guild,
            )
            name = "INTERACTION_CREATE"
        else:
            content = f"{payloads.mention(standin.bot_user)} {ask.question.text}"
            event = standin.message_create(content, author=ask.member, channel=ask.channel)
            name = "MESSAGE_CREATE"
        ask.event_id = str(event["id"])
        self.by_event[ask.event_id] = ask
        ask.dispatched_at = time.monotonic()
        await standin.dispatch(name, event, timeout=self.plan.reconnect_timeout)
        ask.sent.set()

    async def _disrupt(self, kind: Disruption, after: int) -> None:
        """One reconnect, between two sends, of every shard at once (each shard's session, perhaps
        in a process of its own); returns once every one is back (RESUMED or READY)."""
        standin, timeout = self.standin, self.plan.reconnect_timeout
        count = self.plan.shard_count
        shards: list[int | None] = [None] if count is None else list(range(count))
        started = time.monotonic()

        async def one(shard: int | None) -> None:
            if kind == "resume":
                await standin.force_reconnect(shard=shard, timeout=timeout)
            elif kind == "invalid_session":
                await standin.invalidate_session(resumable=False, shard=shard, timeout=timeout)
            else:
                await standin.drop_connection(shard=shard, timeout=timeout)

        await asyncio.gather(*(one(shard) for shard in shards))
        self.disruptions.append(DisruptionRecord(kind, after, time.monotonic() - started, len(shards)))

    # -- watching for answers -------------------------------------------------------------------
    async def _watch(self) -> None:
        deadline = time.monotonic() + self.plan.run_timeout
        while time.monotonic() < deadline:
            self._poll()
            await asyncio.sleep(POLL)

    def _poll(self) -> None:
        """Look at the stand-in's requests that finished since the last poll, once each."""
        requests = self.standin.requests
        fresh, self._cursor = requests[self._cursor :], len(requests)
        candidates, self._pending = self._pending + fresh, []
        for request in candidates:
            if not request.done:
                self._pending.append(request)
            elif _answers(request) and (ask := self._answered_ask(request)):
                ask.answered.set()
                self._last_answer = max(self._last_answer, request.time)

    def _answered_ask(self, request: Request) -> Ask | None:
        """The question this request answers (or tried to: a 429 never reached the handler that
        fills ``interaction_id``, so the callback's path parameter is used too)."""
        if request.route == _CALLBACK_ROUTE:
            return self.by_event.get(request.params.get("interaction_id", ""))
        if request.route == _FOLLOWUP_ROUTE and request.interaction_id:
            return self.by_event.get(request.interaction_id)
        if request.method == "POST" and request.route == _MESSAGES_ROUTE and isinstance(request.json, dict):
            reference = request.json.get("message_reference") or {}
            return self.by_event.get(str(reference.get("message_id")))
        return None

    # -- the check ------------------------------------------------------------------------------
    def _result(
        self, mark: int, violations_before: int, identifies: int, resumes: int, started: float
    ) -> RunResult:
        standin = self.standin
        answers: dict[int, list[SentMessage]] = {}
        # sent_messages() is every successful message the bot sent, whatever the route: a second
        # answer by follow-up or a second channel reply shows up here as well as the first.
        for sent in standin.sent_messages():
            ask = self._ask_of(sent)
            if ask is not None:
                answers.setdefault(ask.index, []).append(sent)
        failed: dict[int, list[Request]] = {}
        requests = standin.requests[mark:]
        for request in requests:
            status = request.status or 0
            if status >= 300 and (ask := self._answered_ask(request)):
                failed.setdefault(ask.index, []).append(request)
        dispatched = [a.dispatched_at for a in self.asks if a.dispatched_at is not None]
        return RunResult(
            plan=self.plan,
            asks=self.asks,
            answers=answers,
            failed_attempts=failed,
            disruptions=self.disruptions,
            violations=[str(v) for v in standin.violations[violations_before:]],
            requests=len(requests),
            rate_limited=sum(1 for r in requests if r.status == 429),
            identifies=standin.identifies - identifies,
            resumes=standin.resumes - resumes,
            first_dispatch=min(dispatched, default=started),
            last_answer=self._last_answer or time.monotonic(),
        )

    def _ask_of(self, sent: SentMessage) -> Ask | None:
        if sent.interaction_id is not None:
            return self.by_event.get(sent.interaction_id)
        if sent.kind == CHANNEL_MESSAGE and sent.message_reference:
            return self.by_event.get(str(sent.message_reference.get("message_id")))
        return None


async def run_load(
    standin: DiscordStandin, plan: LoadPlan, world: World, questions: Sequence[Question], *, salt: int = 0
) -> RunResult:
    """One full burst: plan the asks (seeded, ``salt`` varies it between runs) and run them."""
    return await LoadRun(standin, plan, plan_asks(plan, world, questions, salt=salt)).run()


def answer_kinds(result: RunResult) -> Counter[str]:
    """How each answer was delivered: interaction callback, follow-up, channel reply, ..."""
    return Counter(s.kind for answers in result.answers.values() for s in answers)
