"""A raw HTTP/1.1 client for the differential suite: send bytes and actions, read answers.

A conversation is a list of steps (bytes to send, a pause, a trickle, a half-close, a wait
for an interim answer) played over a plain blocking socket; then the answers are read with a
deadline on every read, so a listener that stalls is reported as `stall`, never a hang.

What is read is reduced to what both listeners must agree on (`Answer.key`): the status, the
problem `type` of a problem+json body (else the body itself), and the few headers whose
presence or value is part of the contract (`Allow`, `WWW-Authenticate`, `Retry-After`, the
gateway's identity headers).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

PROBLEM = "application/problem+json"
TYPE_PREFIX = "urn:groupgate:problem:"
#: Headers compared between the listeners (by value; `retry-after` by presence).
COMPARED = ("allow", "www-authenticate", "x-groupgate-subject", "x-groupgate-tenant")
#: Seconds to keep reading after the expected answers, for answers nobody asked for.
LINGER = 0.3


@dataclass(frozen=True, slots=True)
class Pause:
    """Send nothing for `seconds`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Trickle:
    """Send `data` in `pieces` parts, `interval` seconds apart."""

    data: bytes
    pieces: int
    interval: float


@dataclass(frozen=True, slots=True)
class HalfClose:
    """`shutdown(SHUT_WR)`: the client sends nothing more but still reads."""


@dataclass(frozen=True, slots=True)
class Await:
    """Read until `count` answers (interim ones included) have arrived, e.g. a 100 Continue."""

    count: int


Step = bytes | Pause | Trickle | HalfClose | Await


