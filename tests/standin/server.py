"""A Discord stand-in on 127.0.0.1: gateway websocket + REST API, for end-to-end tests of a real
discord.py client. Built on aiohttp.web; nothing leaves the loopback interface.

Start and point a bot at it::

    async with DiscordStandin() as standin:      # or use the ``standin`` pytest fixture
        async with running_bot(bot, standin):    # standin.harness: patch discord.py, wait for on_ready
            hello = standin.message_create(f"{payloads.mention(standin.bot_user)} hi")
            await standin.dispatch("MESSAGE_CREATE", hello)
            sent = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)

Constructor: ``DiscordStandin(guilds=None, bot_user=None, application_id=..., token=None,
heartbeat_interval=41250, gateway_compression=False, spec_path=None, seed=0,
interaction_deadline=3.0, application_owner=None, host="127.0.0.1", port=0)``; ``await start()`` /
``await stop()`` or ``async with``. ``token=None`` accepts any ``Bot ...`` token; a string requires
exactly that one.

The world
    Given no ``guilds``, the stand-in serves :func:`payloads.default_guild`: "Stand-in Guild" with
    #general and #bot-log, roles @everyone and Moderator, members owner, alice, mod and the bot.
    ``standin.guild`` / ``standin.channel`` are the first guild and its first text channel;
    ``standin.member`` is the default actor (alice); ``find_member(username)`` and
    ``find_member_by_id(id)`` find others; ``bot_member``. ``bot_user`` / ``application_id``
    identify the bot (same ID, as for Discord apps); ``application`` is its application object, owned
    by ``application_owner`` (default: user "app-owner", in no guild; set ``application["team"]``
    for a team-owned app).
    ``add_guild(payload)`` (before the bot connects), ``add_message(payload)`` (make a message
    known without dispatching it), ``registered_commands(guild_id=None)`` (what the bot synced).
    ``messages`` / ``channels`` / ``users`` hold what the stand-in knows, by ID.

Payloads with defaults (see :mod:`standin.payloads` for the builders themselves)
    ``message_create(content, author=None, channel=None, ...)`` parses mentions from the content,
    as Discord does. ``slash_interaction(name, options, subcommand=..., member=..., in_dm=False)``,
    ``message_context_interaction(name, target)``, ``user_context_interaction(name, target)``,
    ``component_interaction(custom_id, message)``, ``modal_submit_interaction(custom_id, fields)``
    fill in the application, guild, channel, default member, computed permissions and the ID of the
    command the bot registered. Dispatch them with ``dispatch("INTERACTION_CREATE", payload)``.

Gateway (``gateway_url``, and ``resume_gateway_url`` which READY hands out)
    HELLO (``heartbeat_interval``) -> IDENTIFY -> READY + one GUILD_CREATE per guild (with
    ``shard: [id, count]`` in IDENTIFY only that shard's guilds, ``shard_of(guild id, count)``; an
    impossible shard is closed with 4010), and each guild's later events go to its shard's session
    (``shard_connected(id)``); GET /gateway/bot advises ``recommended_shards``; HEARTBEAT ->
    HEARTBEAT_ACK (unless ``ack_heartbeats`` is False); RESUME -> replay of the missed events, then
    RESUMED (op 9 if the session is gone); REQUEST_GUILD_MEMBERS -> one GUILD_MEMBERS_CHUNK. Other
    ops (presence, voice) are only recorded. Every op but heartbeats is kept in
    ``gateway_received``. Sequence numbers increase per session. Text frames, or zlib-stream when
    ``gateway_compression=True`` and the client asks for it. Counters: ``identifies``, ``resumes``,
    ``heartbeats``; ``gateway_connections`` lists each connection (path, query).
    Controls: ``await dispatch(event, data)`` -> seq; ``await force_reconnect()`` (op 7);
    ``await invalidate_session(resumable=False)`` (op 9); ``await drop_connection()`` (abrupt close);
    ``await close_connection(code)``; ``await wait_until_connected()``; ``connected``. The controls
    wait until the client is back (RESUMED or READY sent) unless ``wait=False``. They act on the
    latest session, or with ``shard=N`` on shard N's latest session (each shard is a session of
    its own, perhaps in another process: ``shards`` lists those identified so far).
    Dispatching ``MESSAGE_CREATE``/``MESSAGE_UPDATE`` stores the message; ``INTERACTION_CREATE``
    registers the interaction so callbacks and follow-ups are checked against it. Without the
    MESSAGE_CONTENT intent the bot receives guild messages that do not mention it with content,
    embeds, attachments and components blanked, as Discord does (``enforce_message_content_intent``).

REST (``api_base`` = http://127.0.0.1:PORT/api/v10)
    gateway, users (@me, by id, DM channels), applications (@me, global and guild commands, with
    IDs assigned and kept across syncs), channels (get, messages: list/get/create/edit/delete,
    typing, own reactions), interaction callbacks (types 1, 4-9; ``?with_response=1`` answered with
    the callback response discord.py parses), webhooks (follow-ups; @original and follow-up
    get/edit/delete), guilds (get, channels, member, roles). Anything else is recorded in
    ``unknown_requests`` and answered 404 ``{"message": "404: Not Found", "code": 0}``. Every
    response is ``Content-Type: application/json`` exactly and carries X-RateLimit-* headers.
    Checks that Discord also enforces (each recorded as a :class:`Violation` and answered as Discord
    would): spec + limits (400/50035), empty message (400/50006), callback for an interaction already
    acknowledged (400/40060) or later than ``interaction_deadline`` seconds after dispatch
    (404/10062), follow-up before the initial response (404/10015), missing ``Authorization``.
    The first follow-up after a deferred (type 5) response completes the "thinking" message, as on
    Discord; later ones are new messages. A channel message created with ``enforce_nonce`` and a
    nonce used in the last ``NONCE_WINDOW`` seconds answers with the earlier message and creates
    nothing (its request has ``nonce_replayed`` and is no sent message), as on Discord.

Attachments and CDN
    ``add_attachment(filename, data, content_type)`` (once started) returns an attachment payload
    whose ``url`` is served at http://127.0.0.1:PORT/attachments/...; files the bot uploads are
    served the same way; ``downloads`` lists what was fetched. ``cdn_base`` stands in for the CDN.

Faults
    ``rate_limit_fraction`` (share of REST calls answered 429, drawn from ``random.Random(seed)``),
    ``rate_limit_retry_after``; ``rate_limit_next(count, predicate=None, global_=False)`` forces 429s.

Recording
    ``requests`` (:class:`Request`: method, path, route, params, query, json, files, headers, time,
    status, response, and channel_id/interaction_id/message where they apply), ``mark()`` and
    ``wait_for_request(predicate, timeout=5, since=0)``; ``sent_messages(kind=None, channel_id=None,
    interaction_id=None)`` -> :class:`SentMessage` (one view over channel messages, edits,
    interaction callbacks 4/7, follow-ups and webhook edits) and ``wait_for_sent_message``;
    ``violations``, ``unknown_requests``, ``errors`` (handler crashes); ``assert_clean()`` raises
    AssertionError listing all of them (the fixture calls it at teardown); ``clear_violations()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import random
import socket
import time
import traceback
import uuid
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import BodyPartReader, WSMsgType, web

from . import payloads
from .payloads import Payload
from .records import (
    CHANNEL_MESSAGE,
    CHANNEL_MESSAGE_EDIT,
    EPHEMERAL,
    FOLLOWUP,
    INTERACTION_CALLBACK,
    WEBHOOK_EDIT,
    GatewayConnection,
    Request,
    SentMessage,
    UploadedFile,
    Violation,
)
from .spec import Problem, SpecValidator, invalid_form_body

API_PREFIX = "/api/v10"

_CALLBACK_ROUTE = "/interactions/{interaction_id}/{interaction_token}/callback"
_MESSAGE_ROUTE_KINDS = {
    ("POST", "/channels/{channel_id}/messages"): CHANNEL_MESSAGE,
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"): CHANNEL_MESSAGE_EDIT,
    ("POST", _CALLBACK_ROUTE): INTERACTION_CALLBACK,
    ("POST", "/webhooks/{webhook_id}/{webhook_token}"): FOLLOWUP,
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"): WEBHOOK_EDIT,
}

MESSAGE_CONTENT_INTENT = 1 << 15
# With enforce_nonce, Discord answers a create whose nonce the same author used "in the past few
# minutes" with that earlier message and creates nothing.
NONCE_WINDOW = 300.0
LOADING = 1 << 7
# Flags a bot may set on an interaction message: SUPPRESS_EMBEDS, EPHEMERAL, SUPPRESS_NOTIFICATIONS,
# IS_COMPONENTS_V2.
_SETTABLE_FLAGS = 4 | EPHEMERAL | 4096 | 32768
# Close codes after which discord.py does not reconnect (see DiscordWebSocket._can_handle_close).
_FATAL_CLOSE_CODES = frozenset({4004, 4010, 4011, 4012, 4013, 4014})

T = TypeVar("T")


@dataclass
class _Interaction:
    payload: Payload
    created: float
    response_type: int | None = None
    original_id: str | None = None
    loading: bool = False  # deferred (type 5) and not completed yet
    message_ids: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return str(self.payload["id"])

    @property
    def channel_id(self) -> str | None:
        channel = self.payload.get("channel") or {}
        return channel.get("id") or self.payload.get("channel_id")


class _Connection:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: bool) -> None:
        self.ws = ws
        self.request = request
        self.lock = asyncio.Lock()
        self.compressor = zlib.compressobj() if compress else None
        self.session: _Session | None = None
        self.handshaken = False  # READY or RESUMED sent on this connection

    @property
    def open(self) -> bool:
        return not self.ws.closed

    async def send(self, text: str) -> bool:
        async with self.lock:
            if self.ws.closed:
                return False
            try:
                if self.compressor is not None:
                    data = self.compressor.compress(text.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
            return True

    def abort(self) -> None:
        if self.request.transport is not None:
            self.request.transport.abort()


@dataclass
class _Session:
    id: str
    intents: int
    seq: int = 0
    history: list[tuple[int, str]] = field(default_factory=list)
    conn: _Connection | None = None
    resumable: bool = True
    shard: tuple[int, int] | None = None  # (shard id, shard count) from IDENTIFY, if sharded
    # Held while sending, so a test's dispatch cannot slip between READY and the GUILD_CREATEs or
    # into the middle of a RESUME replay (the client would see sequence numbers out of order).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_RECORD_KEY = web.RequestKey("standin_request", Request)


def shard_of(guild_id: str | int, shard_count: int) -> int:
    """The shard that serves a guild, by Discord's formula."""
    return (int(guild_id) >> 22) % shard_count


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


