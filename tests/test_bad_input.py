"""Bad input from every direction: hostile questions, hostile files, out-of-range settings.

Four layers, each checked with inputs Hypothesis generates (reproducibly: ``derandomize=True``,
no example database, bounded example counts):

1. The engine, directly and fast: ``Engine.ask`` on any Unicode at all never raises and always
   returns a well-formed answer; every reply built from it fits Discord and pings nobody.
2. The real bot against the Discord stand-in: /ask, mentions and the Apps menu with the same kind
   of text. The bot is started once per test and the generated inputs are sent in a loop (see
   :func:`generated` for why and how).
3. Document uploads through /admin documents add: binary, broken UTF-8, empty, huge, HTML, zip,
   path traversal, odd names; and a document whose title and headings carry markup and mentions.
4. /admin settings set with values Discord itself would refuse, sent anyway.

"Live mention" below means text Discord turns into a mention: ``@everyone``, ``@here``, or
``<@id>`` / ``<@!id>`` / ``<@&id>`` with a real snowflake (17 to 20 digits: every id made after
the first weeks of 2015). The bot makes them inert by escaping (a zero-width space after ``@``), on
top of sending ``allowed_mentions: {"parse": []}``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import string
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import pytest
from conftest import ROOT, RunBot, invoke
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from standin import CHANNEL_MESSAGE, DiscordStandin, SentMessage, payloads

from bot import replies
from bot.client import ArticleBot
from bot.engine import Answer, Engine, parse_text

T = TypeVar("T")

# -- what counts as a problem in what the bot sends --------------------------------------------------

LIVE_MENTION = re.compile(r"@everyone|@here|<@[!&]?\d{17,20}>")


def live_mentions(text: str) -> list[str]:
    return LIVE_MENTION.findall(text)


def assert_pings_nobody(sent: SentMessage, what: object) -> None:
    """Sent with every mention switched off; the stand-in resolved no ping from it."""
    allowed = sent.allowed_mentions
    assert allowed is not None and allowed.get("parse") == [], (what, allowed)
    assert not allowed.get("replied_user") and not allowed.get("users") and not allowed.get("roles"), (
        what,
        allowed,
    )
    stored = sent.message or {}  # the message as the stand-in made it, pings resolved as Discord does
    assert not stored.get("mentions") and not stored.get("mention_roles"), (what, stored)
    assert not stored.get("mention_everyone"), (what, stored)


def unexpected_mentions(text: str, named: Sequence[str]) -> list[str]:
    """Live mentions in ``text`` other than ``<@id>`` of the users in ``named``: the bot names who
    added a document or changed a setting on purpose, so members see a name (never a ping)."""
    on_purpose = {f"<@{i}>" for i in named}
    return [m for m in live_mentions(text) if m not in on_purpose]


def assert_inert(sent: SentMessage, what: object, *, named: Sequence[str] = ()) -> None:
    """Pings nobody, and no mention markup is left raw anywhere in its text."""
    assert_pings_nobody(sent, what)
    found = unexpected_mentions(every_text(sent), named)
    assert not found, (what, found, every_text(sent))


def every_text(sent: SentMessage) -> str:
    """All text of a sent message, embeds included (footer and author too)."""
    parts = [sent.content or ""]
    for embed in sent.embeds:
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [embed.get("footer", {}).get("text", ""), embed.get("author", {}).get("name", "")]
        parts += [f"{f['name']}\n{f['value']}" for f in embed.get("fields", [])]
    return "\n".join(parts)


def error_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


# -- hostile text ---------------------------------------------------------------------------------

CONTROL = "".join(map(chr, [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]))
INVISIBLE = "".join(
    map(chr, [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), 0x061C, 0xFEFF])
)
INVISIBLE += "\u2066\u2067\u2068\u2069"  # bidi isolates
RTL = [
    "من دعا ماسك رجل الصاروخ؟",
    "מי קרא למאסק איש הטילים?",
    "\u202eMusk\u202c",
    "\u200fترامب\u200f",
    "ماسك X",
]
EMOJI = ["😀", "🚀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "1️⃣", "🏳️‍🌈", "❤️", "🤖🔥", "<:rocket:123456789012345678>"]
PUNCTUATION = string.punctuation + "…“”‘’«»¿¡·—–‽§¶†‡•※、。！？"
MARKDOWN = [
    "**", "*", "__", "_", "~~", "||", "`", "``", "```", "```py\nprint('hi')\n```", "> ", ">>> ", "\n# ",
    "\n## ", "\n-# ", "\n- ", "\n1. ", "[click](https://example.com)", "<https://example.com>", "\\",
    "\\*", "\n", "\r\n", "\t", "   ",
]  # fmt: skip
ARTICLE_WORDS = [
    "Musk", "Trump", "rocket man", "X", "Twitter", "hashtags", "who", "when", "how many", "what year",
    "2025", "Tesla", "SpaceX", "feud", "?", " ", "Who called Musk a rocket man?",
]  # fmt: skip
# Mentions are drawn as placeholders and filled with the ids of the world they are sent into, so
# the same seed gives the same inputs whatever ids a stand-in run hands out.
PLACEHOLDERS = ("bot", "member", "moderator", "role", "everyone-role", "channel", "stranger")
SNOWFLAKES = st.integers(10**16, 2**63 - 1)


def mention_markup() -> st.SearchStrategy[str]:
    ids = st.one_of(st.sampled_from([f"⟦{p}⟧" for p in PLACEHOLDERS]), SNOWFLAKES.map(str))
    return st.one_of(
        st.sampled_from(["@everyone", "@here", "@everyone?", "@@here", "@\u200beveryone", "＠everyone"]),
        st.builds("<@{}>".format, ids),
        st.builds("<@!{}>".format, ids),
        st.builds("<@&{}>".format, ids),
        st.builds("<#{}>".format, ids),
        st.builds("</ask:{}>".format, ids),
        st.builds("<t:{}:R>".format, st.integers(0, 2**31)),
        st.builds("<@&{}>".format, st.integers(0, 10**6)),  # too short to be a real id
    )


def fragments() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(alphabet=CONTROL, min_size=1, max_size=4),
        st.text(alphabet=INVISIBLE, min_size=1, max_size=4),
        st.sampled_from(RTL),
        st.text(st.characters(min_codepoint=0x0590, max_codepoint=0x08FF), min_size=1, max_size=12),
        st.builds(
            "".join,
            st.lists(
                st.tuples(
                    st.sampled_from("aeMusk X"),
                    st.text(st.characters(min_codepoint=0x0300, max_codepoint=0x036F), max_size=8),
                ).map("".join),
                min_size=1,
                max_size=8,
            ),
        ),  # combining marks stacked on letters ("zalgo")
        st.sampled_from(EMOJI),
        st.text(alphabet=PUNCTUATION, min_size=1, max_size=6),
        st.sampled_from(MARKDOWN),
        st.sampled_from(ARTICLE_WORDS),
        mention_markup(),
        st.text(min_size=1, max_size=12),  # anything at all (surrogates excepted: JSON cannot carry them)
    )


ANSWERABLE = [
    "Who owns X?",
    "What was X called before?",
    "Who called Musk a rocket man?",
    "What did Trump call Musk at the campaign rally?",
    "Which hashtags trended during the feud?",
    "Which Trump allies attacked Musk?",
    "What did Musk say about Truth Social?",
]


def decorations() -> st.SearchStrategy[str]:
    """Noise that adds no word: invisible and control characters, emoji, markup, mentions."""
    return st.one_of(
        st.just(" "),
        st.text(alphabet=INVISIBLE + CONTROL, min_size=1, max_size=3),
        st.sampled_from(EMOJI),
        st.text(alphabet=PUNCTUATION, min_size=1, max_size=3),
        st.sampled_from(MARKDOWN),
        st.sampled_from(
            ["@everyone", "@here", "<@&⟦role⟧>", "<@⟦member⟧>", "<@&⟦everyone-role⟧>", "<#⟦channel⟧>"]
        ),
    )


def interleave(question: str, noise: list[str]) -> str:
    words = question.split(" ")
    return "".join(n + " " + w for n, w in zip(noise, words, strict=False)) + " " + noise[-1]


def decorated_questions() -> st.SearchStrategy[str]:
    """Questions the article answers, wrapped in hostile noise: they reach the answer path."""
    return st.builds(
        interleave, st.sampled_from(ANSWERABLE), st.lists(decorations(), min_size=10, max_size=10)
    )


def fill(text: str, size: int) -> str:
    """``text`` repeated to exactly ``size`` characters."""
    return (text * (size // len(text) + 1))[:size]


def hostile_text(max_size: int) -> st.SearchStrategy[str]:
    """Text a person could type or paste, from ordinary to as hostile as Unicode allows."""
    mixed = st.lists(fragments(), min_size=1, max_size=40).map("".join)
    return st.one_of(
        mixed,
        decorated_questions(),
        decorated_questions(),  # twice: answers are where the bot quotes and emphasises
        st.text(min_size=1, max_size=min(max_size, 400)),
        st.lists(
            st.one_of(
                st.sampled_from(EMOJI[:-1]), st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
            ),
            min_size=1,
            max_size=60,
        ).map("".join),  # only emoji
        st.text(alphabet=PUNCTUATION, min_size=1, max_size=120),
        st.builds(fill, st.one_of(mixed, decorated_questions()), st.just(max_size)),  # as long as allowed
    ).map(lambda text: text[:max_size])


@dataclass
class World:
    """The ids a placeholder in generated text stands for, in this stand-in run."""

    ids: dict[str, str]

    @classmethod
    def of(cls, standin: DiscordStandin, bot: ArticleBot) -> World:
        assert bot.user is not None
        guild = standin.guild
        role = next(r for r in guild["roles"] if r["id"] != guild["id"])
        return cls(
            {
                "bot": str(bot.user.id),
                "member": standin.member["user"]["id"],
                "moderator": standin.find_member("mod")["user"]["id"],
                "role": role["id"],
                "everyone-role": guild["id"],
                "channel": standin.channel["id"],
                "stranger": "123456789012345678",
            }
        )

    def fill(self, text: str) -> str:
        for name, value in self.ids.items():
            text = text.replace(f"⟦{name}⟧", value)
        return text


# Placeholders filled with made-up ids, for tests without a stand-in.
OFFLINE = World({name: str(123456789012345678 + i) for i, name in enumerate(PLACEHOLDERS)})


# -- one engine for the fast tests ----------------------------------------------------------------


@cache
def article_engine() -> Engine:
    return Engine.from_path(ROOT / "corpus")


def check_answer(answer: Answer, k: int, offset: int) -> None:
    assert isinstance(answer.answered, bool)
    if answer.answered:
        assert answer.reason is None
        if offset == 0:
            assert answer.hits and answer.sentence and answer.sentence.strip()
    else:
        assert isinstance(answer.reason, str) and answer.reason.strip(), answer
        assert answer.sentence is None
    assert len(answer.hits) <= k
    for hit in answer.hits:
        assert 0.0 <= hit.confidence <= 1.0, hit
        assert math.isfinite(hit.score), hit
    json.dumps(answer.to_dict(), allow_nan=False)  # what `ask --json` prints


ENGINE_EXAMPLES = 800  # each ~1-5 ms
FAST = settings(
    max_examples=ENGINE_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(
    question=hostile_text(6000).map(OFFLINE.fill),
    k=st.integers(1, 5),
    strictness=st.floats(0.0, 1.0),
    offset=st.integers(0, 6),
)
@example(question="a" * 6000, k=3, strictness=0.5, offset=0)
@example(question=fill("Who called Musk a rocket man? ", 6000), k=5, strictness=1.0, offset=0)
@example(question="😀🚀👍🏽👨‍👩‍👧‍👦" * 10, k=3, strictness=0.5, offset=0)
@example(question="?!…—«»" * 20, k=3, strictness=0.5, offset=0)
@example(question="\u202e\u200b\u200f\u202a", k=1, strictness=0.0, offset=0)
@example(question="@everyone @here <@&123456789012345678> who owns X?", k=3, strictness=0.5, offset=0)
@example(question="```py\nwho owns X?\n```", k=3, strictness=0.5, offset=2)
@example(question="**Musk** __rocket__ ~~man~~ ||X||", k=5, strictness=0.0, offset=6)
@example(question="\x00\x01\x1b[31mMusk\x7f", k=2, strictness=0.5, offset=0)
@example(question="M\u0301\u0302u\u0303s\u0304k\u0305", k=3, strictness=0.5, offset=0)
def test_engine_answers_any_question_without_raising(
    question: str, k: int, strictness: float, offset: int
) -> None:
    answer = article_engine().ask(question, k=k, strictness=strictness, offset=offset)
    check_answer(answer, k, offset)


def check_embed_limits(embed: dict[str, Any]) -> None:
    title, description = embed.get("title", ""), embed.get("description", "")
    footer = embed.get("footer", {}).get("text", "")
    fields = embed.get("fields", [])
    assert len(title) <= replies.EMBED_TITLE_LIMIT and len(description) <= replies.EMBED_DESCRIPTION_LIMIT
    assert len(footer) <= replies.EMBED_FOOTER_LIMIT and len(fields) <= 25
    for field in fields:
        assert len(field["name"].strip()) > 0 and len(field["name"]) <= replies.EMBED_FIELD_NAME_LIMIT
        assert len(field["value"].strip()) > 0 and len(field["value"]) <= replies.EMBED_FIELD_VALUE_LIMIT
    total = (
        len(title) + len(description) + len(footer) + sum(len(f["name"]) + len(f["value"]) for f in fields)
    )
    assert total <= replies.EMBED_TOTAL_LIMIT


@FAST
@given(
    question=hostile_text(6000).map(OFFLINE.fill),
    k=st.integers(1, 5),
    strictness=st.floats(0.0, 1.0),
)
@example(question="@everyone <@&123456789012345678> <@!123456789012345678> Musk", k=5, strictness=0.0)
@example(question=fill("@here rocket man ", 6000), k=5, strictness=0.0)
def test_replies_built_from_any_answer_fit_discord_and_ping_nobody(
    question: str, k: int, strictness: float
) -> None:
    engine = article_engine()
    answer = engine.ask(question, k=k, strictness=strictness)
    sections = [s for d in engine.documents for s in d.sections]
    contents = [replies.miss_text(answer, sections)]  # message content: 1..2000 characters
    embed_texts: list[str] = []
    if answer.hits:  # what /ask, More, the plain-text fallback and a mention reply send
        embed: dict[str, Any] = dict(replies.answer_embed(answer, sources={}).to_dict())
        check_embed_limits(embed)
        embed_texts += [embed.get("title", ""), embed.get("description", "")]
        embed_texts += [f"{f['name']}\n{f['value']}" for f in embed.get("fields", [])]
        contents += [
            replies.answer_text(answer, sources={}),
            replies.answer_text(answer, sources={}, compact=True),
        ]
    for text in contents:
        assert len(text.strip()) > 0 and len(text) <= replies.CONTENT_LIMIT, (question, text)
    for text in contents + embed_texts:
        assert not live_mentions(text), (question, text)


# -- the real bot ------------------------------------------------------------------------------------


def generated(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` values of ``strategy``, the same ones on every run.

    Why not ``@given`` on the async test itself: each example would start and stop the bot (and
    Hypothesis refuses function-scoped fixtures such as ``standin`` across examples). Instead an
    inner synchronous ``@given`` function collects what Hypothesis generates, with its usual
    distribution (edge cases, boundary sizes, mixes), and the test sends the whole list to one
    running bot. ``derandomize=True`` and no example database make the list the same on every
    machine and run; only the generation phase runs (a collector never fails, so nothing to
    shrink), and a failure names the exact input that caused it.
    """
    drawn: list[T] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn


