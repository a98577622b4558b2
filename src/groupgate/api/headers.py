"""Headers that must come once.

Must-be-single headers decide who asks (`Authorization`, `X-Groupgate-Key`), in which tenant
(`X-Groupgate-Tenant`) or how fresh the answer must be (`X-Groupgate-Min-Revision`). A proxy
that appends its copy instead of replacing the client's would otherwise let the client's
copy win (aiohttp's `headers.get` returns the first): two copies are a 400 `DuplicateHeader`.
`single` costs one `getall`, as cheap as the `get` it replaces.

The gateway endpoints refuse duplicates with a 403 of their own (`api/forward_auth.py`); the
decision listener reads its raw headers once (`api/decisions.py`) and raises `duplicate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from groupgate.api.problems import DuplicateHeader

AUTHORIZATION = "Authorization"
KEY_HEADER = "X-Groupgate-Key"
TENANT_HEADER = "X-Groupgate-Tenant"
MIN_REVISION = "X-Groupgate-Min-Revision"
#: The revision a graph export was read at (`GET /v1/admin/tenants/{t}/export`).
REVISION = "X-Groupgate-Revision"
#: Response header of admin writes: how many replicas acknowledged the write.
REPLICAS_HEADER = "X-Groupgate-Replicas"
REQUEST_ID = "X-Request-ID"
#: The longest `X-Request-ID` echoed or recorded (a longer one is not: headers are not a data
#: channel).
MAX_REQUEST_ID = 256


class Headers(Protocol):
    """What `single` needs of aiohttp's `CIMultiDictProxy`."""

    def getall(self, key: str, default: None, /) -> list[str] | None: ...


def single(headers: Headers, name: str) -> str | None:
    """The value of header `name`, None when absent; `DuplicateHeader` when sent twice.

    One `getall` (a look-up as cheap as `get`, which would return the first copy silently).
    """
    values = headers.getall(name, None)
    if values is None:
        return None
    if len(values) > 1:
        raise duplicate(name)
    return values[0]


def first_values(headers: Headers, names: Sequence[str]) -> tuple[list[str | None], dict[str, int]]:
    """The first value of each of `names` (None when absent), and those sent more than once
    with their counts, in the order of `names`: one `getall` each, for a use case that reads
    its headers at once and refuses a repeat where it uses the header (`forward_auth.read`,
    `authzen.asked`)."""
    values: list[str | None] = []
    repeated: dict[str, int] = {}
    for name in names:
        found = headers.getall(name, None)
        if found:
            values.append(found[0])
            if len(found) > 1:
                repeated[name] = len(found)
        else:
            values.append(None)
    return values, repeated


def duplicate(name: str) -> DuplicateHeader:
    """The 400 for header `name` sent more than once (every listener words it so)."""
    return DuplicateHeader(f"{name}: sent more than once, expected at most once")


def credentials(headers: Headers) -> tuple[str | None, str | None]:
    """`Authorization` and `X-Groupgate-Key`, each at most once."""
    return single(headers, AUTHORIZATION), single(headers, KEY_HEADER)


def request_id_of(headers: Headers) -> str | None:
    """The PEP's `X-Request-ID`, to be returned as it came (§10.1.3 "Request
    Identification": the PDP MUST include the same identifier in the response).

    None: none sent, or one this sidecar does not repeat: over `MAX_REQUEST_ID` characters,
    or not printable ASCII (a header value must not carry what could split a response). Of
    two copies, the first is the one echoed.
    """
    values = headers.getall(REQUEST_ID, None)
    return valid_request_id(values[0]) if values else None


def valid_request_id(found: str | None) -> str | None:
    """`found` (the first `X-Request-ID` sent) when it may be repeated (`request_id_of`)."""
    if found is None or len(found) > MAX_REQUEST_ID:
        return None
    return found if found.isascii() and found.isprintable() else None
