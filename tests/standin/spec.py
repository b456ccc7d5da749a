"""Check request bodies against Discord's OpenAPI spec and the documented limits it leaves out.

The spec is read from ``$DISCORD_OPENAPI_SPEC`` when set, else from ``shared/discord-api-spec/
openapi.json`` beside the repository root (``/work/shared`` here; CI lays ``../shared`` beside its
clone). It is never copied into the repository. When the file is missing, schema checks step aside
with one warning and only the limit checks run.

API
    :class:`SpecValidator` -- ``validate(method, path, body)`` returns a list of :class:`Problem`
    (empty when the body is fine). ``path`` is below ``/api/v10``, e.g. ``/channels/1/messages``;
    for multipart requests pass the parsed ``payload_json``.
    :func:`message_limit_problems` -- Discord's message/embed limits on one message body.
    :func:`message_part` -- where the message body sits in a request (``data`` for callbacks).
    :func:`invalid_form_body` -- the 400 body Discord answers (code 50035) for a list of problems.

Tolerances (where the API accepts more than the spec says; see the spec README):
    * ``SnowflakeType`` also accepts non-negative integers: libraries, discord.py included, send IDs
      as JSON numbers (``allowed_mentions.users``, ``message_reference.message_id``, and
      ``attachments[].id``, which is a per-request file index 0..9), and Discord accepts them.
    * Integer fields (other than enums, consts and union branches) also accept int-parsable strings:
      the README notes that some fields documented as strings are typed as int in the spec and that
      the API accepts int-parsable strings there (``default_member_permissions``, permission bit sets).
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_log = logging.getLogger(__name__)

SPEC_ENV_VAR = "DISCORD_OPENAPI_SPEC"
_BASE_URI = "urn:discord-openapi"

# Documented limits the spec leaves out or states more loosely (the spec allows 4000 characters of
# content on channel messages, which only Nitro users get; bots get 2000).
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TITLE = 256
MAX_EMBED_DESCRIPTION = 4096
MAX_EMBED_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER_TEXT = 2048
MAX_AUTHOR_NAME = 256
MAX_EMBEDS_TOTAL = 6000

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request body, at ``location`` (a JSON path into the body)."""

    location: Location
    message: str
    code: str = "BASE_TYPE_INVALID"

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.location) or "<body>"
        return f"{where}: {self.message} [{self.code}]"


def default_spec_path() -> Path:
    """``$DISCORD_OPENAPI_SPEC``, else ``<repo root>/../shared/discord-api-spec/openapi.json``."""
    if env := os.environ.get(SPEC_ENV_VAR):
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]  # tests/standin/spec.py -> repository root
    return (repo_root / "../shared/discord-api-spec/openapi.json").resolve()


# --------------------------------------------------------------------------- spec loading


