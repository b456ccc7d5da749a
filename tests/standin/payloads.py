"""Builders for Discord payloads, shaped the way discord.py 2.x parses them.

Every builder returns a plain ``dict`` (a JSON object exactly as Discord would send it), so a test
can tweak any field before dispatching it. IDs are strings (Discord sends snowflakes as strings);
builders also accept ints wherever they take an ID.

Building blocks
    :func:`snowflake` (unique, time-ordered IDs), :func:`user`, :func:`role`, :func:`everyone_role`,
    :func:`overwrite`, :func:`text_channel`, :func:`dm_channel`, :func:`member`, :func:`guild`,
    :func:`attachment`, :func:`default_guild` (the world a ``DiscordStandin`` starts with),
    :func:`mention` (``<@id>`` / ``<@&id>`` markup), :func:`parse_mentions`.
    ``DEFAULT_APPLICATION_ID`` is the application (and bot user) ID used unless told otherwise;
    ``DEFAULT_EVERYONE_PERMISSIONS`` what @everyone gets.

Permissions
    :func:`member_permissions` computes a member's permissions in a guild (and channel, with
    overwrites) the way Discord does; interaction builders use it to fill ``member.permissions`` and
    ``app_permissions``, which is what ``app_commands.checks.has_permissions`` and
    ``bot_has_permissions`` read.

Gateway events
    :func:`message` (a full message object), :func:`message_create` (the ``MESSAGE_CREATE``
    payload: a message plus ``guild_id`` and ``member``; ``reply_to=`` makes a reply) and
    :func:`reference_to` (a ``message_reference``).

Interactions (``INTERACTION_CREATE`` payloads)
    :func:`slash_interaction` (chat input commands, sub-commands, autocomplete),
    :func:`message_context_interaction`, :func:`user_context_interaction`,
    :func:`component_interaction` (buttons and selects), :func:`modal_submit_interaction`;
    :func:`option` builds a raw option when the type should not be inferred (option type
    constants: ``STRING``, ``INTEGER``, ``BOOLEAN``, ``USER``, ``CHANNEL``, ``ROLE``, ...).
    Each gets a unique ``id`` and ``token``, ``version`` 1, ``application_id``, ``channel``,
    ``attachment_size_limit`` (discord.py requires it) and, in a guild, ``member`` with a computed
    ``permissions`` string; outside a guild, ``user``.

Example::

    from standin import payloads

    alice = payloads.user("alice")
    guild = payloads.default_guild(bot_user)
    event = payloads.message_create(
        f"{payloads.mention(bot_user)} hello",
        author=payloads.member(alice),
        channel=guild["channels"][0],
        guild=guild,
        mentions=[bot_user],
    )
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import discord

Payload = dict[str, Any]
Snowflake = str | int

DISCORD_EPOCH_MS = 1_420_070_400_000
#: Application (and bot user) ID used when a builder is not told otherwise; the stand-in's default bot.
DEFAULT_APPLICATION_ID = "1100000000000000001"
#: discord.py reads ``attachment_size_limit`` from every interaction; Discord's default is 10 MiB.
DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

ADMINISTRATOR = discord.Permissions.administrator.flag
ALL_PERMISSIONS = discord.Permissions.all().value
#: What Discord gives @everyone in a new guild: chat, voice and app use, no moderation.
#: (``Permissions.general()`` would be wrong: it includes manage_guild and manage_roles.)
DEFAULT_EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    create_instant_invite=True,
    change_nickname=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    create_private_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    use_external_emojis=True,
    use_external_stickers=True,
    mention_everyone=True,
    read_message_history=True,
    use_application_commands=True,
    send_voice_messages=True,
    send_polls=True,
    connect=True,
    speak=True,
    stream=True,
    use_voice_activation=True,
).value

_snowflake_lock = threading.Lock()
_last_snowflake = 0
_increment = itertools.count()


def snowflake() -> str:
    """A new unique snowflake (time-ordered, like Discord's), as a string."""
    global _last_snowflake
    with _snowflake_lock:
        candidate = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_increment) & 0xFFF)
        _last_snowflake = max(candidate, _last_snowflake + 1)
        return str(_last_snowflake)


def snowflake_on_shard(shard_id: int, shard_count: int) -> str:
    """A new snowflake for a guild that shard ``shard_id`` of ``shard_count`` serves (id >> 22 % count)."""
    base = int(snowflake())
    return str(base + (((shard_id - (base >> 22)) % shard_count) << 22))