@dataclass(frozen=True, slots=True)
class Answer:
    """One response as read."""

    status: int
    media: str
    body: bytes
    headers: dict[str, str]

    @property
    def interim(self) -> bool:
        return 100 <= self.status < 200

    @property
    def closes(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()

    @property
    def what(self) -> str:
        """The problem type (without the urn prefix), or the body, shortened."""
        if self.media == PROBLEM:
            if not self.body:  # the answer to a HEAD
                return "problem+json, no body"
            try:
                kind = json.loads(self.body).get("type", "?")
            except (ValueError, AttributeError):
                return f"problem? {self.body[:60]!r}"
            return str(kind).removeprefix(TYPE_PREFIX)
        if not self.body:
            return "-"
        text = self.body[:60].decode("utf-8", "replace")
        return f"{self.media or 'no-type'} {text!r}"

    @property
    def key(self) -> tuple[object, ...]:
        extra = tuple(self.headers.get(name) for name in COMPARED)
        return (self.status, self.what, *extra, "retry-after" in self.headers)

    def __str__(self) -> str:
        shown = [f"{n}={self.headers[n]}" for n in COMPARED if n in self.headers]
        if "retry-after" in self.headers:
            shown.append(f"retry-after={self.headers['retry-after']}")
        if self.closes:
            shown.append("close")
        tail = f" [{', '.join(shown)}]" if shown else ""
        return f"{self.status} {self.what}{tail}"


@dataclass(slots=True)
class Outcome:
    """Everything one listener answered in one conversation, and how it ended.

    `end` is `closed` (the listener closed the connection), `open` (the expected answers came
    and the connection stayed open), `stall` (the deadline passed with an answer missing, or
    after `Connection: close` without a close) or `reset`.
    """

    answers: list[Answer] = field(default_factory=list)
    end: str = "open"
    note: str = ""

    @property
    def finals(self) -> list[Answer]:
        return [a for a in self.answers if not a.interim]

    @property
    def key(self) -> tuple[object, ...]:
        stalled = self.end == "stall"
        return (tuple(a.key for a in self.answers), stalled)

    def __str__(self) -> str:
        listed = "; ".join(str(a) for a in self.answers) or "no answer"
        note = f" ({self.note})" if self.note else ""
        return f"{listed} -> {self.end}{note}"


class Incomplete(Exception):
    """The buffer does not hold a whole response yet."""


def parse_one(buffer: bytes, head_only: bool, eof: bool) -> tuple[Answer, int]:
    """The first response in `buffer` and its length; `Incomplete` when it is not all there."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        raise Incomplete
    lines = buffer[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {buffer[:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if head_only or 100 <= status < 200 or status in (204, 304):
        return Answer(status, media, b"", headers), start
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        at = start
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                raise Incomplete
            size = int(buffer[at:line_end].split(b";")[0], 16)
            if len(buffer) < line_end + 2 + size + 2:
                raise Incomplete
            body += buffer[line_end + 2 : line_end + 2 + size]
            at = line_end + 2 + size + 2
            if size == 0:
                return Answer(status, media, bytes(body), headers), at
    if "content-length" in headers:
        length = int(headers["content-length"])
        if len(buffer) < start + length:
            raise Incomplete
        return Answer(status, media, buffer[start : start + length], headers), start + length
    if not eof:  # delimited by the close
        raise Incomplete
    return Answer(status, media, buffer[start:], headers), len(buffer)


class Conversation:
    """One connection to one listener."""

    def __init__(self, port: int, heads: frozenset[int], deadline: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=deadline)
        self.heads = heads  # indexes of final answers that answer a HEAD (no body)
        self.deadline = deadline
        self.buffer = b""
        self.outcome = Outcome()
        self.eof = False
        self.sending = True

    def close(self) -> None:
        self.sock.close()

    def play(self, steps: tuple[Step, ...]) -> None:
        for step in steps:
            if isinstance(step, bytes):
                self._send(step)
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
            elif isinstance(step, Trickle):
                size = -(-len(step.data) // step.pieces)
                for at in range(0, len(step.data), size):
                    if at:
                        time.sleep(step.interval)
                    self._send(step.data[at : at + size])
            elif isinstance(step, HalfClose):
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    self.sending = False
            else:
                self._await(step.count)

    def _await(self, count: int) -> None:
        self._read_until(lambda: len(self.outcome.answers) >= count)

    def _send(self, data: bytes) -> None:
        if not self.sending:
            return
        try:
            self.sock.settimeout(self.deadline)
            self.sock.sendall(data)
        except OSError as exc:  # the listener closed (or reset) the connection: read on
            self.sending = False
            self.outcome.note = f"send failed: {type(exc).__name__}"

    def finish(self, answers: int, closes: bool | None) -> Outcome:
        """Read the rest: `answers` final answers (or until the close when `closes`)."""
        outcome = self.outcome

        def done() -> bool:
            finals = outcome.finals
            if closes:
                return False  # read until the listener closes
            if finals and finals[-1].closes:
                return False  # it said it closes: it must
            return len(finals) >= answers

        if self._read_until(done) and not self.eof:
            self._read_for(LINGER)  # anything more, unasked for?
        finals = outcome.finals
        if self.eof:
            outcome.end = "reset" if outcome.end == "reset" else "closed"
        elif len(finals) < answers or (finals and finals[-1].closes):
            outcome.end = "stall"  # an answer is missing, or it said it closes and did not
        else:
            outcome.end = "open"
        return outcome

    def _read_until(self, done: Callable[[], bool]) -> bool:
        """Read until `done()` or EOF or the deadline; True when `done()` held."""
        stop = time.monotonic() + self.deadline
        while not done():
            if self.eof:
                return False
            left = stop - time.monotonic()
            if left <= 0:
                return False
            self._receive(left)
        return True

    def _read_for(self, seconds: float) -> None:
        stop = time.monotonic() + seconds
        while not self.eof:
            left = stop - time.monotonic()
            if left <= 0:
                return
            self._receive(left)

    def _receive(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        except OSError:
            self.eof = True
            self.outcome.end = "reset"
            data = b""
        if not data:
            self.eof = True
        self.buffer += data
        self._parse()

    def _parse(self) -> None:
        while self.buffer:
            index = len(self.outcome.finals)
            try:
                answer, used = parse_one(self.buffer, index in self.heads, self.eof)
            except Incomplete:
                return
            except ValueError as exc:
                self.outcome.note = str(exc)
                self.buffer = b""
                return
            self.outcome.answers.append(answer)
            self.buffer = self.buffer[used:]


def converse(
    port: int,
    steps: tuple[Step, ...],
    *,
    answers: int,
    closes: bool | None,
    heads: frozenset[int],
    deadline: float,
) -> Outcome:
    """Play `steps` to the listener on `port` and read what it answers."""
    try:
        conversation = Conversation(port, heads, deadline)
    except OSError as exc:
        return Outcome(end="refused", note=f"connect: {exc}")
    try:
        conversation.play(steps)
        return conversation.finish(answers, closes)
    finally:
        conversation.close()