def _is_integer_node(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    return "integer" in kinds and not any(k in node for k in ("enum", "const", "oneOf", "anyOf"))


def _tolerate_int_strings(node: Any, *, in_union: bool = False) -> Any:
    """Walk a schema; let integer fields also take int-parsable strings (see module docstring).

    Direct branches of ``oneOf`` stay strict: a string branch next to an integer branch (``nonce``)
    would otherwise match twice and fail the ``oneOf``.
    """
    if isinstance(node, list):
        return [_tolerate_int_strings(item, in_union=in_union) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "$defs"):
            out[key] = {name: _tolerate_int_strings(sub) for name, sub in value.items()}
        elif key in ("oneOf", "anyOf"):
            out[key] = [_tolerate_int_strings(sub, in_union=True) for sub in value]
        elif key in ("items", "additionalProperties", "not", "if", "then", "else", "allOf", "prefixItems"):
            out[key] = _tolerate_int_strings(value)
        else:
            out[key] = value
    if not in_union and _is_integer_node(out):
        return {"anyOf": [out, {"type": "string", "pattern": r"^-?[0-9]+$"}]}
    return out


def _apply_tolerances(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec, loosened where the API is known to accept more (modifies ``spec`` in place)."""
    schemas = spec["components"]["schemas"]
    # Tolerance 1 (README: fields the docs type as strings appear as int in the spec, and the API
    # accepts int-parsable strings): integer fields also take strings like "8".
    for name, schema in list(schemas.items()):
        schemas[name] = _tolerate_int_strings(schema)
    for item in spec["paths"].values():
        for operation in item.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            for media in (body or {}).get("content", {}).values():
                if "schema" in media:
                    media["schema"] = _tolerate_int_strings(media["schema"])
    # Tolerance 2: snowflakes are strings in the spec, but Discord accepts JSON integers, which
    # discord.py sends (allowed_mentions.users/roles, message_reference.message_id, attachment ids).
    schemas["SnowflakeType"] = {"anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}]}
    return spec


@dataclass(frozen=True)
class _Operation:
    template: str
    method: str
    pointer: str  # JSON pointer to the application/json request body schema


def _escape_pointer(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


class _LoadedSpec:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.spec = _apply_tolerances(raw)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
        self.routes: list[tuple[re.Pattern[str], str]] = []
        for template in self.spec["paths"]:
            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            self.routes.append((re.compile(regex), template))
        # Literal segments beat parameters (/users/@me before /users/{user_id}).
        self.routes.sort(key=lambda route: route[1].count("{"))
        self._validators: dict[tuple[str, str], Draft202012Validator | None] = {}

    def operation(self, method: str, path: str) -> _Operation | None:
        method = method.lower()
        for regex, template in self.routes:
            if regex.fullmatch(path) and method in self.spec["paths"][template]:
                parts = ["paths", template, method, "requestBody", "content", "application/json", "schema"]
                pointer = "".join("/" + _escape_pointer(part) for part in parts)
                return _Operation(template, method, pointer)
        return None

    def validator(self, op: _Operation) -> Draft202012Validator | None:
        key = (op.template, op.method)
        if key not in self._validators:
            body = self.spec["paths"][op.template][op.method].get("requestBody", {})
            if "application/json" in body.get("content", {}):
                schema = {"$ref": f"{_BASE_URI}#{op.pointer}"}
                self._validators[key] = Draft202012Validator(schema, registry=self.registry)
            else:
                self._validators[key] = None
        return self._validators[key]


@cache
def _load(path: str) -> _LoadedSpec | None:
    spec_file = Path(path)
    if not spec_file.is_file():
        message = f"Discord OpenAPI spec not found at {spec_file}: only message limits will be checked"
        warnings.warn(message, stacklevel=3)
        _log.warning(message)
        return None
    return _LoadedSpec(json.loads(spec_file.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- problems


def _failed_discriminator(errors: list[ValidationError]) -> bool:
    """Whether a union branch failed on what tells branches apart: its ``type`` field or its JSON type."""
    for error in errors:
        path = list(error.relative_path)
        if path == ["type"] and error.validator in ("enum", "const"):
            return True
        if not path and error.validator == "type":
            return True
    return False


def _leaf_errors(error: ValidationError) -> Iterator[ValidationError]:
    """The errors worth reporting: for a failed anyOf/oneOf, those of the branch the body meant."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        yield error
        return
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    candidates = [errs for errs in branches.values() if not _failed_discriminator(errs)]
    if not candidates:
        yield error
        return
    best = min(candidates, key=len)
    for sub in best:
        yield from _leaf_errors(sub)


_CODES = {
    "maxLength": "BASE_TYPE_MAX_LENGTH",
    "minLength": "BASE_TYPE_MIN_LENGTH",
    "maxItems": "BASE_TYPE_MAX_LENGTH",
    "minItems": "BASE_TYPE_MIN_LENGTH",
    "required": "BASE_TYPE_REQUIRED",
    "enum": "BASE_TYPE_CHOICES",
    "const": "BASE_TYPE_CHOICES",
    "maximum": "NUMBER_TYPE_MAX",
    "minimum": "NUMBER_TYPE_MIN",
}


def _message_for(error: ValidationError) -> str:
    # Discord-like wording; jsonschema's own messages embed the whole (possibly huge) instance.
    limit = error.validator_value
    match error.validator:
        case "maxLength" | "maxItems":
            return f"Must be {limit} or fewer in length."
        case "minLength" | "minItems":
            return f"Must be {limit} or more in length."
        case "maximum":
            return f"int value should be less than or equal to {limit}."
        case "minimum":
            return f"int value should be greater than or equal to {limit}."
        case "required":
            return str(error.message).replace("is a required property", "is required")
        case "type":
            return f"Value must be of type {limit} (got {type(error.instance).__name__})."
        case "enum" | "const":
            return f"Value must be one of {limit!r}."
    text = str(error.message)
    return text if len(text) <= 200 else text[:197] + "..."


def _problem_from(error: ValidationError, prefix: Location = ()) -> Problem:
    code = _CODES.get(str(error.validator), "BASE_TYPE_INVALID")
    return Problem(prefix + tuple(error.absolute_path), _message_for(error), code)


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def message_limit_problems(message: Mapping[str, Any], prefix: Location = ()) -> list[Problem]:
    """Discord's documented content and embed limits, checked on one message body."""
    problems: list[Problem] = []

    def over(location: Location, value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            problems.append(
                Problem(prefix + location, f"Must be {limit} or fewer in length.", "BASE_TYPE_MAX_LENGTH")
            )

    over(("content",), message.get("content"), MAX_CONTENT)
    embeds = message.get("embeds") or []
    if not isinstance(embeds, list):
        return problems
    if len(embeds) > MAX_EMBEDS:
        problems.append(
            Problem((*prefix, "embeds"), f"Must be {MAX_EMBEDS} or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        )
    total = 0
    for i, embed in enumerate(embeds):
        if not isinstance(embed, Mapping):
            continue
        here: Location = ("embeds", i)
        over((*here, "title"), embed.get("title"), MAX_EMBED_TITLE)
        over((*here, "description"), embed.get("description"), MAX_EMBED_DESCRIPTION)
        footer = embed.get("footer") or {}
        author = embed.get("author") or {}
        over((*here, "footer", "text"), footer.get("text"), MAX_FOOTER_TEXT)
        over((*here, "author", "name"), author.get("name"), MAX_AUTHOR_NAME)
        fields = embed.get("fields") or []
        if len(fields) > MAX_EMBED_FIELDS:
            problems.append(
                Problem(
                    (*prefix, *here, "fields"),
                    f"Must be {MAX_EMBED_FIELDS} or fewer in length.",
                    "BASE_TYPE_MAX_LENGTH",
                )
            )
        for j, field in enumerate(fields):
            over((*here, "fields", j, "name"), field.get("name"), MAX_FIELD_NAME)
            over((*here, "fields", j, "value"), field.get("value"), MAX_FIELD_VALUE)
            total += _text_len(field.get("name")) + _text_len(field.get("value"))
        total += _text_len(embed.get("title")) + _text_len(embed.get("description"))
        total += _text_len(footer.get("text")) + _text_len(author.get("name"))
    if total > MAX_EMBEDS_TOTAL:
        problems.append(
            Problem(
                (*prefix, "embeds"),
                f"Embed size exceeds maximum size of {MAX_EMBEDS_TOTAL}",
                "MAX_EMBED_SIZE_EXCEEDED",
            )
        )
    return problems


def message_part(method: str, route: str | None, body: Any) -> tuple[Location, Mapping[str, Any]] | None:
    """Where the message sits in a request body, or None if the request carries no message.

    ``route`` is the template below /api/v10 (``/channels/{channel_id}/messages``, ...).
    """
    if not isinstance(body, Mapping) or route is None:
        return None
    method = method.upper()
    if route == "/interactions/{interaction_id}/{interaction_token}/callback":
        data = body.get("data")
        if body.get("type") in (4, 7) and isinstance(data, Mapping):
            return ("data",), data
        return None
    if (method, route) in {
        ("POST", "/channels/{channel_id}/messages"),
        ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
        ("POST", "/webhooks/{webhook_id}/{webhook_token}"),
        ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"),
    }:
        return (), body
    return None


def invalid_form_body(problems: list[Problem]) -> dict[str, Any]:
    """The JSON body Discord answers a 400 with: code 50035 and errors nested by location."""
    errors: dict[str, Any] = {}
    for problem in problems:
        node = errors
        for part in problem.location:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": problem.code, "message": problem.message})
    return {"code": 50035, "message": "Invalid Form Body", "errors": errors}


class SpecValidator:
    """Validates request bodies against the spec (when present) and Discord's message limits."""

    def __init__(self, spec_path: Path | str | None = None) -> None:
        self.spec_path = Path(spec_path) if spec_path is not None else default_spec_path()
        self._spec = _load(str(self.spec_path))

    @property
    def available(self) -> bool:
        """Whether the spec file was found (if not, only limit checks run)."""
        return self._spec is not None

    def operation_template(self, method: str, path: str) -> str | None:
        """The spec's path template for a request, or None when the spec does not list it."""
        if self._spec is None:
            return None
        op = self._spec.operation(method, path)
        return op.template if op else None

    def validate(self, method: str, path: str, body: Any, *, route: str | None = None) -> list[Problem]:
        """Problems with ``body`` for ``method path`` (path below /api/v10). ``route`` is the
        stand-in's route template, used to find the message part for limit checks."""
        problems: list[Problem] = []
        part = message_part(method, route, body)
        if part is not None:
            problems.extend(message_limit_problems(part[1], part[0]))
        if self._spec is None or body is None:
            return problems
        op = self._spec.operation(method, path)
        validator = self._spec.validator(op) if op else None
        if validator is None:
            return problems
        seen = {p.location for p in problems}
        for error in validator.iter_errors(body):
            for leaf in _leaf_errors(error):
                problem = _problem_from(leaf)
                if problem.location not in seen:  # a limit check already reported this field
                    seen.add(problem.location)
                    problems.append(problem)
        return problems
