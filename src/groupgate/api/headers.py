"""Headers that must come once.

Must-be-single headers decide who asks (`Authorization`, `X-Groupgate-Key`), in which tenant
(`X-Groupgate-Tenant`) or how fresh the answer must be (`X-Groupgate-Min-Revision`). A proxy
that appends its copy instead of replacing the client's would otherwise let the client's
copy win (aiohttp's `headers.get` returns the first): two copies are a 400 `DuplicateHeader`.
`single` costs one dict look-up when the header is absent and one `getall` when present.

The gateway endpoints read their own headers (`api/gateway.py`), and the decision listener
parses HTTP itself (`api/decisions.py`); both must refuse duplicates the same way.
"""

from __future__ import annotations

from typing import Protocol

from groupgate.api.problems import DuplicateHeader

AUTHORIZATION = "Authorization"
KEY_HEADER = "X-Groupgate-Key"
TENANT_HEADER = "X-Groupgate-Tenant"
MIN_REVISION = "X-Groupgate-Min-Revision"


class Headers(Protocol):
    """What `single` needs of aiohttp's `CIMultiDictProxy`."""

    def get(self, key: str, /) -> str | None: ...

    def getall(self, key: str, /) -> list[str]: ...


def single(headers: Headers, name: str) -> str | None:
    """The value of header `name`, None when absent; `DuplicateHeader` when sent twice."""
    value = headers.get(name)
    if value is not None:
        count = len(headers.getall(name))
        if count > 1:
            raise DuplicateHeader(f"{name}: sent {count} times, expected at most once")
    return value


def credentials(headers: Headers) -> tuple[str | None, str | None]:
    """`Authorization` and `X-Groupgate-Key`, each at most once."""
    return single(headers, AUTHORIZATION), single(headers, KEY_HEADER)
