"""The `Host` header's syntax, checked on every route of the main listener.

A malformed Host (`x:99999`, `x:y:z`, `[`, empty) is a 400 problem before any handler runs
(`problems.guarded` asks `host_problem`); nothing builds a URL from Host anyway (the AuthZEN
metadata document uses the configured public URL or the bind address).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: RFC 3986 `host [":" port]`: an IP literal in brackets or a reg-name (letters, digits,
#: `-._~`, sub-delims and %-escapes, which also covers IPv4 addresses).
HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9\-._~!$&'()*+,;=%]{1,253})(?::([0-9]{1,5}))?\Z"
)
#: Valid Host values seen, so that the common case costs one set look-up (bounded: a client
#: inventing hosts only makes its own requests take the regex).
_GOOD_HOSTS: set[str] = set()
_GOOD_HOSTS_MAX = 256


def host_problem(headers: Mapping[str, str]) -> str | None:
    """Why the request's `Host` header is malformed, or None when it is fine or absent.

    A missing Host is legal (HTTP/1.0); duplicates never get here (aiohttp's parser refuses
    them). An empty Host is refused: nothing this service serves has an authority-less URI.
    """
    host = headers.get("Host")
    if host is None or host in _GOOD_HOSTS:
        return None
    found = HOST.match(host)
    if found is None or (found.group(1) is not None and int(found.group(1)) > 65535):
        shown = host if len(host) <= 64 else host[:64] + "..."
        return f"Host: malformed value {shown!r} (expected host[:port])"
    if len(_GOOD_HOSTS) < _GOOD_HOSTS_MAX:
        _GOOD_HOSTS.add(host)
    return None