def now_iso() -> str:
    """The current time as Discord formats timestamps."""
    return datetime.now(UTC).isoformat()


def _sid(value: Snowflake | None) -> str | None:
    return None if value is None else str(value)


def _perm_value(value: int | discord.Permissions) -> int:
    return value.value if isinstance(value, discord.Permissions) else int(value)


def mention(target: Payload) -> str:
    """Mention markup for a user, member or role payload (``<@id>`` / ``<@&id>``)."""
    if "user" in target and "roles" in target:  # member payload
        return f"<@{target['user']['id']}>"
    if "username" in target:
        return f"<@{target['id']}>"
    return f"<@&{target['id']}>"


# --------------------------------------------------------------------------- users, roles, channels


def user(
    username: str,
    *,
    id: Snowflake | None = None,
    bot: bool = False,
    global_name: str | None = None,
    avatar: str | None = None,
) -> Payload:
    """A user object (``discriminator`` "0", as for every migrated account)."""
    data: Payload = {
        "id": _sid(id) or snowflake(),
        "username": username,
        "discriminator": "0",
        "global_name": global_name,
        "avatar": avatar,
        "public_flags": 0,
    }
    if bot:
        data["bot"] = True
    return data


def role(
    name: str,
    *,
    id: Snowflake | None = None,
    permissions: int | discord.Permissions = 0,
    position: int = 1,
    color: int = 0,
    hoist: bool = False,
    mentionable: bool = False,
    managed: bool = False,
) -> Payload:
    """A role object; ``permissions`` is serialized as a string, as Discord does."""
    return {
        "id": _sid(id) or snowflake(),
        "name": name,
        "color": color,
        "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
        "hoist": hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(_perm_value(permissions)),
        "managed": managed,
        "mentionable": mentionable,
        "flags": 0,
    }


def everyone_role(
    guild_id: Snowflake, *, permissions: int | discord.Permissions = DEFAULT_EVERYONE_PERMISSIONS
) -> Payload:
    """The @everyone role: its ID is the guild's ID and its position is 0."""
    return role("@everyone", id=guild_id, permissions=permissions, position=0)


def overwrite(
    target: Payload,
    *,
    allow: int | discord.Permissions = 0,
    deny: int | discord.Permissions = 0,
) -> Payload:
    """A channel permission overwrite for a role payload or a member/user payload."""
    if "user" in target and "roles" in target:
        target_id, kind = target["user"]["id"], 1
    elif "username" in target:
        target_id, kind = target["id"], 1
    else:
        target_id, kind = target["id"], 0
    return {"id": target_id, "type": kind, "allow": str(_perm_value(allow)), "deny": str(_perm_value(deny))}


