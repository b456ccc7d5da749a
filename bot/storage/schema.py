"""The per-server settings, described once: names, kinds, ranges, defaults, and how /admin offers them.

Everything else reads this table: ``GuildSettings``'s defaults, validation and the audit wording
(``bot.storage.rules``), the ``/admin settings set`` options, their ranges and descriptions
(``bot.cogs.admin``). The databases' CHECK constraints live in frozen migrations, so they cannot be
generated from here; tests/test_storage.py checks that both backends' constraints agree
with these ranges, so a range changed here without a migration fails there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
Kind = Literal["int", "float", "bool", "choice", "role"]
Visibility = Literal["public", "private"]


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    name: str  # the storage's and the audit log's name
    kind: Kind
    default: T
    option: str = ""  # the /admin settings set option; "" for settings with their own command
    about: str = ""  # the option's description; {low} and {high} stand for the range
    low: float | None = None  # inclusive range, for int and float
    high: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """The option's description as Discord shows it, its range filled in."""
        if self.low is None or self.high is None:
            return self.about
        return self.about.format(low=f"{self.low:g}", high=f"{self.high:g}")

    @property
    def range_text(self) -> str:
        """``1 and 5``, ``0 and 1``: the range as the refusals and descriptions write it."""
        return f"{self.low:g} and {self.high:g}"


PASSAGES_PER_ANSWER: Setting[int] = Setting(
    "passages_per_answer", "int", 3, option="passages", low=1, high=5,
    about="Passages per answer ({low}-{high})",
)  # fmt: skip
DEFAULT_VISIBILITY: Setting[Visibility] = Setting(
    "default_visibility", "choice", "public", option="visibility", choices=("public", "private"),
    about="Answers to /ask are public or private by default",
)  # fmt: skip
MENTION_REPLIES: Setting[bool] = Setting(
    "mention_replies", "bool", True, option="mentions", about="Reply when someone mentions the bot"
)
COOLDOWN_SECONDS: Setting[int] = Setting(
    "cooldown_seconds", "int", 10, option="cooldown", low=0, high=3600,
    about="Seconds a member waits between questions ({low}-{high})",
)  # fmt: skip
STRICTNESS: Setting[float] = Setting(
    "strictness", "float", 0.5, option="strictness", low=0.0, high=1.0,
    about="How strict the 'not in the article' decision is ({low} lenient - {high} strict)",
)  # fmt: skip
MODERATOR_ROLE_ID: Setting[int | None] = Setting("moderator_role_id", "role", None)
# A reply to one of the bot's answers within this many minutes is a follow-up (read with that answer
# as context); 0 turns follow-ups off, and such a reply is then a plain question.
FOLLOW_UP_MINUTES: Setting[int] = Setting(
    "follow_up_minutes", "int", 60, option="followups", low=0, high=1440,
    about="Minutes a reply to an answer counts as a follow-up ({low} off - {high})",
)  # fmt: skip

SETTINGS: tuple[Setting[Any], ...] = (
    PASSAGES_PER_ANSWER,
    DEFAULT_VISIBILITY,
    MENTION_REPLIES,
    COOLDOWN_SECONDS,
    STRICTNESS,
    MODERATOR_ROLE_ID,
    FOLLOW_UP_MINUTES,
)
BY_NAME: dict[str, Setting[Any]] = {setting.name: setting for setting in SETTINGS}
# The settings `/admin settings set` changes; the moderator role has its own commands.
SETTING_NAMES = tuple(setting.name for setting in SETTINGS if setting.option)
