"""The storage's rules, above the backends: one settings schema read by the command, the storage
and its defaults; one wording for the audit log and failures, whichever backend."""

from __future__ import annotations

import dataclasses

import pytest

from bot.cogs.admin import OPTION_NAMES, Admin, option_names
from bot.storage import GuildSettings, rules, schema


def test_the_admin_command_offers_the_schemas_options_ranges_and_descriptions() -> None:
    offered = {p.name: p for p in Admin.settings_set.parameters}
    expected = {s.option: s for s in schema.SETTINGS if s.option}
    assert set(offered) == set(expected)
    for option, setting in expected.items():
        parameter = offered[option]
        assert parameter.description == setting.description, option
        assert (parameter.min_value, parameter.max_value) == (setting.low, setting.high), option
        if setting.choices:
            assert [c.value for c in parameter.choices] == list(setting.choices), option
    assert offered["passages"].description == "Passages per answer (1-5)"
    assert (
        offered["strictness"].description
        == "How strict the 'not in the article' decision is (0 lenient - 1 strict)"
    )


def test_guild_settings_defaults_are_the_schemas() -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(GuildSettings)}
    assert defaults == {s.name: s.default for s in schema.SETTINGS}


def test_refusals_name_the_option_the_moderator_typed() -> None:
    with pytest.raises(ValueError) as caught:
        rules.validate_settings({"cooldown_seconds": 4000})
    assert option_names(str(caught.value)) == "cooldown must be between 0 and 3600"
    assert "moderator_role_id" not in OPTION_NAMES  # its own commands: no option to rename it to


def test_settings_change_audits_only_what_changed() -> None:
    old = GuildSettings()
    new, lines = rules.settings_change(old, {"cooldown_seconds": 10, "mention_replies": False})
    assert new == GuildSettings(mention_replies=False)
    assert lines == [rules.AuditLine("settings.set", "mention_replies: on -> off")]
    assert rules.settings_change(new, {"mention_replies": False}) == (new, [])


@pytest.mark.parametrize(
    ("failure", "write", "sentence"),
    [
        ("locked", True, "I couldn't save that: the bot's database is locked by another program. "
         "Nothing was changed; try again in a minute."),
        ("locked", False, "I couldn't read the bot's data: the bot's database is locked by another program. "
         "Try again in a minute."),
        ("disk_full", True, "I couldn't save that: the bot's disk is full. Nothing was changed; "
         "tell the bot's operator."),
        ("disk_error", True, "I couldn't save that: the bot's disk reported an error. "
         "Tell the bot's operator."),
        ("damaged", False, "I couldn't read the bot's data: the bot's database is damaged. "
         "Tell the bot's operator."),
        ("lost_while_saving", True, "I couldn't save that: the connection to the bot's database was lost "
         "while saving. Tell the bot's operator."),
    ],
)  # fmt: skip
def test_failure_sentences(failure: rules.Failure, write: bool, sentence: str) -> None:
    assert rules.failure_sentence(failure, write=write) == sentence