def text_channel(
    name: str,
    *,
    guild_id: Snowflake | None = None,
    id: Snowflake | None = None,
    position: int = 0,
    topic: str | None = None,
    nsfw: bool = False,
    parent_id: Snowflake | None = None,
    permission_overwrites: Sequence[Payload] = (),
) -> Payload:
    """A guild text channel (type 0). :func:`guild` fills ``guild_id`` when it is left out."""
    data: Payload = {
        "id": _sid(id) or snowflake(),
        "type": 0,
        "name": name,
        "position": position,
        "permission_overwrites": list(permission_overwrites),
        "topic": topic,
        "nsfw": nsfw,
        "parent_id": _sid(parent_id),
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    return data


def dm_channel(recipient: Payload, *, id: Snowflake | None = None) -> Payload:
    """A DM channel (type 1) with one recipient (a user payload)."""
    return {
        "id": _sid(id) or snowflake(),
        "type": 1,
        "recipients": [recipient],
        "last_message_id": None,
        "flags": 0,
    }


def member(
    of: Payload,
    *,
    roles: Iterable[Payload | Snowflake] = (),
    nick: str | None = None,
    joined_at: str | None = None,
    permissions: int | discord.Permissions | None = None,
) -> Payload:
    """A guild member wrapping a user payload. ``roles`` takes role payloads or IDs.

    ``permissions`` (a string in the payload) belongs only in interaction payloads; the interaction
    builders compute it with :func:`member_permissions` when it is not given here.
    """
    data: Payload = {
        "user": of,
        "nick": nick,
        "avatar": None,
        "banner": None,
        "roles": [str(r["id"]) if isinstance(r, Mapping) else str(r) for r in roles],
        "joined_at": joined_at or now_iso(),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if permissions is not None:
        data["permissions"] = str(_perm_value(permissions))
    return data


def guild(
    name: str,
    *,
    owner_id: Snowflake,
    id: Snowflake | None = None,
    roles: Sequence[Payload] = (),
    channels: Sequence[Payload] = (),
    members: Sequence[Payload] = (),
    everyone_permissions: int | discord.Permissions = DEFAULT_EVERYONE_PERMISSIONS,
    preferred_locale: str = "en-US",
    features: Sequence[str] = (),
) -> Payload:
    """A full ``GUILD_CREATE`` guild: everything discord.py's state needs to build a ``Guild``.

    An @everyone role is added unless ``roles`` has one (a role whose ID is the guild ID); channels
    get ``guild_id`` filled in.
    """
    guild_id = _sid(id) or snowflake()
    role_list = [dict(r) for r in roles]
    if not any(r["id"] == guild_id for r in role_list):
        role_list.insert(0, everyone_role(guild_id, permissions=everyone_permissions))
    channel_list = [{**c, "guild_id": guild_id} for c in channels]
    text_channels = [c for c in channel_list if c.get("type") == 0]
    return {
        "id": guild_id,
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "system_channel_id": text_channels[0]["id"] if text_channels else None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "preferred_locale": preferred_locale,
        "vanity_url_code": None,
        "features": list(features),
        "roles": role_list,
        "emojis": [],
        "stickers": [],
        "channels": channel_list,
        "threads": [],
        "members": list(members),
        "member_count": len(members),
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "large": False,
        "unavailable": False,
        "lazy": True,
        "joined_at": now_iso(),
        "max_members": 500000,
        "max_video_channel_users": 25,
        "application_id": None,
        "nsfw": False,
    }


def default_guild(bot_user: Payload) -> Payload:
    """The world a stand-in starts with when it is given no guilds.

    Guild "Stand-in Guild" owned by user "owner"; channels #general and #bot-log; roles @everyone
    (Discord's defaults) and "Moderator" (manage guild + manage messages); members: the owner,
    "alice" (no roles), "mod" (Moderator) and the bot.
    """
    owner = user("owner")
    alice = user("alice")
    mod = user("mod")
    moderator = role(
        "Moderator",
        permissions=discord.Permissions(manage_guild=True, manage_messages=True),
        position=1,
    )
    return guild(
        "Stand-in Guild",
        owner_id=owner["id"],
        roles=[moderator],
        channels=[text_channel("general", position=0), text_channel("bot-log", position=1)],
        members=[member(owner), member(alice), member(mod, roles=[moderator]), member(bot_user)],
    )


def attachment(
    filename: str,
    *,
    url: str,
    size: int,
    content_type: str | None = None,
    id: Snowflake | None = None,
    description: str | None = None,
) -> Payload:
    """An attachment object. Usually made by ``DiscordStandin.add_attachment``, which serves the URL."""
    data: Payload = {
        "id": _sid(id) or snowflake(),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
        "content_type": content_type,
        "ephemeral": False,
    }
    if description is not None:
        data["description"] = description
    return data


# --------------------------------------------------------------------------- permissions


def _find_member(guild_data: Payload, user_id: str) -> Payload | None:
    return next((m for m in guild_data.get("members", []) if m["user"]["id"] == user_id), None)


def member_permissions(guild_data: Payload, member_data: Payload, channel: Payload | None = None) -> int:
    """A member's permissions as Discord computes them: owner and administrator get everything;
    otherwise @everyone | roles, then the channel's overwrites (@everyone, roles, member)."""
    user_id = str(member_data["user"]["id"])
    if str(guild_data.get("owner_id")) == user_id:
        return ALL_PERMISSIONS
    roles = {r["id"]: r for r in guild_data.get("roles", [])}
    guild_id = str(guild_data["id"])
    member_roles = [str(r) for r in member_data.get("roles", [])]
    perms = int(roles[guild_id]["permissions"]) if guild_id in roles else 0
    for role_id in member_roles:
        if role_id in roles:
            perms |= int(roles[role_id]["permissions"])
    if perms & ADMINISTRATOR:
        return ALL_PERMISSIONS
    if channel is None:
        return perms
    overwrites = {o["id"]: o for o in channel.get("permission_overwrites", [])}
    if everyone := overwrites.get(guild_id):
        perms = (perms & ~int(everyone["deny"])) | int(everyone["allow"])
    allow = deny = 0
    for role_id in member_roles:
        if (o := overwrites.get(role_id)) and o["type"] == 0:
            allow |= int(o["allow"])
            deny |= int(o["deny"])
    perms = (perms & ~deny) | allow
    if (o := overwrites.get(user_id)) and o["type"] == 1:
        perms = (perms & ~int(o["deny"])) | int(o["allow"])
    return perms


# --------------------------------------------------------------------------- messages


def _as_user(who: Payload) -> Payload:
    return who["user"] if "user" in who and "roles" in who else who


def _partial_member(member_data: Payload) -> Payload:
    return {k: v for k, v in member_data.items() if k not in ("user", "permissions")}


def _mention_entry(who: Payload) -> Payload:
    # Gateway messages carry mentioned users with a partial ``member`` inside when in a guild.
    if "user" in who and "roles" in who:
        return {**who["user"], "member": _partial_member(who)}
    return dict(who)


def message(
    content: str = "",
    *,
    author: Payload,
    channel_id: Snowflake,
    guild_id: Snowflake | None = None,
    id: Snowflake | None = None,
    mentions: Sequence[Payload] = (),
    mention_roles: Sequence[Payload | Snowflake] = (),
    mention_everyone: bool = False,
    embeds: Sequence[Payload] = (),
    attachments: Sequence[Payload] = (),
    components: Sequence[Payload] = (),
    message_reference: Payload | None = None,
    referenced_message: Payload | None = None,
    type: int = 0,
    flags: int = 0,
    webhook_id: Snowflake | None = None,
    application_id: Snowflake | None = None,
    interaction_metadata: Payload | None = None,
) -> Payload:
    """A full message object (as in REST responses). ``author`` is a user or member payload."""
    data: Payload = {
        "id": _sid(id) or snowflake(),
        "type": type,
        "channel_id": str(channel_id),
        "author": _as_user(author),
        "content": content,
        "timestamp": now_iso(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": mention_everyone,
        "mentions": [_mention_entry(m) for m in mentions],
        "mention_roles": [str(r["id"]) if isinstance(r, Mapping) else str(r) for r in mention_roles],
        "attachments": list(attachments),
        "embeds": list(embeds),
        "components": list(components),
        "pinned": False,
        "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if message_reference is not None:
        data["message_reference"] = message_reference
        if referenced_message is not None:
            data["referenced_message"] = referenced_message
    if webhook_id is not None:
        data["webhook_id"] = str(webhook_id)
    if application_id is not None:
        data["application_id"] = str(application_id)
    if interaction_metadata is not None:
        data["interaction_metadata"] = interaction_metadata
    return data


def reference_to(target: Payload, *, fail_if_not_exists: bool = True) -> Payload:
    """A ``message_reference`` pointing at a message payload (a reply)."""
    ref: Payload = {
        "type": 0,
        "message_id": target["id"],
        "channel_id": target["channel_id"],
        "fail_if_not_exists": fail_if_not_exists,
    }
    if "guild_id" in target:
        ref["guild_id"] = target["guild_id"]
    return ref


def message_create(
    content: str = "",
    *,
    author: Payload,
    channel: Payload | None = None,
    channel_id: Snowflake | None = None,
    guild: Payload | None = None,
    guild_id: Snowflake | None = None,
    member: Payload | None = None,
    mentions: Sequence[Payload] = (),
    mention_roles: Sequence[Payload | Snowflake] = (),
    mention_everyone: bool = False,
    reply_to: Payload | None = None,
    **fields: Any,
) -> Payload:
    """A ``MESSAGE_CREATE`` event payload.

    ``author`` is a user payload or a member payload; with a member (or ``member=``) in a guild the
    event carries the partial ``member`` discord.py uses to build ``message.author`` as a Member.
    ``mentions`` takes user or member payloads. ``reply_to`` (a message payload) makes it a reply.
    Other keyword arguments go to :func:`message` (``embeds``, ``attachments``, ``id``, ...).
    """
    if channel is not None:
        channel_id = channel["id"]
        guild_id = guild_id or channel.get("guild_id")
    if guild is not None:
        guild_id = guild["id"]
    if channel_id is None:
        raise ValueError("message_create needs channel= or channel_id=")
    if member is None and "user" in author and "roles" in author:
        member = author
    if reply_to is not None:
        fields.setdefault("type", 19)
        fields["message_reference"] = reference_to(reply_to)
        fields["referenced_message"] = reply_to
    data = message(
        content,
        author=author,
        channel_id=channel_id,
        guild_id=guild_id,
        mentions=mentions,
        mention_roles=mention_roles,
        mention_everyone=mention_everyone,
        **fields,
    )
    if guild_id is not None and member is not None:
        data["member"] = _partial_member(member)
    return data


# --------------------------------------------------------------------------- interactions

# Application command option types (Discord's numbering).
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11


def option(name: str, value: Any, type: int, *, focused: bool = False) -> Payload:
    """A raw interaction option (use this when :func:`slash_interaction` should not infer the type)."""
    data: Payload = {"name": name, "type": type, "value": value}
    if focused:
        data["focused"] = True
    return data


def _infer_option(name: str, value: Any, resolved: Payload) -> Payload:
    """Turn ``name=value`` into an option, adding entity values to ``resolved`` as Discord does."""
    if isinstance(value, bool):
        return option(name, value, BOOLEAN)
    if isinstance(value, int):
        return option(name, value, INTEGER)
    if isinstance(value, float):
        return option(name, value, NUMBER)
    if isinstance(value, str):
        return option(name, value, STRING)
    if isinstance(value, Mapping):
        if "user" in value and "roles" in value:  # member
            user_data = value["user"]
            resolved.setdefault("users", {})[user_data["id"]] = user_data
            resolved.setdefault("members", {})[user_data["id"]] = _partial_member(dict(value)) | {
                "permissions": value.get("permissions", "0")
            }
            return option(name, user_data["id"], USER)
        if "username" in value:
            resolved.setdefault("users", {})[value["id"]] = value
            return option(name, value["id"], USER)
        if "filename" in value and "url" in value:
            resolved.setdefault("attachments", {})[value["id"]] = value
            return option(name, value["id"], ATTACHMENT)
        if "type" in value and "value" in value:  # already a raw option
            return {**value, "name": name}
        if "type" in value and "name" in value:  # channel
            resolved.setdefault("channels", {})[value["id"]] = {
                k: value.get(k) for k in ("id", "type", "name", "parent_id", "guild_id")
            } | {"permissions": str(ALL_PERMISSIONS)}
            return option(name, value["id"], CHANNEL)
        if "permissions" in value and "name" in value:  # role
            resolved.setdefault("roles", {})[value["id"]] = value
            return option(name, value["id"], ROLE)
    raise TypeError(f"cannot infer the option type of {name}={value!r}; pass payloads.option(...)")


def _interaction_channel(channel: Payload, permissions: int | None) -> Payload:
    # Interactions carry the channel with the invoking user's computed permissions in it.
    data = dict(channel)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def _base_interaction(
    type: int,
    *,
    data: Payload | None,
    application_id: Snowflake,
    guild: Payload | None,
    channel: Payload | None,
    member: Payload | None,
    user: Payload | None,
    permissions: int | discord.Permissions | None,
    app_permissions: int | discord.Permissions | None,
    bot_user_id: Snowflake | None,
    locale: str,
    guild_locale: str | None,
    message: Payload | None = None,
) -> Payload:
    payload: Payload = {
        "id": snowflake(),
        "application_id": str(application_id),
        "type": type,
        "token": "itok-" + secrets.token_urlsafe(24),
        "version": 1,
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": DEFAULT_ATTACHMENT_SIZE_LIMIT,
    }
    if data is not None:
        payload["data"] = data
    if message is not None:
        payload["message"] = message
    if guild is not None:
        if member is None:
            raise ValueError("an interaction in a guild needs member=")
        guild_id = guild["id"]
        member_data = dict(member)
        if permissions is None and "permissions" not in member_data:
            permissions = member_permissions(guild, member_data, channel)
        if permissions is not None:
            member_data["permissions"] = str(_perm_value(permissions))
        if app_permissions is None:
            bot_member = _find_member(guild, str(bot_user_id or application_id))
            app_permissions = member_permissions(guild, bot_member, channel) if bot_member else 0
        payload.update(
            guild_id=guild_id,
            guild={"id": guild_id, "locale": guild.get("preferred_locale", "en-US"), "features": []},
            guild_locale=guild_locale or guild.get("preferred_locale", "en-US"),
            member=member_data,
            app_permissions=str(_perm_value(app_permissions)),
            context=0,
            authorizing_integration_owners={"0": guild_id},
        )
    else:
        who = user or (member["user"] if member else None)
        if who is None:
            raise ValueError("an interaction outside a guild needs user=")
        payload.update(
            user=who,
            app_permissions=str(_perm_value(app_permissions or 0)),
            context=1,
            authorizing_integration_owners={"0": str(application_id)},
        )
    if channel is not None:
        member_perms = payload.get("member", {}).get("permissions")
        payload["channel_id"] = channel["id"]
        payload["channel"] = _interaction_channel(channel, int(member_perms) if member_perms else None)
    return payload


def slash_interaction(
    name: str,
    options: Mapping[str, Any] | Sequence[Payload] | None = None,
    *,
    subcommand: str | Sequence[str] | None = None,
    guild: Payload | None = None,
    channel: Payload | None = None,
    member: Payload | None = None,
    user: Payload | None = None,
    application_id: Snowflake = DEFAULT_APPLICATION_ID,
    command_id: Snowflake | None = None,
    command_guild_id: Snowflake | None = None,
    permissions: int | discord.Permissions | None = None,
    app_permissions: int | discord.Permissions | None = None,
    bot_user_id: Snowflake | None = None,
    resolved: Payload | None = None,
    locale: str = "en-US",
    guild_locale: str | None = None,
    autocomplete: bool = False,
) -> Payload:
    """An ``INTERACTION_CREATE`` for a chat input (slash) command.

    ``options`` is either a mapping ``{name: value}`` -- types are inferred: str, int, float, bool,
    and user/member/channel/role/attachment payloads, which also fill ``data.resolved`` -- or a list
    of raw options (:func:`option`). ``subcommand`` is ``"sub"`` or ``"group sub"`` (or a sequence).
    In a guild pass ``guild``, ``channel`` and ``member``; ``member.permissions`` and
    ``app_permissions`` are computed from the guild unless given. In a DM pass ``user`` and a
    :func:`dm_channel`. ``command_guild_id`` marks a guild command (``data.guild_id``).
    With ``autocomplete=True`` the interaction is type 4; mark the focused option with
    ``option(..., focused=True)``.
    """
    resolved_data: Payload = dict(resolved or {})
    if options is None:
        option_list: list[Payload] = []
    elif isinstance(options, Mapping):
        option_list = [_infer_option(k, v, resolved_data) for k, v in options.items()]
    else:
        option_list = [dict(o) for o in options]
    path = subcommand.split() if isinstance(subcommand, str) else list(subcommand or [])
    for depth, sub_name in reversed(list(enumerate(path))):
        is_group = depth < len(path) - 1
        option_list = [
            {"name": sub_name, "type": SUB_COMMAND_GROUP if is_group else SUB_COMMAND, "options": option_list}
        ]
    data: Payload = {"id": _sid(command_id) or snowflake(), "name": name, "type": 1, "options": option_list}
    if resolved_data:
        data["resolved"] = resolved_data
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    return _base_interaction(
        4 if autocomplete else 2,
        data=data,
        application_id=application_id,
        guild=guild,
        channel=channel,
        member=member,
        user=user,
        permissions=permissions,
        app_permissions=app_permissions,
        bot_user_id=bot_user_id,
        locale=locale,
        guild_locale=guild_locale,
    )


def message_context_interaction(
    name: str,
    target: Payload,
    *,
    guild: Payload | None = None,
    channel: Payload | None = None,
    member: Payload | None = None,
    user: Payload | None = None,
    application_id: Snowflake = DEFAULT_APPLICATION_ID,
    command_id: Snowflake | None = None,
    command_guild_id: Snowflake | None = None,
    permissions: int | discord.Permissions | None = None,
    app_permissions: int | discord.Permissions | None = None,
    bot_user_id: Snowflake | None = None,
    locale: str = "en-US",
    guild_locale: str | None = None,
) -> Payload:
    """An ``INTERACTION_CREATE`` for a message context menu on ``target`` (a message payload),
    which goes into ``data.resolved.messages`` with ``data.target_id``."""
    data: Payload = {
        "id": _sid(command_id) or snowflake(),
        "name": name,
        "type": 3,
        "target_id": target["id"],
        "resolved": {"messages": {target["id"]: target}},
    }
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    return _base_interaction(
        2,
        data=data,
        application_id=application_id,
        guild=guild,
        channel=channel,
        member=member,
        user=user,
        permissions=permissions,
        app_permissions=app_permissions,
        bot_user_id=bot_user_id,
        locale=locale,
        guild_locale=guild_locale,
    )


def user_context_interaction(
    name: str,
    target: Payload,
    *,
    guild: Payload | None = None,
    channel: Payload | None = None,
    member: Payload | None = None,
    user: Payload | None = None,
    application_id: Snowflake = DEFAULT_APPLICATION_ID,
    command_id: Snowflake | None = None,
    command_guild_id: Snowflake | None = None,
    permissions: int | discord.Permissions | None = None,
    app_permissions: int | discord.Permissions | None = None,
    bot_user_id: Snowflake | None = None,
    locale: str = "en-US",
    guild_locale: str | None = None,
) -> Payload:
    """An ``INTERACTION_CREATE`` for a user context menu on ``target`` (a user or member payload)."""
    resolved: Payload = {}
    target_option = _infer_option("target", target, resolved)
    data: Payload = {
        "id": _sid(command_id) or snowflake(),
        "name": name,
        "type": 2,
        "target_id": target_option["value"],
        "resolved": resolved,
    }
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    return _base_interaction(
        2,
        data=data,
        application_id=application_id,
        guild=guild,
        channel=channel,
        member=member,
        user=user,
        permissions=permissions,
        app_permissions=app_permissions,
        bot_user_id=bot_user_id,
        locale=locale,
        guild_locale=guild_locale,
    )


def component_interaction(
    custom_id: str,
    message: Payload,
    *,
    component_type: int = 2,
    values: Sequence[str] | None = None,
    guild: Payload | None = None,
    channel: Payload | None = None,
    member: Payload | None = None,
    user: Payload | None = None,
    application_id: Snowflake = DEFAULT_APPLICATION_ID,
    permissions: int | discord.Permissions | None = None,
    app_permissions: int | discord.Permissions | None = None,
    bot_user_id: Snowflake | None = None,
    locale: str = "en-US",
    guild_locale: str | None = None,
) -> Payload:
    """An ``INTERACTION_CREATE`` for a click on a component of ``message`` (the message payload the
    component is on, e.g. ``SentMessage.message``). ``component_type`` 2 is a button; select menus
    (3, 5, 6, 7, 8) take ``values``."""
    data: Payload = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = list(values)
    return _base_interaction(
        3,
        data=data,
        application_id=application_id,
        guild=guild,
        channel=channel,
        member=member,
        user=user,
        permissions=permissions,
        app_permissions=app_permissions,
        bot_user_id=bot_user_id,
        locale=locale,
        guild_locale=guild_locale,
        message=message,
    )


def modal_submit_interaction(
    custom_id: str,
    fields: Mapping[str, str],
    *,
    guild: Payload | None = None,
    channel: Payload | None = None,
    member: Payload | None = None,
    user: Payload | None = None,
    application_id: Snowflake = DEFAULT_APPLICATION_ID,
    permissions: int | discord.Permissions | None = None,
    app_permissions: int | discord.Permissions | None = None,
    bot_user_id: Snowflake | None = None,
    locale: str = "en-US",
    guild_locale: str | None = None,
) -> Payload:
    """An ``INTERACTION_CREATE`` for a submitted modal: ``fields`` maps text input custom_id to value,
    each in its own action row, as Discord sends them."""
    rows = [
        {"type": 1, "components": [{"type": 4, "custom_id": field_id, "value": value}]}
        for field_id, value in fields.items()
    ]
    return _base_interaction(
        5,
        data={"custom_id": custom_id, "components": rows},
        application_id=application_id,
        guild=guild,
        channel=channel,
        member=member,
        user=user,
        permissions=permissions,
        app_permissions=app_permissions,
        bot_user_id=bot_user_id,
        locale=locale,
        guild_locale=guild_locale,
    )


_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def parse_mentions(content: str) -> tuple[list[str], list[str], bool]:
    """User IDs, role IDs and whether @everyone/@here appear in ``content`` (as Discord parses them)."""
    users = list(dict.fromkeys(_USER_MENTION.findall(content)))
    roles = list(dict.fromkeys(_ROLE_MENTION.findall(content)))
    return users, roles, ("@everyone" in content or "@here" in content)
