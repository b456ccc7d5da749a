"""The storage's rules, above every backend: what a value may be, what a change writes in the audit log.

A backend reads the current rows, asks these functions what the change is (the new values, the
audit entries, a refusal) and writes that in one transaction. So the wording moderators read in
``/admin audit`` and the refusals they get are the same on SQLite and PostgreSQL, byte for byte,
and a new backend copies no sentence.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from . import schema
from .base import DocumentLimitError, DocumentLimits, DocumentUsage, GuildSettings

ChannelRule = Literal["allow", "deny", "clear"]


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One audit row to write: the action's name and the detail a moderator reads."""

    action: str
    detail: str


# -- values -----------------------------------------------------------------------------------------
def megabytes(size_bytes: int) -> str:
    """``1.2``, ``5``, ``0.25``, ``0.004``: one decimal from 1 MB, two significant digits below."""
    if size_bytes >= 1_000_000:
        return f"{size_bytes / 1e6:.1f}".removesuffix(".0")
    return f"{size_bytes / 1e6:.2g}"


def shown(value: object) -> str:
    """A setting value as a moderator reads it in the audit log."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


# -- settings ---------------------------------------------------------------------------------------
def _check_int(setting: schema.Setting[Any], value: object) -> object:
    assert setting.low is not None and setting.high is not None
    # bool is an int subclass; True is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or not setting.low <= value <= setting.high:
        raise ValueError(f"{setting.name} must be between {setting.range_text}")
    return value


def _check_float(setting: schema.Setting[Any], value: object) -> object:
    assert setting.low is not None and setting.high is not None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not setting.low <= value <= setting.high
    ):
        raise ValueError(f"{setting.name} must be between {setting.range_text}")
    return float(value)


def _check_choice(setting: schema.Setting[Any], value: object) -> object:
    if value not in setting.choices:
        raise ValueError(f"{setting.name} must be {' or '.join(setting.choices)}")
    return value


def _check_bool(setting: schema.Setting[Any], value: object) -> object:
    if not isinstance(value, bool):
        raise ValueError(f"{setting.name} must be true or false")
    return value


def _check_role(setting: schema.Setting[Any], value: object) -> object:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{setting.name} must be a role id or none")
    return value


_CHECKS: dict[schema.Kind, Callable[[schema.Setting[Any], object], object]] = {
    "int": _check_int,
    "float": _check_float,
    "choice": _check_choice,
    "bool": _check_bool,
    "role": _check_role,
}


def validate_settings(changes: dict[str, object]) -> dict[str, Any]:
    """Check every change before writing any, so a bad value leaves nothing half-applied.

    Returns ``Any`` values: each has just been checked against its setting's kind, which mypy
    cannot see through a name-keyed table.
    """
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        setting = schema.BY_NAME.get(name)
        if setting is None:
            raise ValueError(f"unknown setting: {name}")
        clean[name] = _CHECKS[setting.kind](setting, value)
    return clean


def settings_change(old: GuildSettings, clean: dict[str, Any]) -> tuple[GuildSettings, list[AuditLine]]:
    """The settings after ``clean`` (validated) and one audit line per value that really changed.

    No line means nothing to write: a backend leaves the row alone and audits nothing.
    """
    changed = {name: value for name, value in clean.items() if getattr(old, name) != value}
    lines = []
    for name, value in changed.items():
        if name == schema.MODERATOR_ROLE_ID.name:
            action = "modrole.clear" if value is None else "modrole.set"
        else:
            action = "settings.set"
        lines.append(AuditLine(action, f"{name}: {shown(getattr(old, name))} -> {shown(value)}"))
    return dataclasses.replace(old, **changed), lines


# -- channels ---------------------------------------------------------------------------------------
def validate_channel_rule(rule: str) -> ChannelRule:
    if rule not in ("allow", "deny", "clear"):
        raise ValueError("channel rule must be allow, deny or clear")
    return rule  # type: ignore[return-value]  # just checked


def channel_rule_change(channel_id: int, old: ChannelRule, new: ChannelRule) -> AuditLine | None:
    """``old`` is ``"clear"`` when the channel had no rule; None when nothing changes."""
    if old == new:
        return None

    def label(rule: str) -> str:
        return "none" if rule == "clear" else rule  # "clear" means no rule for the channel

    return AuditLine(f"channels.{new}", f"channel {channel_id}: {label(old)} -> {label(new)}")


# -- documents --------------------------------------------------------------------------------------
# 1..64 safe characters ending in .txt/.md, no leading dot: no separators, so no path traversal.
_DOCUMENT_NAME = re.compile(r"(?!\.)[A-Za-z0-9._-]{1,64}")
_DOCUMENT_SUFFIXES = (".txt", ".md")


def validate_document_name(name: str) -> str:
    """Return ``name`` if it is a safe document name, else raise ``ValueError``."""
    if not _DOCUMENT_NAME.fullmatch(name) or not name.endswith(_DOCUMENT_SUFFIXES):
        raise ValueError(
            "document names must be 1-64 letters, digits, '.', '_' or '-', "
            "not start with '.', and end in .txt or .md"
        )
    return name


def check_document_size(name: str, size_bytes: int, limits: DocumentLimits) -> None:
    """Refuse one document over the per-document cap (before any transaction: no rows needed)."""
    if size_bytes > limits.max_document_bytes:
        raise DocumentLimitError(
            f"`{name}` is {megabytes(size_bytes)} MB; the limit for one document is "
            f"{megabytes(limits.max_document_bytes)} MB"
        )


def document_add(name: str, size_bytes: int, usage: DocumentUsage, replaced_bytes: int | None) -> AuditLine:
    """Refuse an add past the server's caps, else the audit line for it.

    ``usage`` and ``replaced_bytes`` (the size of the document of that name, None if new) must be
    read inside the write transaction that then inserts, holding the backend's write lock for
    this server, so that no concurrent add lands between the count and the insert.
    """
    limits = usage.limits
    if replaced_bytes is None and usage.count >= limits.max_documents:
        raise DocumentLimitError(
            f"this server already has {usage.count} of {limits.max_documents} documents; "
            "remove one first (`/admin documents remove`)"
        )
    others = usage.total_bytes - (replaced_bytes or 0)
    if others + size_bytes > limits.max_total_bytes:
        raise DocumentLimitError(
            f"`{name}` is {megabytes(size_bytes)} MB and this server's other documents "
            f"already use {megabytes(others)} of {megabytes(limits.max_total_bytes)} MB; "
            "remove one first or add a smaller file"
        )
    verb = "added" if replaced_bytes is None else "replaced"
    return AuditLine("documents.add", f"{name} {verb} ({size_bytes} bytes)")


def document_removed(name: str) -> AuditLine:
    return AuditLine("documents.remove", name)


# -- members ----------------------------------------------------------------------------------------
def blocked(user_id: int, reason: str) -> AuditLine:
    return AuditLine("block", f"user {user_id}" + (f": {reason}" if reason else ""))


def unblocked(user_id: int) -> AuditLine:
    return AuditLine("unblock", f"user {user_id}")


def validate_vote(vote: int) -> int:
    if isinstance(vote, bool) or vote not in (1, -1):
        raise ValueError("vote must be +1 or -1")
    return vote


# -- failures at run time --------------------------------------------------------------------------
Failure = Literal[
    "disk_full",
    "read_only",
    "locked",
    "no_permission",
    "unreachable",
    "damaged",
    "disk_error",
    "lost_while_saving",
]
# What a moderator reads when the database fails them, whichever backend: the reason, and the advice
# after "Nothing was changed;" (a failed write was rolled back; a read changed nothing to begin with).
# None: the failure may have left a write's fate unknown, so no promise, only "tell the operator".
_FAILURES: dict[Failure, tuple[str, str | None]] = {
    "disk_full": ("the bot's disk is full", "tell the bot's operator"),
    "read_only": ("the bot's database is read-only", "tell the bot's operator"),
    "locked": ("the bot's database is locked by another program", "try again in a minute"),
    "no_permission": ("the bot may no longer use its database", "tell the bot's operator"),
    "unreachable": ("the bot's database server cannot be reached", "try again in a minute"),
    "damaged": ("the bot's database is damaged", None),
    "disk_error": ("the bot's disk reported an error", None),  # a failed fsync: the commit's fate unknown
    "lost_while_saving": ("the connection to the bot's database was lost while saving", None),
}


def failure_sentence(failure: Failure, *, write: bool) -> str:
    """The one line a moderator reads for ``failure`` (``StorageError``'s text at run time)."""
    reason, advice = _FAILURES[failure]
    failed = "I couldn't save that" if write else "I couldn't read the bot's data"
    if advice is None:
        return f"{failed}: {reason}. Tell the bot's operator."
    if write:
        return f"{failed}: {reason}. Nothing was changed; {advice}."
    return f"{failed}: {reason}. {advice.capitalize()}."