def reference_id(sent: SentMessage) -> str | None:
    ref = sent.message_reference
    return None if ref is None else str(ref.get("message_id"))


EXAMPLES_PER_PATH = 80  # a Discord round trip each, ~10-20 ms
MAX_ASK = 300  # the /ask option's max_length: Discord refuses longer before the bot sees it


IsReply = Callable[[SentMessage], bool]


async def ask_every(
    standin: DiscordStandin,
    run_bot: RunBot,
    templates: Sequence[T],
    send: Callable[[DiscordStandin, World, T], Awaitable[tuple[str, IsReply]]],
) -> list[tuple[str, list[SentMessage]]]:
    """Start the bot once, send every input in turn, and return each input with its replies."""
    mod = standin.find_member("mod")
    async with run_bot() as bot:
        world = World.of(standin, bot)
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        sent_inputs: list[tuple[str, IsReply]] = []
        for template in templates:
            mark = standin.mark()
            text, is_reply = await send(standin, world, template)
            await standin.wait_for_sent_message(is_reply, since=mark)
            sent_inputs.append((text, is_reply))
        await invoke(standin, "help")  # one last round trip: whatever was still in flight has landed
    everything = standin.sent_messages()
    return [(text, [m for m in everything if is_reply(m)]) for text, is_reply in sent_inputs]


