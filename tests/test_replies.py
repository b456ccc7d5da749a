"""Quoted text made inert by construction: escaped once as a whole, then emboldened by offsets.

Hostile passages (masked links hiding their target, nested brackets, invites, autolinks,
mentions, backslashes, markdown) go through ``replies`` and come out as text a reader sees as
written, with no live link, invite or mention (tests/discord_markdown.py says what "live" means),
and ``truncate`` never cuts an escape in half or leaves a bold run open.
"""

from __future__ import annotations

import re

import pytest
from conftest import ROOT
from discord_markdown import bold_runs, live_links, plain_text, rendered_markup, unbalanced_markup
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import replies
from bot.engine import Answer, Engine, parse_text
from bot.engine.analyzer import analyze, surface_terms

PHISHING = "[click here to verify your account](https://evil.example/login)"
INVITES = [
    "discord.gg/paella",
    "https://discord.gg/paella",
    "DISCORD.GG/Paella",
    "discord.com/invite/paella",
    "https://discord.com/invite/paella",
    "discordapp.com/invite/paella",
    "http://www.discordapp.com/invite/paella",
    "discord.gift/nitro",
    "discord.new/template",
    "discord。gg/paella",  # an ideographic full stop, which browsers read as a dot
]
HOSTILE = [
    PHISHING,
    f"To order paella, {PHISHING} now.",
    "[[verify](https://evil.example/a)](https://evil.example/b)",
    "[a [b] c](http://evil.example) and [x]( https://evil.example ) and [y](<https://evil.example>)",
    "[account] (https://evil.example/c) [verify]\n(https://evil.example/d)",
    "<https://evil.example/verify> <mailto:someone@evil.example> <steam://run/1>",
    "https://evil.example/login?next=discord.gg/abc steam://connect/1.2.3.4",
    "@everyone @here <@&123456789012345678> <@123456789012345678> <@!123456789012345678>",
    "<#123456789012345678> <t:0:R> </ask:123456789012345678> <:rocket:123456789012345678>",
    r"\[already escaped](https://evil.example) \\[double](https://evil.example) trailing \\",
    r"\\\[x\\](https://evil.example) \ \a \* \\* \\\* end\\",
    "**bold** __under__ ~~strike~~ ||spoiler|| `code` ```block``` *it* _it_",
    "# Heading\n## Two\n### Three\n-# small\n- item\n* item\n+ item\n1. first\n> quote\n>>> all",
    "  # indented heading\n   > indented quote\n\t- tab item",
    *INVITES,
]


def emboldened(text: str, words: str) -> str:
    return replies.emphasise(text, analyze(words))


# -- the cases the probe found ------------------------------------------------------------------


def test_a_masked_link_with_bold_words_inside_is_plain_text() -> None:
    out = emboldened(PHISHING, "verify account")
    assert out == r"\[click here to **verify** your **account**\](https\://evil.example/login)"
    assert live_links(out) == []
    assert plain_text(out) == PHISHING


@pytest.mark.parametrize("invite", INVITES)
def test_invites_are_never_live_with_or_without_bold(invite: str) -> None:
    for words in ("", "paella", "discord gg invite", "discordapp com"):
        out = emboldened(f"Join {invite} for paella.", words)
        assert live_links(out) == [], (words, out)
        assert plain_text(out) == f"Join {invite} for paella."


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_inert_and_reads_as_written(text: str) -> None:
    for words in ("", "verify account evil example login", "everyone here ask rocket", text):
        for out in (emboldened(text, words), replies.escape(text)):
            assert live_links(out) == [], (words, out)
            assert plain_text(out).replace("\u200b", "") == text, (words, out)
            assert unbalanced_markup(out) == []


@pytest.mark.parametrize("text", HOSTILE)
def test_no_markdown_is_left_in_escaped_text(text: str) -> None:
    active = rendered_markup(replies.escape(text))
    assert not re.search(r"[*_~|`\[\]<\\]", active), active
    assert not re.search(r"^\s*(?:#|-|\+|>|\d+[.)])", active, re.MULTILINE), active


def test_mentions_get_a_zero_width_space() -> None:
    assert replies.escape("@everyone @here") == "@\u200beveryone @\u200bhere"


def test_bold_runs_are_the_question_words_and_merge_across_spaces() -> None:
    text = "Trump called Musk “a rocket man” at the [rally](https://x.example)."
    out = emboldened(text, "who called musk a rocket man at the rally")
    assert bold_runs(out) == ["called Musk", "rocket man", "rally"]
    assert out == r"Trump **called Musk** “a **rocket man**” at the \[**rally**\](https\://x.example)."


def test_bold_next_to_escaped_markup_stays_bold() -> None:
    out = emboldened(r"*Musk* _Musk_ \Musk\ `Musk`", "musk")
    assert out == r"\***Musk**\* \_**Musk**\_ \\**Musk**\\ \`**Musk**\`"
    assert bold_runs(out) == ["Musk"] * 4


# -- truncate -------------------------------------------------------------------------------------


def test_truncate_never_cuts_an_escape_in_half_or_leaves_bold_open() -> None:
    text = emboldened(f"{PHISHING} " * 3 + "\\*_*" * 40 + " rocket man " * 20, "verify account rocket man")
    for limit in range(1, len(text) + 1):
        cut = replies.truncate(text, limit)
        assert len(cut) <= limit
        assert unbalanced_markup(cut) == [], (limit, cut)
        assert live_links(cut) == [], (limit, cut)
        assert plain_text(text).startswith(plain_text(cut.removesuffix(replies.ELLIPSIS))), (limit, cut)


