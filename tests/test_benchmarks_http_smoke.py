"""Smoke test of the HTTP benchmark harness: nothing is timed, no Cerbos, no npm, no wrk.

The wrk request lists for a tiny tenant are read back with a small parser of the Lua subset
they use (tables, strings with escapes, `nil`), which checks their syntax and that every
body round-trips byte for byte; the bare aiohttp app answers one request.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.http import bare, cerbos, workload, wrkrun

TOKEN = re.compile(
    r"""\s+|--[^\n]*|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[{}\[\]=,])"""
)


def _unescape(literal: str) -> bytes:
    out = bytearray()
    body = literal[1:-1]
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode()
            i += 1
        elif body[i + 1].isdigit():
            digits = re.match(r"\d{1,3}", body[i + 1 :])
            assert digits is not None
            out.append(int(digits.group()))
            i += 1 + len(digits.group())
        else:
            out += {"n": b"\n", "t": b"\t", '"': b'"', "\\": b"\\"}[body[i + 1]]
            i += 2
    return bytes(out)


def _tokens(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(source):
        match = TOKEN.match(source, position)
        assert match is not None, f"not Lua at {source[position : position + 40]!r}"
        position = match.end()
        kind = match.lastgroup
        if kind is not None:
            tokens.append((kind, match.group(kind)))
    return tokens


def parse_lua_return(source: str) -> Any:
    """Parse `return <table>` (tables, strings, nil) into Python lists/dicts/bytes/None."""
    tokens = _tokens(source)
    assert tokens[0] == ("name", "return")
    position = 1

    def value() -> Any:
        nonlocal position
        kind, text = tokens[position]
        position += 1
        if kind == "string":
            return _unescape(text)
        if (kind, text) == ("name", "nil"):
            return None
        assert (kind, text) == ("punct", "{"), f"unexpected {text!r}"
        items: list[Any] = []
        fields: dict[Any, Any] = {}
        while tokens[position] != ("punct", "}"):
            kind, text = tokens[position]
            if kind == "name" and tokens[position + 1] == ("punct", "="):
                position += 2
                fields[text] = value()
            elif (kind, text) == ("punct", "["):
                position += 1
                key = value()
                assert tokens[position : position + 2] == [("punct", "]"), ("punct", "=")]
                position += 2
                fields[key] = value()
            else:
                items.append(value())
            if tokens[position] == ("punct", ","):
                position += 1
        position += 1
        assert not (items and fields), "mixed table"
        return fields if fields else items

    result = value()
    assert position == len(tokens), "trailing tokens"
    return result


@pytest.fixture(scope="module")
def work() -> workload.Workload:
    return workload.prepare(subjects=60, questions=80, seed=5)


def test_check_list_is_lua_and_round_trips(work: workload.Workload, tmp_path: Path) -> None:
    requests = workload.check_requests(work)
    path = workload.write_lua(tmp_path / "check.lua", requests, workload.caller_headers())
    parsed = parse_lua_return(path.read_text(encoding="ascii"))
    assert parsed["headers"][b"Content-Type"] == b"application/json"
    assert len(parsed["requests"]) == len(work.questions) == 80
    for entry, request in zip(parsed["requests"], requests, strict=True):
        method, route, headers, body = entry
        assert (method, route, headers) == (b"POST", b"/v1/check", None)
        assert body == request.body
        assert set(orjson.loads(body)) == {"subject", "action", "resource"}
    # Roughly as many denies as allows: the list exercises both paths.
    assert 0 < sum(work.expected) < len(work.expected)


def test_other_lists_are_lua(work: workload.Workload, tmp_path: Path) -> None:
    gateway, allowed = workload.gateway_requests(work, count=30)
    batches = workload.evaluation_requests(work, items=100, count=3)
    lists = {
        "evaluations": (batches, workload.caller_headers()),
        "purchases": (workload.purchase_requests(work, count=40), workload.caller_headers()),
        "gateway": (gateway, {}),
        "cerbos": (cerbos.check_requests(work, cerbos.translate(work)), workload.JSON),
    }
    for name, (requests, headers) in lists.items():
        path = workload.write_lua(tmp_path / f"{name}.lua", requests, headers)
        parsed = parse_lua_return(path.read_text(encoding="ascii"))
        assert len(parsed["requests"]) == len(requests), name
    assert len(orjson.loads(batches[0].body or b"")["evaluations"]) == 100
    assert len(allowed) == 30
    first = parse_lua_return((tmp_path / "gateway.lua").read_text())["requests"][0]
    assert first[0] == b"GET" and first[3] is None
    assert first[2][b"Authorization"].startswith(b"Bearer ey")
    assert first[2][b"X-Original-URI"].startswith(b"/")


def test_lua_string_escapes_quotes_and_bytes() -> None:
    text = 'a"b\\c\n\u00e9'
    literal = workload.lua_string(text)
    assert literal.isascii()
    assert _unescape(literal) == text.encode()


def test_wrk_figures_are_parsed() -> None:
    line = (
        'WRK_JSON {"requests": 10, "duration_us": 1000000, "bytes": 1, "rps": 10.0, '
        '"errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}, '
        '"latency_us": {"mean": 1.0, "stdev": 0.0, "min": 1, "max": 2, '
        '"p50": 1, "p90": 1, "p99": 2, "p99.9": 2}}'
    )
    figures = wrkrun.parse("Running 1s test\n" + line + "\n")
    assert figures["latency_us"]["p99.9"] == 2
    assert wrkrun.median_of([figures, figures])["rps"] == 10.0
    assert "function done(" in wrkrun.SCRIPT.read_text()


async def test_bare_app_answers(aiohttp_client: Any) -> None:
    client = await aiohttp_client(bare.create_app())
    response = await client.post(bare.PATH, data=b'{"subject": {"id": "s"}}', headers=workload.JSON)
    assert response.status == 200
    assert await response.json() == {"allow": True, "reason": "bare", "revision": 1}