def check_replies(
    standin: DiscordStandin, caplog: pytest.LogCaptureFixture, results: list[tuple[str, list[SentMessage]]]
) -> None:
    for text, sent in results:
        assert len(sent) == 1, (text, [m.body for m in sent])
        assert_inert(sent[0], text)
    for message in standin.sent_messages():
        assert message.allowed_mentions is not None and message.allowed_mentions.get("parse") == []
    assert error_logs(caplog) == []
    assert standin.violations == []


async def test_ask_with_hostile_questions(
    standin: DiscordStandin, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    explicit = [
        "@everyone who owns X?",
        "<@&⟦everyone-role⟧> <@&⟦role⟧> <@⟦member⟧> @here who called Musk a rocket man?",
        "**Who** __owns__ ~~X~~ ||?|| `code` ```py\nx```",
        "\u202eMusk\u202c\u200b\u200f?",
        "😀🚀👍🏽",
        "?!…",
        " ",
        fill("rocket man ", MAX_ASK),
        fill("@everyone ", MAX_ASK),
    ]
    templates = explicit + generated(hostile_text(MAX_ASK), EXAMPLES_PER_PATH)

    async def send(standin: DiscordStandin, world: World, template: str) -> tuple[str, IsReply]:
        question = world.fill(template)[:MAX_ASK] or "?"
        event = standin.slash_interaction("ask", {"question": question})
        await standin.dispatch("INTERACTION_CREATE", event)
        return question, lambda m: m.interaction_id == event["id"]

    results = await ask_every(standin, run_bot, templates, send)
    check_replies(standin, caplog, results)


async def test_mentions_with_hostile_text(
    standin: DiscordStandin, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    explicit = [
        "",
        "@everyone",
        "<@⟦bot⟧> <@!⟦bot⟧>",
        "@here <@&⟦role⟧> who owns X?",
        fill("**Musk** ", 1990),
        "```\n<@&⟦everyone-role⟧>\n```",
    ]
    templates = [(t, True) for t in explicit] + generated(
        st.tuples(hostile_text(1980), st.booleans()), EXAMPLES_PER_PATH
    )

    async def send(standin: DiscordStandin, world: World, template: tuple[str, bool]) -> tuple[str, IsReply]:
        text, mention_first = template
        me = f"<@{world.ids['bot']}>" if mention_first else f"<@!{world.ids['bot']}>"
        text = world.fill(text)[: 2000 - len(me) - 1]  # a message holds 2,000 characters
        message = standin.message_create(f"{me} {text}" if mention_first else f"{text} {me}")
        await standin.dispatch("MESSAGE_CREATE", message)
        return message["content"], lambda m: m.kind == CHANNEL_MESSAGE and reference_id(m) == message["id"]

    results = await ask_every(standin, run_bot, templates, send)
    check_replies(standin, caplog, results)


async def test_apps_menu_on_messages_with_hostile_text(
    standin: DiscordStandin, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    explicit = [
        " \n\t",
        "\u200b\u200f",
        "@everyone <@&⟦role⟧> who owns X?",
        fill("Which hashtags trended? ", 4000),  # Nitro members can send 4,000 characters
        "> quoted\n>>> block\n-# small\n# Heading\nwho called Musk a rocket man?",
    ]
    templates = explicit + generated(hostile_text(2000), EXAMPLES_PER_PATH)

    async def send(standin: DiscordStandin, world: World, template: str) -> tuple[str, IsReply]:
        target = standin.add_message(standin.message_create(world.fill(template)))
        event = standin.message_context_interaction("Ask the article", target)
        await standin.dispatch("INTERACTION_CREATE", event)
        return target["content"], lambda m: m.interaction_id == event["id"]

    results = await ask_every(standin, run_bot, templates, send)
    check_replies(standin, caplog, results)


# -- document uploads -----------------------------------------------------------------------------

ODD_NAMES = 60
SAFE_NAME = re.compile(r"(?!\.)[A-Za-z0-9._-]{1,64}")
NAME_RULE = "Not added: document names must be 1-64 letters, digits"
NOTES = b"Notes\nThe library opens at nine on weekdays.\n"


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", NOTES)
    return buffer.getvalue()


def upload(standin: DiscordStandin, filename: str, data: bytes, *, size: int | None = None) -> dict[str, Any]:
    """An attachment called ``filename`` whatever it holds; its URL stays a plain one, so the
    download itself always works (the name is what the bot has to be careful with)."""
    attachment = standin.add_attachment("upload.bin", data, "application/octet-stream")
    attachment["filename"] = filename
    if size is not None:
        attachment["size"] = size  # what the client claims, not what it sends
    return attachment


HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Menu</title></head><body>\n"
    b"<p>The canteen serves <b>paella</b> on Fridays and soup on every other weekday, <i>@everyone</i>.</p>\n"
    b"</body></html>\n"
)
# filename, bytes, why it is refused (None: the name is not a document name)
REFUSED_UPLOADS: list[tuple[str, bytes, str | None]] = [
    ("binary.txt", bytes(range(256)) * 4, "binary file, not text"),
    ("latin1.txt", "Café crème".encode("latin-1"), "not UTF-8 text (bad byte at offset 3)"),
    ("cut.md", "naïve".encode()[:3], "not UTF-8 text (bad byte at offset 2)"),
    ("utf16.txt", "Hello there.".encode("utf-16"), "binary file, not text"),
    ("empty.txt", b"", "empty file"),
    ("blank.md", b" \r\n\t\n", "empty file"),
    ("bom-only.txt", b"\xef\xbb\xbf", "empty file"),
    ("headings.md", b"# Title\n## Only headings\n", "no paragraphs, only headings"),
    ("archive.txt", zip_bytes(), "binary file, not text"),
    ("archive.zip", zip_bytes(), None),
    ("page.html", HTML, None),
    ("notes", NOTES, None),
    ("notes.MD", NOTES, None),
    ("notes.md.exe", NOTES, None),
    (".hidden.md", NOTES, None),
    ("..", NOTES, None),
    ("../..", NOTES, None),
    ("/", NOTES, None),
    ("a" * 62 + ".txt", NOTES, None),  # 66 characters
    ("résumé.md", NOTES, None),
    ("файл.txt", NOTES, None),
    ("文件.md", NOTES, None),
    ("ｎｏｔｅｓ.md", NOTES, None),  # fullwidth letters
    ("evil\u202etxt.md", NOTES, None),  # right-to-left override: shows as "evildm.txt"
    ("zero\u200bwidth.md", NOTES, None),
    ("rocket🚀.md", NOTES, None),
    ("two words.md", NOTES, None),
    ("notes.md\x00.txt", NOTES, None),
    ("@everyone.md", NOTES, None),
    ("<@&123456789012345678>.md", NOTES, None),
    ("**bold**.md", NOTES, None),
]  # fmt: skip
# A path is never a name: only its last part is kept (as browsers do with uploads), so nothing
# lands outside the server's documents, and the moderator is told the name it was stored under.
PATH_UPLOADS = [
    ("../../traversal.md", "traversal.md"),
    ("..\\..\\backslash.md", "backslash.md"),
    ("../../x.md", "x.md"),
    ("..\\x.md", "x.md"),
    ("/etc/absolute.md", "absolute.md"),
    ("C:\\Windows\\drive.txt", "drive.txt"),
    ("\\\\server\\share\\unc.txt", "unc.txt"),
]


def listed_names(listing: SentMessage) -> list[str]:
    return re.findall(r"^`([^`]*)`", listing.content or "", re.MULTILINE)


async def test_document_uploads_that_cannot_be_used_or_try_to_escape(
    standin: DiscordStandin, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    mod = standin.find_member("mod")
    odd_names = generated(
        st.one_of(
            st.text(min_size=1, max_size=80),
            st.builds(
                "{}{}".format,
                st.text(min_size=1, max_size=20),
                st.sampled_from([".md", ".txt", ".MD", ".md ", ".txt.exe", ""]),
            ),
            st.builds(
                "{}{}".format,
                st.lists(st.sampled_from(["..", ".", "", "~", "etc", "C:", "%2e%2e"]), max_size=4).map(
                    lambda parts: "".join(p + sep for p, sep in zip(parts, "/\\/\\", strict=False))
                ),
                st.sampled_from(["x.md", "x.txt", "..md", "x.md/", "CON.txt"]),
            ),
        ),
        ODD_NAMES,
    )

    async def add(attachment: dict[str, Any]) -> SentMessage:
        return await invoke(standin, "admin", {"file": attachment}, subcommand="documents add", member=mod)

    async with run_bot():
        refused = [
            (name, reason, await add(upload(standin, name, data))) for name, data, reason in REFUSED_UPLOADS
        ]
        huge = await add(upload(standin, "huge.txt", b"word " * 1_000_000))  # 5 MB
        # It says 2 kB and sends 1.5 MB.
        liar = await add(upload(standin, "liar.txt", b"word " * 300_000, size=2_000))
        paths = [(name, stored, await add(upload(standin, name, NOTES))) for name, stored in PATH_UPLOADS]
        html = await add(upload(standin, "page.txt", HTML))
        odd = [(name, await add(upload(standin, name, NOTES))) for name in odd_names]
        listing = await invoke(standin, "admin", subcommand="documents list", member=mod)
        asked = await invoke(standin, "ask", {"question": "What does the canteen serve on Fridays?"})

    for name, reason, sent in refused:
        expected = NAME_RULE if reason is None else f"Not added: `{name}`: {reason}."
        assert sent.ephemeral and (sent.content or "").startswith(expected), (name, sent.content)
    assert huge.content == "Not added: `huge.txt` is 5.0 MB; the limit is 1 MB."
    assert liar.content == "Not added: `liar.txt`: larger than 1 MB."
    for name, stored, sent in paths:
        assert (sent.content or "").startswith(f"Added `{stored}`"), (name, sent.content)
    # HTML is text: a .txt of valid UTF-8 is added as it is, tags and all, and quoted inertly.
    assert (html.content or "").startswith("Added `page.txt`, “page.txt”")
    assert "paella" in every_text(asked) and "@everyone" not in every_text(asked)
    for name, sent in odd:
        text = sent.content or ""
        added = re.match(r"Added `([^`]*)`", text)
        assert text.startswith(NAME_RULE) or (added and SAFE_NAME.fullmatch(added[1])), (name, text)
    names = listed_names(listing)
    assert {"traversal.md", "backslash.md", "x.md", "absolute.md", "drive.txt", "unc.txt", "page.txt"} <= set(
        names
    )
    for name in names:
        assert SAFE_NAME.fullmatch(name) and name.endswith((".txt", ".md")), name
    for sent in standin.sent_messages():
        assert_inert(sent, sent.content, named=[mod["user"]["id"]])
    assert error_logs(caplog) == []
    assert standin.violations == []


# -- a document that tries to inject markup and mentions --------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """The parts of a message by what Discord clients do with them: content, embed descriptions
    and field values render Markdown and mentions; embed titles and field names render Markdown
    only; footers render neither (plain text, shown as written)."""

    markdown: list[str]
    mentions: list[str]
    plain: list[str]

    @classmethod
    def of(cls, sent: SentMessage) -> Rendered:
        markdown, mentions, plain = [sent.content or ""], [sent.content or ""], []
        for embed in sent.embeds:
            markdown += [embed.get("title", ""), embed.get("description", "")]
            mentions.append(embed.get("description", ""))
            for field in embed.get("fields", []):
                markdown += [field["name"], field["value"]]
                mentions.append(field["value"])
            plain.append(embed.get("footer", {}).get("text", ""))
        return cls(markdown, mentions, plain)


def injected_title(role_id: str, user_id: str) -> str:
    return f"**Pwned** __Title__ ||Spoiler|| @everyone @here <@&{role_id}> <@{user_id}> `tick`"


def injected_document(role_id: str, user_id: str) -> str:
    """A server document whose title, source and section heading carry markup and mentions."""
    return (
        f"---\ntitle: {injected_title(role_id, user_id)}\nsource: @here <@&{role_id}> **src**\n---\n"
        f"## Lunch @everyone **menu** <@&{role_id}>\n\nThe canteen serves paella on Fridays.\n"
    )


def check_no_injection(sent: SentMessage, what: str, named: Sequence[str]) -> None:
    """The title's markup shows as typed and its mentions stay text, wherever it is rendered."""
    parts = Rendered.of(sent)
    for text in parts.markdown:
        for raw in ("**Pwned**", "__Title__", "||Spoiler||", "`tick`", "**src**", "**menu**"):
            assert raw not in text, (what, raw, text)
    for text in parts.mentions:
        assert not unexpected_mentions(text, named), (what, text)
    assert_pings_nobody(sent, what)


NO_EMBED_LINKS = payloads.DEFAULT_EVERYONE_PERMISSIONS & ~(1 << 14)


async def show_injected_document(
    standin: DiscordStandin, run_bot: RunBot
) -> tuple[str, dict[str, SentMessage]]:
    """Add a document whose title, source and heading carry markup and mentions; collect every
    reply that shows them."""
    mod = standin.find_member("mod")
    role_id = next(r["id"] for r in standin.guild["roles"] if r["name"] == "Moderator")
    title = injected_title(role_id, standin.member["user"]["id"])
    text = injected_document(role_id, standin.member["user"]["id"])
    shown: dict[str, SentMessage] = {}
    async with run_bot() as bot:
        assert bot.user is not None
        await invoke(standin, "admin", {"cooldown": 0}, subcommand="settings set", member=mod)
        attachment = standin.add_attachment("inject.md", text.encode(), "text/markdown")
        shown["added"] = await invoke(
            standin, "admin", {"file": attachment}, subcommand="documents add", member=mod
        )
        shown["documents list"] = await invoke(standin, "admin", subcommand="documents list", member=mod)
        shown["/article"] = await invoke(standin, "article")
        shown["/article as text"] = await invoke(standin, "article", app_permissions=NO_EMBED_LINKS)
        question = {"question": "What does the canteen serve on Fridays, and who owns X?"}
        shown["/ask"] = await invoke(standin, "ask", question)
        shown["/ask as text"] = await invoke(standin, "ask", question, app_permissions=NO_EMBED_LINKS)
        mark = standin.mark()
        message = standin.message_create(f"<@{bot.user.id}> what does the canteen serve on Fridays?")
        await standin.dispatch("MESSAGE_CREATE", message)
        shown["mention reply"] = await standin.wait_for_sent_message(
            lambda m: m.kind == CHANNEL_MESSAGE and reference_id(m) == message["id"], since=mark
        )
    return title, shown


async def test_a_document_title_cannot_inject_markup_or_mentions_where_moderators_see_it(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    title, shown = await show_injected_document(standin, run_bot)
    mod = standin.find_member("mod")["user"]["id"]
    for what in ("added", "documents list", "/article", "/article as text"):
        check_no_injection(shown[what], what, named=[mod])
    assert replies.escape(title) in (shown["added"].content or "")
    assert replies.escape(title) in (shown["documents list"].content or "")
    # In the /ask embed, the passage and answer (description, field values) stay inert, and the
    # footer, which Discord shows as plain text, shows the title as written.
    asked = shown["/ask"]
    assert "paella" in every_text(asked)
    for text in Rendered.of(asked).mentions:
        assert not live_mentions(text), text
    assert any(title in footer.replace("\u200b", "") for footer in Rendered.of(asked).plain)
    assert_pings_nobody(asked, "/ask")
    assert standin.violations == []


async def test_a_document_title_and_headings_are_escaped_in_answers(
    standin: DiscordStandin, run_bot: RunBot
) -> None:
    _, shown = await show_injected_document(standin, run_bot)
    for what in ("/ask", "/ask as text", "mention reply"):
        check_no_injection(shown[what], what, named=[])


def test_replies_escape_document_titles_sources_and_headings() -> None:
    text = injected_document(OFFLINE.ids["role"], OFFLINE.ids["member"])
    document = parse_text(text, doc_id="g1-inject-md", default_title="inject.md", markdown=True)
    engine = article_engine().with_documents([document])
    answer = engine.ask("What does the canteen serve on Fridays, and who owns X?", k=3)
    assert answer.answered and len({h.passage.document_id for h in answer.hits}) > 1  # titles shown
    missed = Answer(answer.question, False, "The closest passage is about something else.", None, answer.hits)
    sources = {document.id: document.source}
    embed = replies.answer_embed(answer, sources=sources).to_dict()
    rendered = [f["name"] for f in embed.get("fields", [])] + [
        replies.answer_text(answer, sources=sources),
        replies.answer_text(answer, sources=sources, compact=True),
        replies.miss_text(missed, []),
    ]
    for text in rendered:
        for raw in ("**Pwned**", "__Title__", "||Spoiler||", "`tick`", "**src**", "**menu**"):
            assert raw not in text, (raw, text)
        assert not live_mentions(text), text  # field names included: the same text is content elsewhere


def test_an_over_long_question_is_cut_between_words() -> None:
    answer = article_engine().ask("Who owns X? " + "Musk " * 1500)  # cut at 2,000: "… Musk Mus"
    assert answer.question.endswith(" Musk"), answer.question[-12:]
    assert answer.answered, answer.reason


# -- settings Discord would refuse, sent anyway --------------------------------------------------

# option, value, what the moderator must read (the setting's allowed range or values)
OUT_OF_RANGE: list[tuple[dict[str, Any], str]] = [
    ({"passages": 0}, "passages must be between 1 and 5"),
    ({"passages": 6}, "passages must be between 1 and 5"),
    ({"passages": -1}, "passages must be between 1 and 5"),
    ({"passages": 10**30}, "passages must be between 1 and 5"),
    ({"passages": 2.5}, "passages must be between 1 and 5"),  # a number where an integer goes
    ({"cooldown": -1}, "cooldown must be between 0 and 3600"),
    ({"cooldown": 3601}, "cooldown must be between 0 and 3600"),
    ({"cooldown": True}, "cooldown must be between 0 and 3600"),  # a boolean is not a count
    ({"strictness": -0.1}, "strictness must be between 0 and 1"),
    ({"strictness": 1.5}, "strictness must be between 0 and 1"),
    ({"strictness": math.nan}, "strictness must be between 0 and 1"),  # JSON's NaN, which Python reads
    ({"strictness": math.inf}, "strictness must be between 0 and 1"),
    ({"visibility": "everyone"}, "visibility must be public or private"),
    ({"visibility": "PUBLIC"}, "visibility must be public or private"),
    ({"visibility": ""}, "visibility must be public or private"),
    ({"mentions": "yes"}, "mentions must be true or false"),
    # One bad value among good ones: nothing of it is applied.
    ({"passages": 2, "visibility": "private", "cooldown": -1}, "cooldown must be between 0 and 3600"),
]


def option_bounds(standin: DiscordStandin) -> dict[str, dict[str, Any]]:
    put = next(r for r in standin.requests if r.method == "PUT" and r.path.endswith("/commands"))
    admin = next(c for c in put.json if c["name"] == "admin")
    group = next(o for o in admin["options"] if o["name"] == "settings")
    command = next(o for o in group["options"] if o["name"] == "set")
    return {o["name"]: o for o in command["options"]}


async def test_out_of_range_settings_are_refused_and_nothing_is_stored(
    standin: DiscordStandin, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    mod = standin.find_member("mod")
    async with run_bot():
        before = await invoke(standin, "admin", subcommand="settings show", member=mod)
        refused = [
            (options, reason, await invoke(standin, "admin", options, subcommand="settings set", member=mod))
            for options, reason in OUT_OF_RANGE
        ]
        after = await invoke(standin, "admin", subcommand="settings show", member=mod)
        audit = await invoke(standin, "admin", subcommand="audit", member=mod)
        # Still answering with the defaults: three passages, in public.
        answer = await invoke(standin, "ask", {"question": "Who owns X?"})

    # Discord would refuse all of these before the bot saw them: the command declares its ranges.
    bounds = option_bounds(standin)
    assert (bounds["passages"]["min_value"], bounds["passages"]["max_value"]) == (1, 5)
    assert (bounds["cooldown"]["min_value"], bounds["cooldown"]["max_value"]) == (0, 3600)
    assert (bounds["strictness"]["min_value"], bounds["strictness"]["max_value"]) == (0, 1)
    assert [c["value"] for c in bounds["visibility"]["choices"]] == ["public", "private"]
    assert bounds["mentions"]["type"] == payloads.BOOLEAN
    put = next(r for r in standin.requests if r.method == "PUT" and r.path.endswith("/commands"))
    ask = next(c for c in put.json if c["name"] == "ask")
    question = next(o for o in ask["options"] if o["name"] == "question")
    assert (question["min_length"], question["max_length"]) == (1, 300)

    for options, reason, sent in refused:
        assert sent.ephemeral and sent.content == f"Not changed: {reason}.", (options, sent.content)
        assert_inert(sent, options)
    shown = after.content or ""
    assert shown == before.content
    assert "Passages per answer: 3" in shown and "Cooldown per member: 10 s" in shown
    assert "Strictness of “not in the article”: 0.50" in shown and "Default visibility: public" in shown
    assert audit.content == "No admin changes yet."
    assert not answer.ephemeral and len(answer.embeds[0]["fields"]) == 3
    assert error_logs(caplog) == []
    assert standin.violations == []
