"""What the stand-in records: requests, violations, sent messages and gateway connections.

:class:`Request` -- one REST request and the stand-in's answer.
:class:`UploadedFile` -- a file part of a multipart request.
:class:`Violation` -- something the bot sent that Discord would reject.
:class:`SentMessage` -- a uniform view of a message the bot sent or edited, whatever the route;
``kind`` is one of :data:`CHANNEL_MESSAGE`, :data:`CHANNEL_MESSAGE_EDIT`,
:data:`INTERACTION_CALLBACK` (callback types 4 and 7), :data:`FOLLOWUP`, :data:`WEBHOOK_EDIT`.
:class:`GatewayConnection` -- one websocket connection the client made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .payloads import Payload

EPHEMERAL = 1 << 6

# SentMessage kinds.
CHANNEL_MESSAGE = "channel_message"
CHANNEL_MESSAGE_EDIT = "channel_message_edit"
INTERACTION_CALLBACK = "interaction_callback"
FOLLOWUP = "followup"
WEBHOOK_EDIT = "webhook_edit"


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (``field`` is e.g. ``files[0]``)."""

    field: str
    filename: str | None
    data: bytes
    content_type: str | None


@dataclass
class Request:
    """One REST request as the stand-in received it, and what it answered."""

    method: str
    path: str  # below /api/v10, e.g. "/channels/1/messages"
    route: str | None  # the route template, e.g. "/channels/{channel_id}/messages"; None if unknown
    params: dict[str, str]  # path parameters by name
    query: dict[str, str]
    json: Any  # the JSON body, or payload_json of a multipart body; None without one
    files: list[UploadedFile]
    headers: dict[str, str]
    time: float  # time.monotonic() on arrival
    status: int | None = None  # None while being handled
    response: Any = None  # the JSON answered, if any
    channel_id: str | None = None  # the channel a message request concerned
    interaction_id: str | None = None  # the interaction a callback/webhook request concerned
    message: Payload | None = None  # the message the request created, edited or fetched
    # A create with enforce_nonce whose nonce this author used lately: Discord answered with that
    # earlier message and created nothing, so it is no sent message of its own.
    nonce_replayed: bool = False

    @property
    def done(self) -> bool:
        return self.status is not None

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


@dataclass(frozen=True)
class Violation:
    """A request Discord would reject (or a protocol rule it enforces) that the bot broke."""

    request: Request
    kind: str  # "schema" (spec or limits), "empty_message", "protocol", "late_response", "auth", "json"
    problems: list[str]

    def __str__(self) -> str:
        return f"{self.kind}: {self.request.method} {self.request.path}: " + "; ".join(self.problems)


@dataclass(frozen=True)
class SentMessage:
    """A message the bot sent or edited, whatever the route (see the module docstring)."""

    kind: str  # CHANNEL_MESSAGE, CHANNEL_MESSAGE_EDIT, INTERACTION_CALLBACK, FOLLOWUP or WEBHOOK_EDIT
    request: Request
    body: Payload  # the message part of the request (``data`` of an interaction callback)
    channel_id: str | None
    interaction_id: str | None
    callback_type: int | None  # interaction callback type (4 or 7) for INTERACTION_CALLBACK
    message: Payload | None  # the resulting message object as the stand-in stored it

    @property
    def content(self) -> str | None:
        return self.body.get("content")

    @property
    def embeds(self) -> list[Payload]:
        return self.body.get("embeds") or []

    @property
    def components(self) -> list[Payload]:
        return self.body.get("components") or []

    @property
    def allowed_mentions(self) -> Payload | None:
        return self.body.get("allowed_mentions")

    @property
    def flags(self) -> int:
        return int(self.body.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        """Whether the message is ephemeral (its own flags or, for edits, the stored message's)."""
        flags = self.flags | int((self.message or {}).get("flags") or 0)
        return bool(flags & EPHEMERAL)

    @property
    def attachments(self) -> list[Payload]:
        return self.body.get("attachments") or []

    @property
    def message_reference(self) -> Payload | None:
        return self.body.get("message_reference")

    @property
    def files(self) -> list[UploadedFile]:
        return self.request.files


@dataclass(frozen=True)
class GatewayConnection:
    """One websocket connection made by the client."""

    path: str
    query: dict[str, str]
    opened_at: float
