"""Shaping answers into Discord messages: one place for escaping, emphasis and Discord's limits.

Every piece of text that came from a person or a document is escaped as a whole (markdown,
links, invites and mentions) before our own markup is added, and every message is cut to fit
Discord's limits on a word boundary with an ellipsis, so Discord never rejects what the bot sends.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

import discord

from .engine import Answer, Hit
from .engine.analyzer import surface_terms
from .engine.decision import LOW_CONFIDENCE

CONTENT_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
ELLIPSIS = "…"
COLOUR_ANSWER = discord.Colour.blurple()
COLOUR_MISS = discord.Colour.light_grey()


# -- escaping ------------------------------------------------------------------------------------
#
# Quoted text (passages, titles, headings, questions, reasons) is escaped once, as a whole, so no
# rule ever sees a fragment of a construct: a masked link "[text](url)" split by bold words is
# still seen whole. Emphasis is then put in by offsets into the escaped text (``_escaped_units``
# keeps one unit per original character), never by escaping pieces separately.
#
# Links in quoted text are made inert, not kept clickable, bare URLs included. A masked link hides
# its target behind words a document chose ("verify your account"); an invite, gift or template
# address turns into a join card; and even a bare URL, clickable in a bot's reply, borrows the
# bot's authority and unfurls a preview its owner controls when the answer is sent as text. A
# reader still sees every address as written and can copy it. Discord reads a backslash before
# any ASCII punctuation as "this character is text": the colon of "https://" escaped means no
# autolink, and the dot of "discord.gg" escaped means the raw message no longer holds an invite.

# Escaped wherever they appear: markdown markers, the brackets of masked links, and "<", which
# opens autolinks "<url>" and all of Discord's markup (<@id>, <#id>, <t:…>, </cmd:id>, <:e:id>).
# A lone ">" or "(" does nothing once "<" and "]" are text.
_ALWAYS = frozenset("\\*_~`|[]<")
# Only at the start of a line: headings (# ## ### -#), lists (- + 1. 1)) and quotes (> >>>).
_LINE_MARKER = re.compile(r"^[ \t]*([#>+-])", re.MULTILINE)
_LINE_NUMBER = re.compile(r"^[ \t]*\d+([.)])", re.MULTILINE)
# The colon of every "://" (https, steam, ...): a Discord autolink needs it unescaped.
_SCHEME_COLON = re.compile(r"(:)//")
# discord.gg/…, discord.com/invite/…, discordapp.com/invite/…, discord.gift/…, discord.new/…,
# with or without a scheme, any case, with the full stops browsers also read as dots.
_DISCORD_DOT = re.compile(r"(?i)discord(?:app)?([.。．｡])(?=[a-z])")
# Mentions Discord would resolve from bare text: a zero-width space after "@" keeps them text.
_MENTION_AT = re.compile(r"@(?=everyone|here|[!&]?[0-9]{17,20})")


def _escaped_units(text: str) -> list[str]:
    """Each character of ``text`` as written escaped: itself, perhaps with a backslash before it
    or a zero-width space after it. ``"".join`` is the escaped text; unit ``i`` starts where
    original offset ``i`` lands in it, so markup put between units never splits an escape."""
    backslash = [char in _ALWAYS for char in text]
    for pattern in (_LINE_MARKER, _LINE_NUMBER, _SCHEME_COLON, _DISCORD_DOT):
        for match in pattern.finditer(text):
            backslash[match.start(1)] = True
    spaced = {match.start() for match in _MENTION_AT.finditer(text)}
    return [
        ("\\" if backslash[i] else "") + char + ("\u200b" if i in spaced else "")
        for i, char in enumerate(text)
    ]


def escape(text: str) -> str:
    """Person- or document-written text made inert: no markdown, links, invites or mentions."""
    return "".join(_escaped_units(text))


def code(text: str) -> str:
    """``text`` as inline code: shown exactly as typed, never markdown, a link or a mention.

    A backtick would end the span early, so it becomes a look-alike (U+02CB); nothing inside a code
    span needs escaping otherwise, and escaping would show its backslashes.
    """
    return "`" + (text.replace("`", "\u02cb") or " ") + "`"


def emphasise(text: str, terms: Iterable[str]) -> str:
    """Escape ``text`` and put the words whose index term is in ``terms`` in bold.

    Neighbouring words merge into one bold run ("**rocket man**", not "**rocket** **man**").
    """
    wanted = set(terms)
    spans: list[list[int]] = []
    for start, end, term in surface_terms(text):
        if term not in wanted:
            continue
        if spans and not text[spans[-1][1] : start].strip():
            spans[-1][1] = end
        else:
            spans.append([start, end])
    marks = {offset for span in spans for offset in span}  # where a run opens or closes
    units = _escaped_units(text)
    out: list[str] = []
    for offset, unit in enumerate(units):
        if offset in marks:
            out.append("**")
        out.append(unit)
    if len(text) in marks:
        out.append("**")
    return "".join(out)


# -- cutting to Discord's limits ---------------------------------------------------------------

# What a cut must not split: an escape, a code span, our own <…> markup (mentions, channels,
# times); and the bold and italic markers, whose run must be closed if the cut falls inside it.
_ATOM = re.compile(r"\\.|`[^`\n]*`|<[@#/:at][^<>\s]*>|\*\*|\*", re.DOTALL)


def truncate(text: str, limit: int, *, markdown: bool = True) -> str:
    """``text`` cut to at most ``limit`` characters, on a word boundary, with an ellipsis.

    With ``markdown`` (text the bot escaped and marked up), the cut never falls inside an escape,
    a code span or a mention, and a bold or italic run it cuts is closed (or dropped if empty).
    ``markdown=False`` is for plain text such as embed footers: cut, nothing added.
    """
    if len(text) <= limit:
        return text
    atoms = [match.span() for match in _ATOM.finditer(text)] if markdown else []
    room = max(0, limit - len(ELLIPSIS))
    while True:
        cut = _cut(text, room, limit // 2, atoms)
        if markdown:
            cut = _closed(cut)
        if len(cut) <= room or not cut:
            return cut + ELLIPSIS
        room -= len(cut) - room  # closing markers took room: cut earlier


def _inside(offset: int, atoms: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The atom ``offset`` falls strictly inside, if any (atoms are sorted and never overlap)."""
    index = bisect.bisect_left(atoms, (offset,)) - 1  # the last atom starting before ``offset``
    if index >= 0 and offset < atoms[index][1]:
        return atoms[index]
    return None


