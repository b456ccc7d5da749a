"""Shaping answers into Discord messages: one place for escaping, emphasis and Discord's limits.

Every piece of text that came from a person or a document is escaped (markdown and mentions)
before our own markup is added, and every message is cut to fit Discord's limits on a word
boundary with an ellipsis, so Discord never rejects what the bot sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import discord

from .engine import Answer, Hit
from .engine.analyzer import surface_terms

CONTENT_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
LOW_CONFIDENCE = 0.35
ELLIPSIS = "…"
COLOUR_ANSWER = discord.Colour.blurple()
COLOUR_MISS = discord.Colour.light_grey()


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, on a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ELLIPSIS))]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    # Never leave a dangling markdown marker or an escape at the cut.
    cut = cut.rstrip("*_~`|>\\ ")
    if cut.count("**") % 2:
        cut = cut[: cut.rfind("**")].rstrip()
    return cut + ELLIPSIS


def escape(text: str) -> str:
    """Person- or document-written text made inert: no markdown, no mentions that could ping."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


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
    out: list[str] = []
    last = 0
    for start, end in spans:
        out += [escape(text[last:start]), "**", escape(text[start:end]), "**"]
        last = end
    out.append(escape(text[last:]))
    return "".join(out)


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
    return truncate("Source: " + "; ".join(titles), EMBED_FOOTER_LIMIT)


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