def test_truncate_never_strips_the_space_of_an_escaped_space() -> None:
    cut = replies.truncate("abcdefgh\\  " + "x" * 20, 12)  # a backslash before a space, then a space
    assert cut == "abcdefgh…" and unbalanced_markup(cut) == []


def test_truncate_closes_a_bold_run_it_cuts() -> None:
    text = "**Answer:** " + emboldened("the rocket man " + "word " * 30, "rocket man")
    assert replies.truncate(text, 27) == "**Answer:** the **rocket**…"
    assert replies.truncate(text, 26) == "**Answer:** the…"  # no room to close it: cut before it
    assert replies.truncate("aaaaaaaaaa**bbbbbbbbbb**", 13) == "aaaaaaaaaa…"  # an empty run is dropped


def test_truncate_keeps_our_angle_markup_whole() -> None:
    text = "added by <@123456789012345678> <t:1700000000:R> and more words here"
    for limit in range(10, len(text)):
        cut = replies.truncate(text, limit)
        assert not re.search(r"<[^>]*…$", cut), cut


def test_plain_truncate_for_plain_text_adds_no_markup() -> None:
    assert replies.truncate("**a b c d e f g h", 8, markdown=False) == "**a b…"
    assert replies.truncate("**a b c d e f g h", 8) == "**a b**…"


# -- properties -------------------------------------------------------------------------------

FRAGMENTS = st.one_of(
    st.sampled_from(HOSTILE),
    st.sampled_from(["[", "]", "(", ")", "<", ">", "\\", "*", "**", "_", "`", "|", "~", "@", "#", "-"]),
    st.sampled_from(["https://", "http://", "://", "discord", ".gg/", ".com/invite/", "app", "。"]),
    st.sampled_from([" ", "\n", "  ", "\n> ", "\n# ", "\n-# ", "\n1. "]),
    st.sampled_from(["verify", "account", "Musk", "rocket", "man", "everyone", "here", "evil"]),
    st.text(max_size=6),
)
HOSTILE_TEXT = st.lists(FRAGMENTS, min_size=1, max_size=30).map("".join)
PROPERTY = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def merged_spans(text: str, wanted: set[str]) -> list[str]:
    """The words of ``text`` whose term is wanted, neighbours across blank runs joined."""
    spans: list[list[int]] = []
    for start, end, term in surface_terms(text):
        if term in wanted:
            if spans and not text[spans[-1][1] : start].strip():
                spans[-1][1] = end
            else:
                spans.append([start, end])
    return [text[s:e] for s, e in spans]


@PROPERTY
@given(text=HOSTILE_TEXT, data=st.data())
@example(text=PHISHING, data=None)
def test_emphasised_text_is_inert_reads_as_written_and_bolds_the_words(
    text: str, data: st.DataObject | None
) -> None:
    terms = analyze(text)
    wanted = set(data.draw(st.lists(st.sampled_from(terms), unique=True)) if data and terms else terms)
    out = replies.emphasise(text, wanted)
    assert live_links(out) == [], out
    assert plain_text(out).replace("\u200b", "") == text.replace("\u200b", "")
    assert bold_runs(out) == merged_spans(text, wanted)
    assert unbalanced_markup(out) == []


@PROPERTY
@given(text=HOSTILE_TEXT, limit=st.integers(1, 1200))
def test_truncated_emphasised_text_fits_stays_inert_and_balanced(text: str, limit: int) -> None:
    out = "**Answer:** " + replies.emphasise(text, analyze(text))
    cut = replies.truncate(out, limit)
    assert len(cut) <= limit
    assert live_links(cut) == [], cut
    assert unbalanced_markup(cut) == [], cut
    seen = plain_text(cut.removesuffix(replies.ELLIPSIS)).replace("\u200b", "")
    assert plain_text(out).replace("\u200b", "").startswith(seen), (out, cut)


# -- every reply built from a hostile document ------------------------------------------------


def hostile_document() -> str:
    return (
        f"---\ntitle: Canteen {PHISHING} <https://evil.example/t>\nsource: https://discord.gg/canteen\n"
        f"---\n## Orders [here](https://evil.example/h) discord.gg/heading @everyone\n\n"
        f"The canteen serves paella on Fridays. To order paella, {PHISHING} and join "
        "discord.gg/paella, https://discord.com/invite/paella or discordapp.com/invite/paella2.\n\n"
        "Nested [[verify](https://evil.example/a)](https://evil.example/b) and "
        "<https://evil.example/verify> for paella.\n"
    )


def test_every_reply_quoting_a_hostile_document_is_inert() -> None:
    document = parse_text(hostile_document(), doc_id="g1-canteen-md", default_title="x.md", markdown=True)
    engine = Engine.from_path(ROOT / "corpus").with_documents([document])
    answer = engine.ask("How do I verify my account to order paella?", k=3)
    assert answer.answered and "evil.example/login" in (answer.sentence or "")
    missed = Answer(answer.question, False, "Not about [this](https://evil.example).", None, answer.hits)
    sources = {document.id: document.source}
    embed = replies.answer_embed(answer, sources=sources).to_dict()
    rendered = [embed["title"], embed["description"]]
    rendered += [part for f in embed["fields"] for part in (f["name"], f["value"])]
    rendered += [
        replies.answer_text(answer, sources=sources),
        replies.answer_text(answer, sources=sources, compact=True),
        replies.miss_text(missed, document.sections),
    ]
    for text in rendered:
        assert live_links(text) == [], text
        assert unbalanced_markup(text) == [], text
    assert "**verify** your **account**" in embed["description"]