def _cut(text: str, room: int, word_floor: int, atoms: list[tuple[int, int]]) -> str:
    """The longest start of ``text`` within ``room`` that ends between atoms, at a space if one
    is past ``word_floor``."""
    end = room
    if (atom := _inside(end, atoms)) is not None:
        end = atom[0]
    space = text.rfind(" ", 0, end)
    while space > word_floor and (atom := _inside(space, atoms)) is not None:
        space = text.rfind(" ", 0, atom[0])
    if space > word_floor:
        end = space
    end = len(text[:end].rstrip())
    if (atom := _inside(end, atoms)) is not None:  # the strip took the space of an escaped space
        end = atom[0]
    return text[:end]


def _closed(cut: str) -> str:
    """``cut`` with the bold and italic runs it leaves open closed; a run opened at the very end
    of the cut, with nothing in it yet, is dropped instead."""
    while True:
        open_runs: list[tuple[str, int]] = []  # (marker, where it starts)
        for match in _ATOM.finditer(cut):
            marker = match.group()
            if marker not in ("**", "*"):
                continue
            if open_runs and open_runs[-1][0] == marker:
                open_runs.pop()
            else:
                open_runs.append((marker, match.start()))
        if open_runs and not cut[open_runs[-1][1] + len(open_runs[-1][0]) :].strip():
            cut = cut[: open_runs[-1][1]].rstrip()
            continue
        return cut + "".join(marker for marker, _ in reversed(open_runs))


def place(hit: Hit, several_documents: bool) -> str:
    """Where a passage sits, escaped: document titles and section headings are written by people."""
    where = escape(hit.passage.place)
    return f"{escape(hit.passage.document_title)} · {where}" if several_documents else where


