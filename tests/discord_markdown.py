"""What Discord makes of the text the bot sends, as far as links, invites and mentions go.

A deliberately suspicious model of Discord's rendering, for tests: a backslash before any ASCII
punctuation makes that character plain text (Discord's escape rule, from simple-markdown); every
other ``](``, ``<…>``, ``scheme://`` or invite address counts as live. Invite cards are found in
the raw message text, so invites are looked for in the text as sent as well as as rendered.
"""

from __future__ import annotations

import re

# Discord's escape: a backslash before a character that is not a letter, digit or space.
_ESCAPE = re.compile(r"\\([^0-9A-Za-z\s])")
_PLAIN = "\x00"  # stands for an escaped character: text, never markup

MASKED_LINK = re.compile(r"\]\s*\(")  # the middle of [text](url), however the text is nested
ANGLE_MARKUP = re.compile(r"<[^<>\s]*>")  # <url> autolinks, <@id>, <#id>, <t:…>, </cmd:id>, <:emoji:id>
BARE_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://\S*")
INVITE = re.compile(r"(?i)discord(?:app)?\s*[.。．｡]\s*(?:gg|com\s*/\s*invite|gift|new)\s*/\s*[\w-]*")
LIVE_MENTION = re.compile(r"@everyone|@here|<@[!&]?\d{17,20}>")


def rendered_markup(text: str) -> str:
    """``text`` with every escaped character replaced by a placeholder: what is left is markup."""
    return _ESCAPE.sub(_PLAIN, text)


def live_links(text: str, *, ours: re.Pattern[str] | None = None) -> list[str]:
    """Everything in ``text`` Discord would make clickable or turn into a card or a mention.

    ``ours`` matches angle markup the bot writes on purpose (``<@id>`` naming who added a
    document, ``<t:…:R>`` times in /admin listings), which is left out.
    """
    active = rendered_markup(text)
    found = MASKED_LINK.findall(active) + BARE_URL.findall(active) + INVITE.findall(text)
    found += INVITE.findall(active) + LIVE_MENTION.findall(active) + ANGLE_MARKUP.findall(active)
    return [live for live in found if not (ours and ours.fullmatch(live))]


def plain_text(markdown: str) -> str:
    """What a reader sees of text the bot escaped and emboldened: escapes and ``**`` removed."""
    return re.sub(r"\\([^0-9A-Za-z\s])|\*\*", lambda m: m.group(1) or "", markdown)


def bold_runs(markdown: str) -> list[str]:
    """The plain text of each ``**…**`` run (unescaped markers only)."""
    runs: list[str] = []
    bold = False
    for token in re.findall(r"\\[^0-9A-Za-z\s]|\*\*|.", markdown, re.DOTALL):
        if token == "**":
            bold = not bold
            if bold:
                runs.append("")
        elif bold:
            runs[-1] += plain_text(token)
    return runs


def unbalanced_markup(markdown: str) -> list[str]:
    """Problems Discord would show as stray characters: an odd number of unescaped ``**`` or a
    backslash escaping the ellipsis (an escape cut in half)."""
    active = rendered_markup(markdown)
    problems = []
    if active.count("**") % 2:
        problems.append("odd number of **")
    if re.search(r"(?<!\\)(?:\\\\)*\\…$", markdown):
        problems.append("escape cut before the ellipsis")
    return problems