class DiscordStandin:
    """A Discord server stand-in. See the module docstring for the full API."""

    def __init__(
        self,
        *,
        guilds: Sequence[Payload] | None = None,
        bot_user: Payload | None = None,
        application_id: str = payloads.DEFAULT_APPLICATION_ID,
        token: str | None = None,
        heartbeat_interval: int = 41_250,
        gateway_compression: bool = False,
        spec_path: Path | str | None = None,
        seed: int = 0,
        interaction_deadline: float | None = 3.0,
        application_owner: Payload | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.application_id = str(application_id)
        self.bot_user: Payload = bot_user or payloads.user("standin-bot", id=self.application_id, bot=True)
        self.token = token  # when set, REST and IDENTIFY must present exactly this token
        self.heartbeat_interval = heartbeat_interval
        self.gateway_compression = gateway_compression
        self.interaction_deadline = interaction_deadline
        self.enforce_message_content_intent = True
        self.ack_heartbeats = True
        self.rate_limit_fraction = 0.0
        self.rate_limit_retry_after = 0.05
        self.random = random.Random(seed)
        self.validator = SpecValidator(spec_path)
        self._host = host
        self._port = port

        self.guilds: list[Payload] = []
        self.channels: dict[str, Payload] = {}
        self.users: dict[str, Payload] = {self.bot_user["id"]: self.bot_user}
        self.messages: dict[str, Payload] = {}
        self.commands: dict[str, Payload] = {}
        self.attachments: dict[str, tuple[bytes, str | None]] = {}
        for guild in guilds if guilds is not None else [payloads.default_guild(self.bot_user)]:
            self.add_guild(guild)
        # The bot's developer, not a member of any server: a server's owner is not the bot's owner.
        owner = application_owner or payloads.user("app-owner")
        self.users[owner["id"]] = owner
        self.application: Payload = {
            "id": self.application_id,
            "name": self.bot_user["username"],
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": owner,
            "team": None,
            "bot": self.bot_user,
            "rpc_origins": [],
            "redirect_uris": [],
            "tags": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self.guilds),
        }

        # Recording.
        self.requests: list[Request] = []
        self.violations: list[Violation] = []
        self.unknown_requests: list[Request] = []
        self.errors: list[str] = []
        self.downloads: list[str] = []
        self.gateway_connections: list[GatewayConnection] = []
        self.gateway_received: list[Payload] = []
        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0

        self._nonces: dict[str, tuple[str, float]] = {}  # enforce_nonce: nonce -> (message id, when)
        self._forced_429s: list[tuple[Callable[[Request], bool], float, bool]] = []
        self._interactions: dict[str, _Interaction] = {}
        self._interactions_by_token: dict[str, _Interaction] = {}
        self._sessions: dict[str, _Session] = {}
        self._session: _Session | None = None  # the latest session: the controls act on it
        self._shard_sessions: dict[int, _Session] = {}  # shard id -> its latest session
        self.recommended_shards = 1  # what GET /gateway/bot advises
        self._connections: set[_Connection] = set()
        self._tick = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start serving on ``host:port`` (port 0 picks a free port)."""
        app = web.Application(middlewares=[self._api_middleware], client_max_size=64 * 1024 * 1024)
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        await web.SockSite(self._runner, sock).start()
        port = sock.getsockname()[1]
        self.base_url = f"http://{self._host}:{port}"

    async def stop(self) -> None:
        """Close gateway connections and stop serving."""
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordStandin:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be set to."""
        return self.base_url + API_PREFIX

    @property
    def cdn_base(self) -> str:
        """What ``discord.Asset.BASE`` is set to, so CDN reads stay on 127.0.0.1."""
        return self.base_url + "/cdn"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be set to."""
        return self.base_url.replace("http://", "ws://") + "/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """Sent in READY; the client resumes here."""
        return self.base_url.replace("http://", "ws://") + "/gateway-resume"

    # ------------------------------------------------------------------ world

    def add_guild(self, guild: Payload) -> Payload:
        """Add a full guild payload (:func:`payloads.guild`); the bot's member is added if missing.
        Call before the bot connects, or dispatch ``GUILD_CREATE`` yourself afterwards."""
        guild = copy.deepcopy(guild)
        if not any(m["user"]["id"] == self.bot_user["id"] for m in guild["members"]):
            guild["members"].append(payloads.member(self.bot_user))
            guild["member_count"] = len(guild["members"])
        self.guilds.append(guild)
        for channel in guild["channels"]:
            self.channels[channel["id"]] = channel
        for member in guild["members"]:
            self.users.setdefault(member["user"]["id"], member["user"])
        return guild

    @property
    def guild(self) -> Payload:
        """The first guild."""
        return self.guilds[0]

    @property
    def channel(self) -> Payload:
        """The first text channel of the first guild."""
        return next(c for c in self.guild["channels"] if c["type"] == 0)

    @property
    def bot_member(self) -> Payload:
        return self.find_member(self.bot_user["username"])

    @property
    def member(self) -> Payload:
        """The default actor: the first member of the first guild that is neither bot nor owner."""
        others = [
            m
            for m in self.guild["members"]
            if not m["user"].get("bot") and m["user"]["id"] != self.guild["owner_id"]
        ]
        return others[0] if others else self.find_member_by_id(self.guild["owner_id"])

    def find_member(self, username: str, guild: Payload | None = None) -> Payload:
        """A member payload by username (KeyError if absent)."""
        members: list[Payload] = (guild or self.guild)["members"]
        for member in members:
            if member["user"]["username"] == username:
                return member
        raise KeyError(username)

    def find_member_by_id(self, user_id: str, guild: Payload | None = None) -> Payload:
        members: list[Payload] = (guild or self.guild)["members"]
        for member in members:
            if member["user"]["id"] == str(user_id):
                return member
        raise KeyError(user_id)

    def _guild_by_id(self, guild_id: str | None) -> Payload | None:
        return next((g for g in self.guilds if g["id"] == guild_id), None)

    def add_attachment(self, filename: str, data: bytes, content_type: str | None = None) -> Payload:
        """Store a file and return its attachment payload; its ``url`` is served by the stand-in
        (so call this once the stand-in is started)."""
        if not self.base_url:
            raise RuntimeError("start the stand-in before adding attachments: their URLs need its port")
        attachment_id = payloads.snowflake()
        self.attachments[attachment_id] = (data, content_type)
        url = f"{self.base_url}/attachments/{attachment_id}/{filename}"
        return payloads.attachment(
            filename, url=url, size=len(data), content_type=content_type, id=attachment_id
        )

    def add_message(self, message: Payload) -> Payload:
        """Make a message known (GET, replies, component interactions) without dispatching it."""
        self.messages[message["id"]] = message
        return message

    def registered_commands(self, guild_id: str | None = None) -> list[Payload]:
        """Commands the bot registered, global (``guild_id=None``) or for one guild."""
        return [c for c in self.commands.values() if c.get("guild_id") == guild_id]

    # ------------------------------------------------------------------ payload helpers with defaults

    def message_create(
        self,
        content: str = "",
        *,
        author: Payload | None = None,
        channel: Payload | None = None,
        **fields: Any,
    ) -> Payload:
        """:func:`payloads.message_create` in ``channel`` (default: ``standin.channel``) by ``author``
        (default: ``standin.member``). Unless given, ``mentions``, ``mention_roles`` and
        ``mention_everyone`` are parsed from the content, as Discord does."""
        channel = channel or self.channel
        author = author or self.member
        guild = self._guild_by_id(channel.get("guild_id"))
        user_ids, role_ids, everyone = payloads.parse_mentions(content)
        if "mentions" not in fields:
            mentioned: list[Payload] = []
            for user_id in user_ids:
                if guild is not None and any(m["user"]["id"] == user_id for m in guild["members"]):
                    mentioned.append(self.find_member_by_id(user_id, guild))
                elif user_id in self.users:
                    mentioned.append(self.users[user_id])
            fields["mentions"] = mentioned
        fields.setdefault("mention_roles", role_ids)
        fields.setdefault("mention_everyone", everyone)
        return payloads.message_create(content, author=author, channel=channel, guild=guild, **fields)

    def _interaction_context(self, kwargs: dict[str, Any], *, in_dm: bool) -> dict[str, Any]:
        kwargs.setdefault("application_id", self.application_id)
        kwargs.setdefault("bot_user_id", self.bot_user["id"])
        if in_dm:
            who = kwargs.pop("user", None) or kwargs.pop("member", None) or self.member
            user = who.get("user", who)
            kwargs.update(user=user, guild=None, member=None)
            kwargs.setdefault("channel", self._dm_channel_for(user))
            return kwargs
        kwargs.setdefault("guild", self.guild)
        kwargs.setdefault("channel", self.channel)
        kwargs.setdefault("member", self.member)
        return kwargs

    def _command_ids(self, name: str, type: int, kwargs: dict[str, Any]) -> None:
        guild = kwargs.get("guild")
        for command in self.commands.values():
            if command["name"] != name or command.get("type", 1) != type:
                continue
            if command.get("guild_id") is None or (guild and command["guild_id"] == guild["id"]):
                kwargs.setdefault("command_id", command["id"])
                if command.get("guild_id"):
                    kwargs.setdefault("command_guild_id", command["guild_id"])
                return

    def slash_interaction(
        self, name: str, options: Any = None, *, in_dm: bool = False, **kwargs: Any
    ) -> Payload:
        """:func:`payloads.slash_interaction` with this stand-in's application, guild, channel and
        default member filled in (override any of them), and the registered command's ID.
        ``in_dm=True`` makes it a DM interaction from ``user``/``member`` (default: ``standin.member``)."""
        kwargs = self._interaction_context(kwargs, in_dm=in_dm)
        self._command_ids(name, 1, kwargs)
        return payloads.slash_interaction(name, options, **kwargs)

    def message_context_interaction(
        self, name: str, target: Payload, *, in_dm: bool = False, **kwargs: Any
    ) -> Payload:
        """:func:`payloads.message_context_interaction` with defaults, like :meth:`slash_interaction`."""
        kwargs = self._interaction_context(kwargs, in_dm=in_dm)
        self._command_ids(name, 3, kwargs)
        return payloads.message_context_interaction(name, target, **kwargs)

    def user_context_interaction(
        self, name: str, target: Payload, *, in_dm: bool = False, **kwargs: Any
    ) -> Payload:
        """:func:`payloads.user_context_interaction` with defaults, like :meth:`slash_interaction`."""
        kwargs = self._interaction_context(kwargs, in_dm=in_dm)
        self._command_ids(name, 2, kwargs)
        return payloads.user_context_interaction(name, target, **kwargs)

    def component_interaction(self, custom_id: str, message: Payload, **kwargs: Any) -> Payload:
        """:func:`payloads.component_interaction` on ``message``, in the message's channel."""
        kwargs.setdefault("channel", self.channels.get(message["channel_id"], self.channel))
        kwargs = self._interaction_context(kwargs, in_dm=False)
        return payloads.component_interaction(custom_id, message, **kwargs)

    def modal_submit_interaction(self, custom_id: str, fields: Mapping[str, str], **kwargs: Any) -> Payload:
        """:func:`payloads.modal_submit_interaction` with defaults."""
        kwargs = self._interaction_context(kwargs, in_dm=False)
        return payloads.modal_submit_interaction(custom_id, fields, **kwargs)

    def _dm_channel_for(self, user: Payload) -> Payload:
        for channel in self.channels.values():
            if channel["type"] == 1 and channel["recipients"][0]["id"] == user["id"]:
                return channel
        channel = payloads.dm_channel(user)
        self.channels[channel["id"]] = channel
        return channel

    # ------------------------------------------------------------------ waiting

    def _notify(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    async def _wait_until(self, check: Callable[[], T | None], timeout: float, what: Callable[[], str]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"Discord stand-in: timed out after {timeout}s waiting for {what()}")
            tick = self._tick
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.wait(), remaining)

    def mark(self) -> int:
        """The number of requests so far; pass it as ``since=`` to wait only for later requests."""
        return len(self.requests)

    async def wait_for_request(
        self,
        predicate: Callable[[Request], bool] | None = None,
        *,
        timeout: float = 5.0,
        since: int = 0,
    ) -> Request:
        """The first completed request (from index ``since``) matching ``predicate``; waits for it."""

        def find() -> Request | None:
            return next(
                (r for r in self.requests[since:] if r.done and (predicate is None or predicate(r))), None
            )

        def what() -> str:
            seen = "\n  ".join(str(r) for r in self.requests[since:]) or "(none)"
            return f"a matching request; requests seen:\n  {seen}"

        return await self._wait_until(find, timeout, what)

    async def wait_for_sent_message(
        self,
        predicate: Callable[[SentMessage], bool] | None = None,
        *,
        timeout: float = 5.0,
        since: int = 0,
    ) -> SentMessage:
        """The first :class:`SentMessage` (from request index ``since``) matching ``predicate``."""

        def find() -> SentMessage | None:
            return next(
                (m for m in self._sent_from(self.requests[since:]) if predicate is None or predicate(m)), None
            )

        def what() -> str:
            seen = "\n  ".join(str(r) for r in self.requests[since:]) or "(none)"
            return f"a matching sent message; requests seen:\n  {seen}"

        return await self._wait_until(find, timeout, what)

    # ------------------------------------------------------------------ recording views

    def sent_messages(
        self,
        kind: str | None = None,
        *,
        channel_id: str | None = None,
        interaction_id: str | None = None,
    ) -> list[SentMessage]:
        """Every message the bot successfully sent or edited, in order, optionally filtered."""
        return [
            m
            for m in self._sent_from(self.requests)
            if (kind is None or m.kind == kind)
            and (channel_id is None or m.channel_id == str(channel_id))
            and (interaction_id is None or m.interaction_id == str(interaction_id))
        ]

    def _sent_from(self, requests: Sequence[Request]) -> list[SentMessage]:
        out: list[SentMessage] = []
        for r in requests:
            kind = _MESSAGE_ROUTE_KINDS.get((r.method, r.route or ""))
            if kind is None or r.status is None or not 200 <= r.status < 300 or not isinstance(r.json, dict):
                continue
            if r.nonce_replayed:
                continue
            body: Payload = r.json
            callback_type = None
            if kind == INTERACTION_CALLBACK:
                callback_type = body.get("type")
                if callback_type not in (4, 7):
                    continue
                body = body.get("data") or {}
            out.append(
                SentMessage(
                    kind=kind,
                    request=r,
                    body=body,
                    channel_id=r.channel_id,
                    interaction_id=r.interaction_id,
                    callback_type=callback_type,
                    message=r.message,
                )
            )
        return out

    def assert_clean(self) -> None:
        """Raise AssertionError if any violation, unknown route or handler crash was recorded."""
        problems = [str(v) for v in self.violations]
        problems += [f"route not served by the stand-in: {r.method} {r.path}" for r in self.unknown_requests]
        problems += [f"stand-in handler crashed: {e}" for e in self.errors]
        if problems:
            raise AssertionError("Discord stand-in saw problems:\n- " + "\n- ".join(problems))

    def clear_violations(self) -> None:
        """Forget recorded violations and unknown-route requests (after a test that provoked them on
        purpose). Handler crashes (``errors``) are stand-in bugs and stay."""
        self.violations.clear()
        self.unknown_requests.clear()

    # ------------------------------------------------------------------ fault injection

    def rate_limit_next(
        self,
        count: int = 1,
        *,
        predicate: Callable[[Request], bool] | None = None,
        retry_after: float | None = None,
        global_: bool = False,
    ) -> None:
        """Answer the next ``count`` REST requests matching ``predicate`` with a 429."""
        delay = self.rate_limit_retry_after if retry_after is None else retry_after
        for _ in range(count):
            self._forced_429s.append((predicate or (lambda _r: True), delay, global_))

    def _should_rate_limit(self, rec: Request) -> tuple[float, bool] | None:
        for i, (predicate, delay, global_) in enumerate(self._forced_429s):
            if predicate(rec):
                del self._forced_429s[i]
                return delay, global_
        if self.rate_limit_fraction and self.random.random() < self.rate_limit_fraction:
            return self.rate_limit_retry_after, False
        return None

    # ------------------------------------------------------------------ gateway: controls

    @property
    def connected(self) -> bool:
        """Whether the current session has an open connection that finished its handshake."""
        return self._session_connected(self._session)

    @property
    def shards(self) -> list[int]:
        """The shard ids that have identified so far, in order."""
        return sorted(self._shard_sessions)

    @staticmethod
    def _session_connected(session: _Session | None) -> bool:
        conn = session.conn if session is not None else None
        return conn is not None and conn.open and conn.handshaken

    def _controlled(self, shard: int | None) -> _Session | None:
        """The session a control acts on: shard ``shard``'s latest, or (None) the latest of all."""
        return self._session if shard is None else self._shard_sessions.get(shard)

    async def wait_until_connected(self, timeout: float = 5.0, *, shard: int | None = None) -> None:
        what = "a gateway session" if shard is None else f"shard {shard}'s gateway session"
        await self._wait_until(
            lambda: True if self._session_connected(self._controlled(shard)) else None, timeout, lambda: what
        )

    async def dispatch(self, event: str, data: Payload, *, timeout: float = 5.0) -> int:
        """Send a dispatch (op 0) to the bot; returns its sequence number.

        Waits up to ``timeout`` for a session. If the connection is down the event stays in the
        session's history and is replayed when the client resumes, as Discord does.
        """
        guild_id = data.get("id") if event == "GUILD_CREATE" else data.get("guild_id")
        session = await self._wait_until(
            lambda: self._session_for(guild_id), timeout, lambda: f"a gateway session for guild {guild_id}"
        )
        data = copy.deepcopy(data)
        if event == "INTERACTION_CREATE":
            state = _Interaction(payload=data, created=time.monotonic())
            self._interactions[state.id] = state
            self._interactions_by_token[data["token"]] = state
            if "message" in data:
                self.messages.setdefault(data["message"]["id"], copy.deepcopy(data["message"]))
        elif event in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            self.messages[data["id"]] = copy.deepcopy(data)
            data = self._apply_content_intent(session, data)
        return await self._send_dispatch(session, event, data)

    def _session_for(self, guild_id: str | None) -> _Session | None:
        """The session that receives a guild's events: its shard's (guild id >> 22 % shard count),
        as Discord routes them once the bot identifies with shards; else the latest session."""
        if guild_id is None or not self._shard_sessions:
            return self._session
        count = next(iter(self._shard_sessions.values())).shard
        assert count is not None
        return self._shard_sessions.get(shard_of(guild_id, count[1]))

    def shard_connected(self, shard_id: int) -> bool:
        """Whether shard ``shard_id`` has an open, handshaken connection."""
        return self._session_connected(self._shard_sessions.get(shard_id))

    def _apply_content_intent(self, session: _Session, data: Payload) -> Payload:
        """Blank what the MESSAGE_CONTENT intent guards, as Discord does for bots without it."""
        if not self.enforce_message_content_intent or session.intents & MESSAGE_CONTENT_INTENT:
            return data
        bot_id = self.bot_user["id"]
        mentioned = any(m.get("id") == bot_id for m in data.get("mentions", []))
        if "guild_id" not in data or mentioned or data.get("author", {}).get("id") == bot_id:
            return data
        blanked = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
        blanked.pop("poll", None)
        return blanked

    async def force_reconnect(
        self, *, shard: int | None = None, wait: bool = True, timeout: float = 5.0
    ) -> None:
        """Send op 7 RECONNECT; the client should reconnect and RESUME."""
        await self._control({"op": 7, "d": None}, shard=shard, wait=wait, timeout=timeout)

    async def invalidate_session(
        self, resumable: bool = False, *, shard: int | None = None, wait: bool = True, timeout: float = 5.0
    ) -> None:
        """Send op 9 INVALID_SESSION; with ``resumable=False`` the client must IDENTIFY again."""
        session = self._controlled(shard)
        if not resumable and session is not None:
            session.resumable = False
        await self._control({"op": 9, "d": resumable}, shard=shard, wait=wait, timeout=timeout)

    async def drop_connection(
        self, *, shard: int | None = None, wait: bool = True, timeout: float = 5.0
    ) -> None:
        """Abort the TCP connection without a close frame; the client should RESUME."""
        await self._control(None, shard=shard, wait=wait, timeout=timeout)

    async def close_connection(
        self, code: int = 4000, *, shard: int | None = None, wait: bool | None = None, timeout: float = 5.0
    ) -> None:
        """Close the websocket with ``code``. discord.py resumes after most codes but gives up after
        4004 and 4010-4014; by default this waits for the client to come back only when it will."""
        if wait is None:
            wait = code not in _FATAL_CLOSE_CODES
        await self._control(code, shard=shard, wait=wait, timeout=timeout)

    async def _control(
        self, action: Payload | int | None, *, shard: int | None, wait: bool, timeout: float
    ) -> None:
        session = self._controlled(shard)
        conn = session.conn if session is not None else None
        if conn is None or not conn.open:
            whose = "the bot is" if shard is None else f"shard {shard} is"
            raise RuntimeError(f"Discord stand-in: {whose} not connected to the gateway")
        conn.handshaken = False  # going away: not "connected" until the client is back

        def back() -> bool | None:
            # The session's new connection (RESUME), or a new session for the same shard (IDENTIFY
            # after op 9); never another shard's handshake, which may be another process's.
            now = self._controlled(shard)
            return True if now is not None and now.conn is not conn and self._session_connected(now) else None

        if isinstance(action, dict):
            await conn.send(_dumps(action))
        elif isinstance(action, int):
            await conn.ws.close(code=action)
        else:
            conn.abort()
        if wait:
            await self._wait_until(back, timeout, lambda: "the client to reconnect")

    # ------------------------------------------------------------------ gateway: protocol

    async def _send_dispatch(self, session: _Session, event: str, data: Payload) -> int:
        async with session.lock:
            return await self._send_dispatch_locked(session, event, data)

    async def _send_dispatch_locked(self, session: _Session, event: str, data: Payload) -> int:
        session.seq += 1
        text = _dumps({"op": 0, "t": event, "s": session.seq, "d": data})
        session.history.append((session.seq, text))
        if session.conn is not None:
            await session.conn.send(text)
        return session.seq

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        compress = self.gateway_compression and query.get("compress") == "zlib-stream"
        conn = _Connection(ws, request, compress)
        self._connections.add(conn)
        self.gateway_connections.append(GatewayConnection(request.path, query, time.monotonic()))
        try:
            hello = {"op": 10, "s": None, "t": None, "d": {"heartbeat_interval": self.heartbeat_interval}}
            await conn.send(_dumps(hello))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_gateway_message(conn, json.loads(msg.data))
        except Exception:
            self.errors.append(traceback.format_exc())
        finally:
            self._connections.discard(conn)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            self._notify()
        return ws

    async def _on_gateway_message(self, conn: _Connection, msg: Payload) -> None:
        op, data = msg.get("op"), msg.get("d") or {}
        if op == 1:
            self.heartbeats += 1
            if self.ack_heartbeats:
                await conn.send(_dumps({"op": 11, "s": None, "t": None, "d": None}))
            return
        self.gateway_received.append(msg)
        if op == 2:
            await self._identify(conn, data)
        elif op == 6:
            await self._resume(conn, data)
        elif op == 8 and conn.session is not None:
            await self._send_member_chunk(conn.session, data)

    async def _send_member_chunk(self, session: _Session, request: Payload) -> None:
        """Answer REQUEST_GUILD_MEMBERS (sent by bots with the members intent, which chunk guilds at
        startup and wait for the answer before on_ready) with one GUILD_MEMBERS_CHUNK."""
        guild = self._guild_by_id(str(request.get("guild_id")))
        members = guild["members"] if guild else []
        if user_ids := request.get("user_ids"):
            wanted = {str(u) for u in user_ids}
            members = [m for m in members if m["user"]["id"] in wanted]
        elif query := request.get("query"):
            members = [m for m in members if m["user"]["username"].startswith(query)]
        if limit := request.get("limit"):
            members = members[:limit]
        chunk: Payload = {
            "guild_id": str(request.get("guild_id")),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if request.get("nonce"):
            chunk["nonce"] = request["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _identify(self, conn: _Connection, data: Payload) -> None:
        self.identifies += 1
        if self.token is not None and data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = data.get("shard")
        if shard is not None and not (
            isinstance(shard, list)
            and len(shard) == 2
            and all(isinstance(n, int) for n in shard)
            and 0 <= shard[0] < shard[1]
        ):
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        session = _Session(id=uuid.uuid4().hex, intents=int(data.get("intents") or 0), conn=conn)
        guilds = self.guilds
        if shard is not None:
            session.shard = (shard[0], shard[1])
            guilds = [g for g in self.guilds if shard_of(g["id"], shard[1]) == shard[0]]
            self._shard_sessions[shard[0]] = session
        self._sessions[session.id] = session
        self._session = session
        conn.session = session
        ready = {
            "v": 10,
            "user": self._me(),
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "guilds": [{"id": g["id"], "unavailable": True} for g in guilds],
            "application": {"id": self.application_id, "flags": self.application["flags"]},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "shard": shard or [0, 1],
        }
        async with session.lock:
            await self._send_dispatch_locked(session, "READY", ready)
            for guild in guilds:
                await self._send_dispatch_locked(session, "GUILD_CREATE", guild)
        conn.handshaken = True
        self._notify()

    async def _resume(self, conn: _Connection, data: Payload) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        token_ok = self.token is None or data.get("token") == self.token
        if session is None or not session.resumable or not token_ok:
            # Discord waits 1-5 s before this; the client re-IDENTIFIES either way.
            await conn.send(_dumps({"op": 9, "s": None, "t": None, "d": False}))
            return
        self.resumes += 1
        async with session.lock:
            session.conn = conn
            conn.session = session
            self._session = session
            last_seen = data.get("seq") or 0
            for seq, text in list(session.history):
                if seq > last_seen:
                    await conn.send(text)
            await self._send_dispatch_locked(session, "RESUMED", {})
        conn.handshaken = True
        self._notify()

    def _me(self) -> Payload:
        return {
            **self.bot_user,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "locale": "en-US",
            "email": None,
        }

    # ------------------------------------------------------------------ REST plumbing

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        routes: list[tuple[str, str, Callable[[web.Request, Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/users/@me", self._get_me),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/applications/{application_id}/commands", self._list_commands),
            ("PUT", "/applications/{application_id}/commands", self._put_commands),
            ("POST", "/applications/{application_id}/commands", self._post_command),
            ("GET", "/applications/{application_id}/commands/{command_id}", self._get_command),
            ("PATCH", "/applications/{application_id}/commands/{command_id}", self._patch_command),
            ("DELETE", "/applications/{application_id}/commands/{command_id}", self._delete_command),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self._list_commands),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self._put_commands),
            ("POST", "/applications/{application_id}/guilds/{guild_id}/commands", self._post_command),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                self._get_command,
            ),
            (
                "PATCH",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                self._patch_command,
            ),
            (
                "DELETE",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                self._delete_command,
            ),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("GET", "/channels/{channel_id}/messages", self._list_messages),
            ("POST", "/channels/{channel_id}/messages", self._post_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._patch_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            ("POST", "/channels/{channel_id}/typing", self._no_content),
            ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self._no_content),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self._no_content,
            ),
            ("POST", _CALLBACK_ROUTE, self._interaction_callback),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self._execute_webhook),
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._get_webhook_message,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._patch_webhook_message,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self._delete_webhook_message,
            ),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("GET", "/guilds/{guild_id}/roles", self._get_roles),
        ]
        for method, template, handler in routes:
            router.add_route(method, API_PREFIX + template, self._adapt(handler))
        router.add_get("/gateway", self._gateway)
        router.add_get("/gateway-resume", self._gateway)
        router.add_get("/attachments/{attachment_id}/{filename}", self._download)
        router.add_route("*", "/{tail:.*}", self._adapt(self._unknown))

    @staticmethod
    def _adapt(
        handler: Callable[[web.Request, Request], Awaitable[web.StreamResponse]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            return await handler(request, request[_RECORD_KEY])

        return wrapped

    @web.middleware
    async def _api_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in ("/gateway", "/gateway-resume") or request.path.startswith("/attachments/"):
            return await handler(request)
        rec, bad_json = await self._record(request)
        request[_RECORD_KEY] = rec
        response: web.StreamResponse
        try:
            guarded = await self._guard(rec, bad_json)
            response = guarded if guarded is not None else await handler(request)
        except Exception:
            self.errors.append(f"{rec.method} {rec.path}\n{traceback.format_exc()}")
            response = self._json({"message": "500: Internal Server Error", "code": 0}, status=500)
        rec.status = response.status
        if (
            isinstance(response, web.Response)
            and response.body
            and response.content_type == "application/json"
        ):
            assert isinstance(response.body, bytes)
            rec.response = json.loads(response.body)
        if rec.status != 429:
            response.headers.update(self._rate_limit_headers(rec, remaining=4))
        self._notify()
        return response

    async def _record(self, request: web.Request) -> tuple[Request, bool]:
        """Record a request (parsing JSON or multipart); also says whether its JSON was invalid."""
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else None
        route = canonical[len(API_PREFIX) :] if canonical and canonical.startswith(API_PREFIX) else None
        body: Any = None
        files: list[UploadedFile] = []
        bad_json = False
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue  # nested multipart: Discord does not use it
                data = bytes(await part.read())
                if part.name == "payload_json":
                    body, bad_json = _parse_json(data)
                else:
                    content_type = part.headers.get("Content-Type")
                    files.append(UploadedFile(part.name or "", part.filename, data, content_type))
        elif request.can_read_body:
            raw = await request.read()
            if raw and request.content_type == "application/json":
                body, bad_json = _parse_json(raw)
        rec = Request(
            method=request.method,
            path=request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else request.path,
            route=route,
            params=dict(request.match_info),
            query=dict(request.query),
            json=body,
            files=files,
            headers=dict(request.headers),
            time=time.monotonic(),
        )
        self.requests.append(rec)
        self._notify()
        return rec, bad_json

    async def _guard(self, rec: Request, bad_json: bool) -> web.Response | None:
        """Checks that run before the handler: injected 429s, auth, JSON and spec validation."""
        if rec.route is None:
            return None  # unknown route: recorded by the catch-all handler
        limited = self._should_rate_limit(rec)
        if limited is not None:
            return self._rate_limited(rec, *limited)
        if not self._authorized(rec):
            self.violations.append(Violation(rec, "auth", ["missing or wrong Authorization header"]))
            return self._json({"message": "401: Unauthorized", "code": 0}, status=401)
        if bad_json:
            self.violations.append(Violation(rec, "json", ["body is not valid JSON"]))
            return self._error(400, 50109, "The request body contains invalid JSON.")
        problems = self.validator.validate(rec.method, rec.path, rec.json, route=rec.route)
        if problems:
            return self._reject(rec, "schema", problems)
        return None

    def _authorized(self, rec: Request) -> bool:
        # Interaction callbacks and webhook-token routes are authenticated by their token alone.
        if rec.route is None or rec.route.startswith(("/interactions/", "/webhooks/", "/gateway")):
            return True
        header = rec.headers.get("Authorization", "")
        if self.token is not None:
            return header == f"Bot {self.token}"
        return header.startswith("Bot ") and len(header) > 4

    def _reject(self, rec: Request, kind: str, problems: list[Problem]) -> web.Response:
        self.violations.append(Violation(rec, kind, [str(p) for p in problems]))
        return self._json(invalid_form_body(problems), status=400)

    def _rate_limit_headers(
        self, rec: Request, *, remaining: int, reset_after: float = 1.0
    ) -> dict[str, str]:
        bucket = hashlib.sha1(f"{rec.method} {rec.route}".encode()).hexdigest()[:16]
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }

    def _rate_limited(self, rec: Request, retry_after: float, global_: bool) -> web.Response:
        # discord.py treats a 429 as a rate limit only with a Via header and a JSON body.
        headers = self._rate_limit_headers(rec, remaining=0, reset_after=retry_after)
        headers.update({"Via": "1.1 google", "Retry-After": str(max(1, round(retry_after)))})
        headers["X-RateLimit-Scope"] = "global" if global_ else "user"
        if global_:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
        return self._json(body, status=429, headers=headers)

    @staticmethod
    def _json(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
        # Exactly "application/json": discord.py compares the header verbatim, so aiohttp's
        # json_response (which appends "; charset=utf-8") would make it read bodies as text.
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return web.Response(status=status, body=_dumps(data).encode(), headers=all_headers)

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return self._json({"message": message, "code": code}, status=status)

    @staticmethod
    def _no_body() -> web.Response:
        return web.Response(status=204)

    async def _unknown(self, request: web.Request, rec: Request) -> web.StreamResponse:
        self.unknown_requests.append(rec)
        return self._json({"message": "404: Not Found", "code": 0}, status=404)

    async def _no_content(self, request: web.Request, rec: Request) -> web.StreamResponse:
        return self._no_body()

    async def _download(self, request: web.Request) -> web.StreamResponse:
        stored = self.attachments.get(request.match_info["attachment_id"])
        self.downloads.append(request.path)
        if stored is None:
            return self._error(404, 0, "404: Not Found")
        data, content_type = stored
        return web.Response(body=data, headers={"Content-Type": content_type or "application/octet-stream"})

    # ------------------------------------------------------------------ REST: identity

    async def _get_gateway(self, request: web.Request, rec: Request) -> web.StreamResponse:
        return self._json({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request, rec: Request) -> web.StreamResponse:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return self._json(
            {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": limit}
        )

    async def _get_me(self, request: web.Request, rec: Request) -> web.StreamResponse:
        return self._json(self._me())

    async def _get_user(self, request: web.Request, rec: Request) -> web.StreamResponse:
        user = self.users.get(rec.params["user_id"])
        return self._json(user) if user else self._error(404, 10013, "Unknown User")

    async def _create_dm(self, request: web.Request, rec: Request) -> web.StreamResponse:
        user = self.users.get(str((rec.json or {}).get("recipient_id")))
        if user is None:
            return self._error(404, 10013, "Unknown User")
        return self._json(self._dm_channel_for(user))

    async def _get_application(self, request: web.Request, rec: Request) -> web.StreamResponse:
        return self._json(self.application)

    # ------------------------------------------------------------------ REST: application commands

    def _command_scope(self, rec: Request) -> tuple[str | None, web.Response | None]:
        if rec.params["application_id"] != self.application_id:
            return None, self._error(403, 50001, "Missing Access")
        guild_id = rec.params.get("guild_id")
        if guild_id is not None and self._guild_by_id(guild_id) is None:
            return None, self._error(403, 50001, "Missing Access")
        return guild_id, None

    def _store_command(self, body: Payload, guild_id: str | None, existing: Payload | None = None) -> Payload:
        previous = existing or next(
            (
                c
                for c in self.registered_commands(guild_id)
                if c["name"] == body["name"] and c.get("type", 1) == body.get("type", 1)
            ),
            None,
        )
        command: Payload = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            **{k: v for k, v in body.items() if v is not None},
            "id": previous["id"] if previous else payloads.snowflake(),
            "application_id": self.application_id,
            "version": payloads.snowflake(),
        }
        if command["default_member_permissions"] is not None:
            command["default_member_permissions"] = str(command["default_member_permissions"])
        if guild_id is not None:
            command["guild_id"] = guild_id
        self.commands[command["id"]] = command
        return command

    async def _list_commands(self, request: web.Request, rec: Request) -> web.StreamResponse:
        guild_id, error = self._command_scope(rec)
        return error or self._json(self.registered_commands(guild_id))

    async def _put_commands(self, request: web.Request, rec: Request) -> web.StreamResponse:
        guild_id, error = self._command_scope(rec)
        if error:
            return error
        kept = [self._store_command(body, guild_id) for body in rec.json or []]
        kept_ids = {c["id"] for c in kept}
        for command in self.registered_commands(guild_id):
            if command["id"] not in kept_ids:
                del self.commands[command["id"]]
        return self._json(kept)

    async def _post_command(self, request: web.Request, rec: Request) -> web.StreamResponse:
        guild_id, error = self._command_scope(rec)
        return error or self._json(self._store_command(rec.json, guild_id), status=201)

    def _find_command(self, rec: Request) -> Payload | None:
        command = self.commands.get(rec.params["command_id"])
        if command is None or command.get("guild_id") != rec.params.get("guild_id"):
            return None
        return command

    async def _get_command(self, request: web.Request, rec: Request) -> web.StreamResponse:
        command = self._find_command(rec)
        return self._json(command) if command else self._error(404, 10063, "Unknown application command")

    async def _patch_command(self, request: web.Request, rec: Request) -> web.StreamResponse:
        command = self._find_command(rec)
        if command is None:
            return self._error(404, 10063, "Unknown application command")
        return self._json(self._store_command({**command, **rec.json}, command.get("guild_id"), command))

    async def _delete_command(self, request: web.Request, rec: Request) -> web.StreamResponse:
        command = self._find_command(rec)
        if command is None:
            return self._error(404, 10063, "Unknown application command")
        del self.commands[command["id"]]
        return self._no_body()

    # ------------------------------------------------------------------ REST: guilds and channels

    async def _get_guild(self, request: web.Request, rec: Request) -> web.StreamResponse:
        guild = self._guild_by_id(rec.params["guild_id"])
        if guild is None:
            return self._error(404, 10004, "Unknown Guild")
        gateway_only = ("channels", "members", "threads", "presences", "voice_states", "joined_at", "large")
        return self._json({k: v for k, v in guild.items() if k not in gateway_only})

    async def _get_guild_channels(self, request: web.Request, rec: Request) -> web.StreamResponse:
        guild = self._guild_by_id(rec.params["guild_id"])
        return self._json(guild["channels"]) if guild else self._error(404, 10004, "Unknown Guild")

    async def _get_member(self, request: web.Request, rec: Request) -> web.StreamResponse:
        guild = self._guild_by_id(rec.params["guild_id"])
        if guild is None:
            return self._error(404, 10004, "Unknown Guild")
        try:
            return self._json(self.find_member_by_id(rec.params["user_id"], guild))
        except KeyError:
            return self._error(404, 10007, "Unknown Member")

    async def _get_roles(self, request: web.Request, rec: Request) -> web.StreamResponse:
        guild = self._guild_by_id(rec.params["guild_id"])
        return self._json(guild["roles"]) if guild else self._error(404, 10004, "Unknown Guild")

    async def _get_channel(self, request: web.Request, rec: Request) -> web.StreamResponse:
        channel = self.channels.get(rec.params["channel_id"])
        return self._json(channel) if channel else self._error(404, 10003, "Unknown Channel")

    # ------------------------------------------------------------------ REST: messages

    def _build_message(
        self,
        channel_id: str,
        body: Payload,
        files: list[UploadedFile],
        **extra: Any,
    ) -> Payload:
        channel = self.channels.get(channel_id, {})
        content = body.get("content") or ""
        user_ids, role_ids, everyone = payloads.parse_mentions(content)
        allowed = body.get("allowed_mentions")
        if allowed is not None:  # the mentions that allowed_mentions suppresses do not ping
            parse = allowed.get("parse") or []
            user_ids = [u for u in user_ids if "users" in parse or u in map(str, allowed.get("users") or [])]
            role_ids = [r for r in role_ids if "roles" in parse or r in map(str, allowed.get("roles") or [])]
            everyone = everyone and "everyone" in parse
        message = payloads.message(
            content,
            author=self.bot_user,
            channel_id=channel_id,
            guild_id=channel.get("guild_id"),
            mentions=[self.users[u] for u in user_ids if u in self.users],
            mention_roles=role_ids,
            mention_everyone=everyone,
            embeds=[{"type": "rich", **e} for e in body.get("embeds") or []],
            components=body.get("components") or [],
            attachments=self._attachments_from(body, files, []),
            flags=int(body.get("flags") or 0),
            **extra,
        )
        message["tts"] = bool(body.get("tts"))
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if body.get("poll") is not None:
            message["poll"] = body["poll"]
        return message

    def _attachments_from(
        self, body: Payload, files: list[UploadedFile], existing: list[Payload]
    ) -> list[Payload]:
        """Attachments for a created/edited message: kept existing ones plus uploaded files."""
        by_id = {str(a["id"]): a for a in existing}
        uploads = {f.field: f for f in files}
        result: list[Payload] = []
        listed = body.get("attachments")
        if listed is None:
            listed = [{"id": i, "filename": f.filename} for i, f in enumerate(files)]
            result.extend(existing)
        for entry in listed:
            key = str(entry.get("id"))
            if key in by_id:
                result.append(by_id[key])
            elif (upload := uploads.get(f"files[{key}]")) is not None:
                filename = entry.get("filename") or upload.filename or f"file{key}"
                stored = self.add_attachment(filename, upload.data, upload.content_type)
                if entry.get("description"):
                    stored["description"] = entry["description"]
                result.append(stored)
        return result

    @staticmethod
    def _is_empty(body: Payload, files: list[UploadedFile]) -> bool:
        keys = ("content", "embeds", "components", "sticker_ids", "poll")
        return not files and not any(body.get(k) for k in keys)

    def _reject_empty(self, rec: Request) -> web.Response:
        self.violations.append(Violation(rec, "empty_message", ["Cannot send an empty message"]))
        return self._error(400, 50006, "Cannot send an empty message")

    def _edit_message(self, message: Payload, body: Payload, files: list[UploadedFile]) -> Payload:
        if "content" in body:
            message["content"] = body["content"] or ""
        if "embeds" in body:
            message["embeds"] = [{"type": "rich", **e} for e in body["embeds"] or []]
        if "components" in body:
            message["components"] = body["components"] or []
        if "flags" in body and body["flags"] is not None:
            # Only SUPPRESS_EMBEDS can change on edit; ephemeral/loading state is the server's.
            message["flags"] = (message.get("flags", 0) & ~4) | (int(body["flags"]) & 4)
        if "attachments" in body or files:
            message["attachments"] = self._attachments_from(body, files, message.get("attachments", []))
        message["edited_timestamp"] = payloads.now_iso()
        return message

    async def _list_messages(self, request: web.Request, rec: Request) -> web.StreamResponse:
        channel_id = rec.params["channel_id"]
        if channel_id not in self.channels:
            return self._error(404, 10003, "Unknown Channel")
        limit = int(rec.query.get("limit", 50))
        found = [m for m in self.messages.values() if m["channel_id"] == channel_id]
        found.sort(key=lambda m: int(m["id"]), reverse=True)
        return self._json(found[:limit])

    async def _post_message(self, request: web.Request, rec: Request) -> web.StreamResponse:
        channel_id = rec.channel_id = rec.params["channel_id"]
        if channel_id not in self.channels:
            return self._error(404, 10003, "Unknown Channel")
        body: Payload = rec.json or {}
        if self._is_empty(body, rec.files):
            return self._reject_empty(rec)
        extra: dict[str, Any] = {}
        if (reference := body.get("message_reference")) is not None:
            target = self.messages.get(str(reference.get("message_id")))
            if target is None and reference.get("fail_if_not_exists", True):
                problem = Problem(
                    ("message_reference",), "Unknown message", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE"
                )
                return self._reject(rec, "schema", [problem])
            ref = {"type": 0, "message_id": str(reference["message_id"]), "channel_id": channel_id}
            if guild_id := self.channels[channel_id].get("guild_id"):
                ref["guild_id"] = guild_id
            extra.update(type=19, message_reference=ref, referenced_message=target)
        if body.get("enforce_nonce") and (earlier := self._nonce_seen(body.get("nonce"))) is not None:
            rec.message, rec.nonce_replayed = earlier, True
            return self._json(earlier)
        message = self._build_message(channel_id, body, rec.files, **extra)
        rec.message = self.add_message(message)
        if body.get("enforce_nonce") and body.get("nonce") is not None:
            self._nonces[str(body["nonce"])] = (message["id"], time.monotonic())
        return self._json(message)

    def _nonce_seen(self, nonce: Any) -> Payload | None:
        """The message this author (always the bot here) created lately with ``nonce``, if any."""
        if nonce is None:
            return None
        seen = self._nonces.get(str(nonce))
        if seen is None or time.monotonic() - seen[1] > NONCE_WINDOW:
            return None
        return self.messages.get(seen[0])

    def _channel_message(self, rec: Request) -> Payload | None:
        rec.channel_id = rec.params["channel_id"]
        message = self.messages.get(rec.params["message_id"])
        return message if message is not None and message["channel_id"] == rec.channel_id else None

    async def _get_message(self, request: web.Request, rec: Request) -> web.StreamResponse:
        message = rec.message = self._channel_message(rec)
        return self._json(message) if message else self._error(404, 10008, "Unknown Message")

    async def _patch_message(self, request: web.Request, rec: Request) -> web.StreamResponse:
        message = self._channel_message(rec)
        if message is None:
            return self._error(404, 10008, "Unknown Message")
        if message["author"]["id"] != self.bot_user["id"] and set(rec.json or {}) - {"flags"}:
            return self._error(403, 50005, "Cannot edit a message authored by another user")
        rec.message = self._edit_message(message, rec.json or {}, rec.files)
        return self._json(message)

    async def _delete_message(self, request: web.Request, rec: Request) -> web.StreamResponse:
        message = self._channel_message(rec)
        if message is None:
            return self._error(404, 10008, "Unknown Message")
        del self.messages[message["id"]]
        return self._no_body()

    # ------------------------------------------------------------------ REST: interactions and webhooks

    def _interaction_message_extra(self, state: _Interaction) -> dict[str, Any]:
        payload = state.payload
        data = payload.get("data") or {}
        who = payload.get("member", {}).get("user") or payload.get("user")
        message_type = 0
        if payload["type"] == 2:
            message_type = 20 if data.get("type", 1) == 1 else 23
        metadata = {
            "id": state.id,
            "type": payload["type"],
            "user": who,
            "authorizing_integration_owners": payload.get("authorizing_integration_owners", {}),
        }
        return {
            "type": message_type,
            "webhook_id": self.application_id,
            "application_id": self.application_id,
            "interaction_metadata": metadata,
        }

    async def _interaction_callback(self, request: web.Request, rec: Request) -> web.StreamResponse:
        state = self._interactions.get(rec.params["interaction_id"])
        if state is None or state.payload["token"] != rec.params["interaction_token"]:
            return self._error(404, 10062, "Unknown interaction")
        rec.interaction_id = state.id
        rec.channel_id = state.channel_id
        if state.response_type is not None:
            self.violations.append(Violation(rec, "protocol", ["interaction already acknowledged"]))
            return self._error(400, 40060, "Interaction has already been acknowledged.")
        if self.interaction_deadline is not None:
            age = rec.time - state.created
            if age > self.interaction_deadline:
                problem = f"initial response after {age:.2f}s (Discord allows {self.interaction_deadline}s)"
                self.violations.append(Violation(rec, "late_response", [problem]))
                return self._error(404, 10062, "Unknown interaction")
        body: Payload = rec.json or {}
        callback_type = int(body.get("type", 0))
        data: Payload = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        info: Payload = {"id": state.id, "type": state.payload["type"]}
        response: Payload = {"interaction": info}
        channel_id = state.channel_id or ""
        if callback_type == 4:
            if self._is_empty(data, rec.files):
                return self._reject_empty(rec)
            message = self._build_message(
                channel_id, data, rec.files, **self._interaction_message_extra(state)
            )
            message["flags"] = flags & _SETTABLE_FLAGS
            rec.message = self._adopt(state, message, original=True)
            info.update(
                response_message_id=message["id"],
                response_message_loading=False,
                response_message_ephemeral=bool(flags & EPHEMERAL),
            )
            response["resource"] = {"type": 4, "message": message}
        elif callback_type == 5:
            loading = self._build_message(
                channel_id, {"content": ""}, [], **self._interaction_message_extra(state)
            )
            loading["flags"] = LOADING | (flags & EPHEMERAL)
            self._adopt(state, loading, original=True)
            state.loading = True
            info.update(
                response_message_id=loading["id"],
                response_message_loading=True,
                response_message_ephemeral=bool(flags & EPHEMERAL),
            )
        elif callback_type in (6, 7):
            if state.payload["type"] not in (3, 5) or "message" not in state.payload:
                problem = f"callback type {callback_type} needs a component or modal interaction"
                self.violations.append(Violation(rec, "protocol", [problem]))
                return self._error(400, 50035, "Invalid Form Body")
            target_id = state.payload["message"]["id"]
            target = self.messages.setdefault(target_id, copy.deepcopy(state.payload["message"]))
            state.original_id = target_id
            state.message_ids.add(target_id)
            if callback_type == 7:
                rec.message = self._edit_message(target, data, rec.files)
                response["resource"] = {"type": 7, "message": target}
        state.response_type = callback_type
        if rec.query.get("with_response") in ("1", "true", "True"):
            return self._json(response)
        return self._no_body()

    def _adopt(self, state: _Interaction, message: Payload, *, original: bool) -> Payload:
        self.add_message(message)
        state.message_ids.add(message["id"])
        if original:
            state.original_id = message["id"]
        return message

    def _webhook_interaction(self, rec: Request) -> _Interaction | None:
        state = self._interactions_by_token.get(rec.params["webhook_token"])
        if state is None or rec.params["webhook_id"] != self.application_id:
            return None
        rec.interaction_id = state.id
        rec.channel_id = state.channel_id
        return state

    async def _execute_webhook(self, request: web.Request, rec: Request) -> web.StreamResponse:
        state = self._webhook_interaction(rec)
        if state is None:
            return self._error(404, 10015, "Unknown Webhook")
        if state.response_type is None:
            self.violations.append(Violation(rec, "protocol", ["follow-up sent before the initial response"]))
            return self._error(404, 10015, "Unknown Webhook")
        body: Payload = rec.json or {}
        if self._is_empty(body, rec.files):
            return self._reject_empty(rec)
        if state.loading and state.original_id in self.messages:
            # The first follow-up after a deferred response completes the "thinking" message.
            message = self._edit_message(self.messages[state.original_id], body, rec.files)
            message["flags"] &= ~LOADING
            state.loading = False
        else:
            extra = self._interaction_message_extra(state)
            message = self._build_message(state.channel_id or "", body, rec.files, **extra)
            message["flags"] = int(body.get("flags") or 0) & _SETTABLE_FLAGS
            self._adopt(state, message, original=False)
        rec.message = message
        if rec.query.get("wait") in ("1", "true", "True"):
            return self._json(message)
        return self._no_body()

    def _webhook_message(self, rec: Request) -> tuple[_Interaction | None, Payload | None]:
        state = self._webhook_interaction(rec)
        if state is None:
            return None, None
        message_id = rec.params["message_id"]
        if message_id == "@original":
            message_id = state.original_id or ""
        if message_id not in state.message_ids:
            return state, None
        return state, self.messages.get(message_id)

    async def _get_webhook_message(self, request: web.Request, rec: Request) -> web.StreamResponse:
        state, message = self._webhook_message(rec)
        if state is None:
            return self._error(404, 10015, "Unknown Webhook")
        rec.message = message
        return self._json(message) if message else self._error(404, 10008, "Unknown Message")

    async def _patch_webhook_message(self, request: web.Request, rec: Request) -> web.StreamResponse:
        state, message = self._webhook_message(rec)
        if state is None:
            return self._error(404, 10015, "Unknown Webhook")
        if message is None:
            return self._error(404, 10008, "Unknown Message")
        rec.message = self._edit_message(message, rec.json or {}, rec.files)
        if message["id"] == state.original_id and state.loading:
            message["flags"] &= ~LOADING
            state.loading = False
        return self._json(message)

    async def _delete_webhook_message(self, request: web.Request, rec: Request) -> web.StreamResponse:
        state, message = self._webhook_message(rec)
        if state is None:
            return self._error(404, 10015, "Unknown Webhook")
        if message is None:
            return self._error(404, 10008, "Unknown Message")
        del self.messages[message["id"]]
        state.message_ids.discard(message["id"])
        return self._no_body()


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    try:
        return json.loads(raw), False
    except ValueError:
        return None, True