def confidence_label(confidence: float) -> str:
    return f"confidence {confidence:.0%}"


def _several(hits: Sequence[Hit]) -> bool:
    return len({h.passage.document_id for h in hits}) > 1


def _footer(hits: Sequence[Hit], sources: dict[str, str], *, markdown: bool = False) -> str:
    """``Source: …``. An embed footer is plain text and shows titles as written; in message
    content (``markdown=True``) they are escaped like any text a person wrote."""
    titles = []
    for hit in hits:
        title = hit.passage.document_title
        source = sources.get(hit.passage.document_id)
        label = f"{title} — {source}" if source else title
        if markdown:
            label = escape(label)
        if label not in titles:
            titles.append(label)
    return truncate("Source: " + "; ".join(titles), EMBED_FOOTER_LIMIT, markdown=markdown)


def answer_embed(answer: Answer, *, sources: dict[str, str], first_rank: int = 1) -> discord.Embed:
    """The full answer: question, direct answer, cited passages, confidence, source."""
    hits = answer.hits
    top = hits[0] if hits else None
    low = top is None or top.confidence < LOW_CONFIDENCE
    embed = discord.Embed(
        title=truncate(escape(answer.question), EMBED_TITLE_LIMIT),
        colour=COLOUR_MISS if low else COLOUR_ANSWER,
    )
    if answer.sentence and first_rank == 1:
        label = "Closest match (low confidence)" if low else "Answer"
        embed.description = truncate(f"**{label}:** {emphasise(answer.sentence, answer.terms)}", 1000)
    several = _several(hits)
    budget = (
        EMBED_TOTAL_LIMIT - len(embed.title or "") - len(embed.description or "") - EMBED_FOOTER_LIMIT // 8
    )
    for rank, hit in enumerate(hits, start=first_rank):
        name = truncate(
            f"[{rank}] {place(hit, several)} · {confidence_label(hit.confidence)}", EMBED_FIELD_NAME_LIMIT
        )
        room = min(EMBED_FIELD_VALUE_LIMIT, budget - len(name))
        if room < 40:
            break
        value = truncate(emphasise(hit.passage.text, answer.terms), room)
        embed.add_field(name=name, value=value, inline=False)
        budget -= len(name) + len(value)
    if hits:
        embed.set_footer(text=_footer(hits, sources))
    return embed


def answer_text(
    answer: Answer, *, sources: dict[str, str], first_rank: int = 1, compact: bool = False
) -> str:
    """The same answer as plain message content (no Embed Links permission, or a mention reply)."""
    hits = answer.hits[:1] if compact else answer.hits
    several = _several(hits)
    lines: list[str] = []
    top = hits[0] if hits else None
    if answer.sentence and first_rank == 1 and top:
        label = "Closest match (low confidence)" if top.confidence < LOW_CONFIDENCE else "Answer"
        lines.append(f"**{label}:** {emphasise(answer.sentence, answer.terms)}")
    for rank, hit in enumerate(hits, start=first_rank):
        cite = f"*{place(hit, several)}* · {confidence_label(hit.confidence)}"
        if compact:
            lines.append(f"— {cite}")
        else:
            lines += ["", f"**[{rank}]** {cite}", "> " + emphasise(hit.passage.text, answer.terms)]
    if hits and not compact:
        lines += ["", "-# " + _footer(hits, sources, markdown=True)]
    return truncate("\n".join(lines), CONTENT_LIMIT)


def miss_text(answer: Answer, sections: Sequence[str]) -> str:
    """A private "not in the article" with what the article does cover."""
    lines = [f"I couldn't find that in the article. {escape(answer.reason or '')}".strip()]
    if answer.hits:
        hit = answer.hits[0]
        lines.append(f"The closest passage (*{escape(hit.passage.place)}*) may not answer it:")
        lines.append("> " + truncate(emphasise(hit.passage.text, answer.terms), 600))
    if sections:
        lines.append("It covers: " + ", ".join(escape(s) for s in sections[:12]) + ".")
    lines.append("Use `/article` to see what it is about, or ask in other words.")
    return truncate("\n".join(lines), CONTENT_LIMIT)
