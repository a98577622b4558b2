"""Request bodies: size, JSON safety, and readers that validate fields into model objects.

JSON safety, in one pass after `orjson.loads`:
- size: `Content-Length` is checked before reading and the read itself is bounded (413);
- depth: at most `max_json_depth` nested arrays/objects (orjson alone allows 1024);
- numbers: |n| < 2**63; orjson silently turns a huge integer literal into a float, so the
  check looks at floats too (no field of ours takes larger numbers);
- duplicate keys: orjson keeps the last one silently. The cheap way: count the keys orjson
  returned and the `"` + `:` pairs in the raw bytes (every key ends with one; a string value
  can only add false positives). Equal counts prove there is no duplicate; only when they
  differ is the body re-parsed with `json.loads(object_pairs_hook=...)` to name the duplicate
  precisely (or to clear the false alarm). When every `:` of the body directly follows a `"`
  (compact JSON without colons in values), two `bytes.count` calls suffice; otherwise a
  whitespace-tolerant regex counts `"  :` too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeGuard

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from groupgate.api.problems import (
    InvalidJson,
    TooLarge,
    Unprocessable,
    UnsupportedMedia,
    unreadable,
)
from groupgate.engine.graph import AMOUNT_PATTERN, amount_problem
from groupgate.model import EMPTY, Money, Resource

KEY_END = re.compile(rb'"[ \t\r\n]*:')
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}\Z")
CURRENCY = re.compile(r"^[A-Z]{3}\Z")
NUMBER_LIMIT = 2**63
MAX_TEXT = 1024
MAX_LIST = 256
MAX_REVISION_DIGITS = 18
JSON_TYPES = ("application/json", "application/octet-stream", "")
#: The media type of a request without `Content-Type` (what aiohttp reports).
DEFAULT_MEDIA = "application/octet-stream"


# --------------------------------------------------------------------------- bodies


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read the whole body, refusing anything over `limit` bytes (413)."""
    length = request.content_length
    if length is not None and length > limit:
        raise TooLarge(f"body of {length} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except UNREADABLE as exc:
        raise unreadable(exc) from None
    return b"".join(chunks)


#: What aiohttp raises while reading a body it cannot read (a broken chunk, a request
#: timeout, a half-close): the client's doing, a 4xx (`problems.unreadable`).
UNREADABLE = (HttpProcessingError, web.RequestPayloadError)


def check_json_type(request: web.Request) -> None:
    """Accept JSON (or no content type: curl users); refuse others, e.g. form posts (415)."""
    check_media_type(media_type(request.headers.get("Content-Type")))


def media_type(header: str | None) -> str:
    """The media type of a `Content-Type` value, lower-cased, without parameters (every
    listener reads it so: aiohttp's own parsing differs on malformed values)."""
    if header is None:
        return DEFAULT_MEDIA
    return header.split(";", 1)[0].strip().lower()


def check_media_type(ctype: str) -> None:
    """`check_json_type` for a media type without parameters, lower-cased."""
    if ctype not in JSON_TYPES and not ctype.endswith("+json"):
        raise UnsupportedMedia(f"expected application/json, got {ctype}")


async def read_json(request: web.Request, limit: int, max_depth: int) -> dict[str, Any]:
    """Read a JSON object body under the limits; raise 4xx problems otherwise."""
    body, value = await read_unchecked_json(request, limit)
    check(body, value, max_depth)
    return expect_object(value)


async def read_unchecked_json(request: web.Request, limit: int) -> tuple[bytes, Any]:
    """Read and decode a JSON body under the size limit, *without* the safety pass.

    The caller must pass the result to `check` before using it, or prove it safe itself: the
    AuthZEN batch leaves out the items its fast path has proven safe (`authzen.read_batch`),
    `/v1/check` skips the walk for sealed bodies (`native.read_check`).
    """
    check_json_type(request)
    length = request.content_length
    if length is not None and length > limit:
        raise TooLarge(f"body of {length} bytes exceeds the limit of {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"body exceeds the limit of {limit} bytes") from None
    except UNREADABLE as exc:
        raise unreadable(exc) from None
    return body, decode(body)


def expect_object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise InvalidJson(f"expected a JSON object, got {kind(value)}")
    return value


def loads_object(body: bytes, max_depth: int) -> dict[str, Any]:
    """`loads` of a body that must be a JSON object."""
    return expect_object(loads(body, max_depth))


def loads(body: bytes, max_depth: int) -> Any:
    """Parse one JSON document and enforce depth, number and duplicate-key rules."""
    value = decode(body)
    check(body, value, max_depth)
    return value


def decode(body: bytes) -> Any:
    """Parse one JSON document (no safety rules: see `check`)."""
    if not body:
        raise InvalidJson("empty body: expected a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"invalid JSON: {exc}") from None


def check(body: bytes, value: Any, max_depth: int, known_keys: int = 0) -> None:
    """The safety pass over `value`, decoded from `body`: depth, numbers, duplicate keys.

    `known_keys` counts object keys of `body` left out of `value` by a caller that has
    checked those parts itself (they still count against the raw text's keys).
    """
    keys = inspect(value, max_depth) + known_keys
    if keys and raw_keys(body) != keys:
        find_duplicate(body)


def raw_keys(body: bytes) -> int:
    """Count `"` + `:` pairs: at least one per key in the raw text (see the module docstring).

    When every colon directly follows a quote, no key has whitespace before its colon and
    `bytes.count` sees them all; otherwise a whitespace-tolerant regex counts `"  :` too, so
    the count never misses a key.
    """
    tight = body.count(b'":')
    if tight == body.count(b":"):
        return tight
    return len(KEY_END.findall(body))


def inspect(value: Any, max_depth: int) -> int:
    """Check depth and numbers of a parsed document; return how many object keys it has.

    The walk goes level by level (no recursion, one list per level): the containers of
    level `depth` are checked together, so depth is counted exactly and cheaply.
    """
    keys = 0
    level = [value]
    depth = 0
    while level:
        below: list[Any] = []
        push = below.append
        for node in level:
            cls = type(node)
            if cls is dict:
                keys += len(node)
                children: Any = node.values()
            elif cls is list:
                children = node
            else:
                if (cls is int or cls is float) and not -NUMBER_LIMIT < node < NUMBER_LIMIT:
                    raise InvalidJson("number out of range (|n| must be below 2**63)")
                continue
            if depth == max_depth:
                raise InvalidJson(f"JSON nested deeper than {max_depth} levels")
            for child in children:
                kind_ = type(child)
                if kind_ is str:
                    continue
                if kind_ is dict or kind_ is list:
                    push(child)
                elif (kind_ is int or kind_ is float) and not -NUMBER_LIMIT < child < NUMBER_LIMIT:
                    raise InvalidJson("number out of range (|n| must be below 2**63)")
        level = below
        depth += 1
    return keys


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidJson(f"duplicate key {key!r} in a JSON object")
        seen[key] = value
    return seen


def find_duplicate(body: bytes) -> None:
    """Re-parse with the standard library to name a duplicate key; return if there is none."""
    json.loads(body, object_pairs_hook=_no_duplicates)


def kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


# --------------------------------------------------------------------------- field readers


# The fast paths' type tests (`native.read_check`, `authzen.read_batch`): they accept exactly
# what the readers below accept, and answer instead of raising.


def short(value: Any, limit: int) -> TypeGuard[str]:
    """A non-empty string of at most `limit` characters (what `text` accepts)."""
    return type(value) is str and 0 < len(value) <= limit


def plain_set(value: Any) -> frozenset[str] | None:
    """A list `value` as a set of strings when `text_set` would accept it, else None."""
    if type(value) is not list or len(value) > MAX_LIST:
        return None
    for item in value:
        if type(item) is not str:
            return None
    return frozenset(value) or EMPTY


def only(body: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    """Refuse unknown fields (native API): a typo must not silently change a decision."""
    for key in body:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise Unprocessable(f"{where}: unknown field (allowed: {', '.join(sorted(allowed))})")


def obj(value: Any, path: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise Unprocessable(f"{path}: expected an object, got {kind(value)}")
    return value


def text(value: Any, path: str, limit: int = MAX_TEXT) -> str:
    if type(value) is not str or not value:
        raise Unprocessable(f"{path}: expected a non-empty string, got {kind(value)}")
    if len(value) > limit:
        raise Unprocessable(f"{path}: longer than {limit} characters")
    return value


def opt_text(value: Any, path: str) -> str | None:
    return None if value is None else text(value, path)


def ident(value: Any, path: str) -> str:
    """An id of the graph (tenant, company, ...): letters, digits and `._:@+-`."""
    result = text(value, path, 128)
    if not ID.match(result):
        raise Unprocessable(f"{path}: invalid id {result!r} (letters, digits and ._:@+- only)")
    return result


def text_set(value: Any, path: str) -> frozenset[str]:
    if value is None:
        return EMPTY
    if type(value) is not list:
        raise Unprocessable(f"{path}: expected an array of strings, got {kind(value)}")
    if len(value) > MAX_LIST:
        raise Unprocessable(f"{path}: at most {MAX_LIST} values")
    for i, item in enumerate(value):
        if type(item) is not str:
            raise Unprocessable(f"{path}[{i}]: expected a string, got {kind(item)}")
    return frozenset(value)


def boolean(value: Any, path: str) -> bool:
    if value is None:
        return False
    if type(value) is not bool:
        raise Unprocessable(f"{path}: expected true or false, got {kind(value)}")
    return value


def revision(value: Any, header: str | None, path: str = "min_revision") -> int | None:
    """The consistency token from the body and/or `X-Groupgate-Min-Revision` (the larger).

    The header is ASCII digits only, at most 18 of them: `str.isdigit` alone also accepts
    Unicode digits such as "²", which `int` refuses.
    """
    found: int | None = None
    if value is not None:
        if type(value) is not int or value < 0:
            raise Unprocessable(f"{path}: expected a non-negative integer, got {kind(value)}")
        found = value
    if header is not None:
        if not (header.isascii() and header.isdigit() and len(header) <= MAX_REVISION_DIGITS):
            raise Unprocessable(
                "X-Groupgate-Min-Revision: expected a non-negative integer "
                f"(at most {MAX_REVISION_DIGITS} ASCII digits)"
            )
        found = max(found or 0, int(header))
    return found


def amount(value: Any, currency: Any, path: str = "") -> Money:
    """A purchase amount: a decimal string (never a float, see `AMOUNT_PATTERN`) and an
    ISO 4217 code. The string is checked before `Decimal` sees it, so no amount is ever huge.
    """
    prefix = f"{path}." if path else ""
    if type(value) is not str:
        raise Unprocessable(f'{prefix}amount: expected a decimal string such as "12.50"')
    if not AMOUNT_PATTERN.match(value):
        raise Unprocessable(f"{prefix}amount: {amount_problem(value)}")
    code = text(currency, f"{prefix}currency", 3)
    if not CURRENCY.match(code):
        raise Unprocessable(f"{prefix}currency: expected an ISO 4217 code such as EUR")
    return Money(Decimal(value), code)


RESOURCE_FIELDS = frozenset(
    {"type", "id", "company", "restrictions", "vendor", "owner", "customer", "properties"}
)


def resource(raw: Any, path: str) -> Resource:
    """Validate a native resource object into a `Resource` (type checked by the caller)."""
    if type(raw) is not dict:
        raise Unprocessable(f"{path}: expected an object, got {kind(raw)}")
    for key in raw:
        if key not in RESOURCE_FIELDS:
            raise Unprocessable(f"{path}.{key}: unknown field")
    props = raw.get("properties")
    if props is not None and type(props) is not dict:
        raise Unprocessable(f"{path}.properties: expected an object, got {kind(props)}")
    return Resource(
        text(raw.get("type"), f"{path}.type", 128),
        _scalar(raw.get("id"), f"{path}.id"),
        _scalar(raw.get("company"), f"{path}.company"),
        text_set(raw.get("restrictions"), f"{path}.restrictions"),
        _scalar(raw.get("vendor"), f"{path}.vendor"),
        _scalar(raw.get("owner"), f"{path}.owner"),
        _scalar(raw.get("customer"), f"{path}.customer"),
        props if props is not None else {},
    )


def _scalar(value: Any, path: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise Unprocessable(f"{path}: expected a string or null, got {kind(value)}")
