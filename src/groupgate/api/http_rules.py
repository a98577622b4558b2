"""The rules of HTTP that every listener applies alike, after its parser (llhttp in both).

The main listener (aiohttp, `groupgate.api.front`) and the decision listener
(`groupgate.api.http11`) parse requests with llhttp, but each leaves different things to the
server; these functions decide those things once for both, so that one request gets one
answer on every port (`tests/http` holds them to it): `head_problem` (a parsed head's
refusal, if any) and `route_path` / `origin_form` (where a target routes). No groupgate
imports: the refusals are `(status, detail, problem slug)` tuples each listener renders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import httptools
from httptools.parser.url_parser import URL

UPGRADE = "protocol upgrades (and CONNECT) are not supported"

#: Fields a request may carry once (aiohttp's parser refuses a second copy of each).
SINGLETONS = frozenset(
    {
        b"content-length",
        b"content-location",
        b"content-range",
        b"content-type",
        b"etag",
        b"host",
        b"max-forwards",
        b"server",
        b"transfer-encoding",
        b"user-agent",
    }
)
#: A Host value, RFC 3986 `host [":" port]`: an IP literal in brackets or a reg-name
#: (letters, digits, `-._~`, sub-delims and %-escapes, which also covers IPv4 addresses).
#: The grammar lets both be empty (`reg-name = *(...)`, `port = *DIGIT`), and RFC 9112
#: section 3.2 refuses only an invalid value, so an empty Host or port is accepted.
HOST = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9\-._~!$&'()*+,;=%]{0,253})(?::([0-9]{0,5}))?\Z"
)
#: Host values seen valid, so that the common case costs one set look-up (bounded: a client
#: inventing hosts only makes its own requests take the regex).
_GOOD_HOSTS: set[bytes] = set()
_GOOD_HOSTS_MAX = 256
#: The fields `head_problem` looks at, each with a bit; the singletons' bits form
#: `SINGLE_BITS` (a second copy is refused).
RULED = {name: 1 << i for i, name in enumerate(sorted(SINGLETONS))}
SINGLE_BITS = sum(RULED.values())
RULED[b"content-encoding"] = CONTENT_ENCODING_BIT = 1 << len(RULED)
RULED[b"expect"] = EXPECT_BIT = 1 << len(RULED)
HOST_BIT = RULED[b"host"]
TRANSFER_ENCODING_BIT = RULED[b"transfer-encoding"]
INVALID = "invalid-http"


def head_problem(
    method: bytes,
    target: bytes,
    version: tuple[int, int],
    headers: Sequence[tuple[bytes, bytes]],
    max_url_bytes: int,
    max_header_bytes: int,
) -> tuple[int, str, str] | None:
    """The refusal (status, detail, slug) a parsed request head earns, or None.

    Both listeners ask it after their parser (llhttp in both) accepted the head, so that the
    rules llhttp leaves to the server are the same on every port: the header section's total
    size (431), the target's (414), the version (505 for any but HTTP/1.x), Host (one, and
    well-formed, in HTTP/1.1: RFC 9112 section 3.2), singleton
    fields sent twice, Transfer-Encoding in HTTP/1.0, the target's form (no fragment, no
    userinfo, `*` only for OPTIONS, no CONNECT), a content coding (415: bodies are never
    decompressed) and an `Expect` other than 100-continue (417). `headers` have lower-case
    names.
    """
    if version[0] != 1:
        return 505, "only HTTP/1.0 and HTTP/1.1 are served", "http-version"
    if len(target) > max_url_bytes:
        return 414, "request target too long", "uri-too-long"
    http10 = version[1] == 0
    size = 0
    seen = 0  # the bits (`RULED`) of the ruled fields met so far
    for name, value in headers:
        size += len(name) + len(value)
        bit = RULED.get(name)
        if bit is None:
            continue
        if bit & seen and bit & SINGLE_BITS:
            return 400, f"{name.decode()}: sent more than once", INVALID
        seen |= bit
        if bit == HOST_BIT:
            if value not in _GOOD_HOSTS and not _valid_host(value):
                shown = value[:64].decode("latin-1")
                return 400, f"Host: malformed value {shown!r} (expected host[:port])", INVALID
        elif bit == TRANSFER_ENCODING_BIT and http10:
            return 400, "Transfer-Encoding is not allowed in HTTP/1.0", INVALID
        elif bit == CONTENT_ENCODING_BIT and value.strip().lower() not in (b"", b"identity"):
            return (
                415,
                "request bodies with a content coding are not accepted",
                "unsupported-media-type",
            )
        elif bit == EXPECT_BIT and value.strip() and value.strip().lower() != b"100-continue":
            return 417, "only Expect: 100-continue is supported", "expectation-failed"
    if size > max_header_bytes:
        return 431, f"header section over {max_header_bytes} bytes", "headers-too-large"
    if not seen & HOST_BIT and not http10:
        return 400, "Host: required in HTTP/1.1", INVALID
    return target_problem(method, target)


def _valid_host(value: bytes) -> bool:
    found = HOST.match(value)
    port = found.group(1) if found is not None else None
    if found is None or (port and int(port) > 65535):
        return False
    if len(_GOOD_HOSTS) < _GOOD_HOSTS_MAX:
        _GOOD_HOSTS.add(value)
    return True


def target_problem(method: bytes, target: bytes) -> tuple[int, str, str] | None:
    """The refusal a request target earns (see `head_problem`), or None."""
    if method == b"CONNECT":
        return 400, UPGRADE, INVALID
    if target == b"*":
        if method == b"OPTIONS":
            return None
        return 400, "the asterisk-form target is only for OPTIONS", INVALID
    if target.startswith(b"/"):
        # `find`, not `in`, on the hot path: `bytes in bytes` first tries the needle as an
        # integer and builds (then drops) a TypeError.
        if target.find(b"#") >= 0:
            return 400, "a request target has no fragment", INVALID
        return None
    url = absolute(target)
    if url is None or url.schema.lower() not in (b"http", b"https"):
        return 400, "the request target is neither a path nor an absolute http URL", INVALID
    if url.fragment or b"#" in target:  # the stubs type absent parts as bytes: test truth
        return 400, "a request target has no fragment", INVALID
    if url.userinfo:
        return 400, "a request target has no userinfo", INVALID
    return None


def absolute(target: bytes) -> URL | None:
    """`target` parsed as an absolute URL (llhttp's URL parser), or None."""
    try:
        return httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return None


_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def origin_form(target: bytes) -> bytes:
    """The path and query of a target in origin-form or absolute-form (`*` stays `*`; an
    absolute URL without a path is `/`)."""
    if target.startswith(b"/") or target == b"*":
        return target
    url = absolute(target)
    if url is None:
        return b"/"
    path = url.path or b"/"
    return path + b"?" + url.query if url.query else path


def route_path(target: bytes) -> bytes:
    """The path a target routes to (`origin_form` without the query), with percent-escapes
    decoded except `%2F` and `%25` (so `/v1/%63heck` is `/v1/check`, as aiohttp's router
    sees it, but `/v1%2Fcheck` is no path of ours)."""
    if target[:1] == b"/" and target.find(b"%") < 0:  # a plain path (`find`: see above)
        query = target.find(b"?")
        return target if query < 0 else target[:query]
    path = origin_form(target).split(b"?", 1)[0]
    if path.find(b"%") < 0:
        return path
    return _ESCAPE.sub(_unescape, path)


def _unescape(found: re.Match[bytes]) -> bytes:
    code = int(found.group(1), 16)
    return found.group(0) if code in (0x2F, 0x25) else bytes((code,))
