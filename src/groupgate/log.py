"""Named loggers, the JSON log formatter and the decision log.

Every logger groupgate writes to is declared here, so that operators can tune them by name:

- `groupgate` (root of ours), `groupgate.api` (transport), `groupgate.auth` (credential and
  JWKS problems), `groupgate.store` (declared by the store), `groupgate.cli`;
- `groupgate.decisions`: the decision (audit) log, one JSON line per decision, kept apart from
  the application log (Cerbos does the same) and off unless configured.

Calls use `%`-style arguments so nothing is formatted when a level is off; the decision log is
guarded by one boolean check in the handlers, so a disabled decision log costs nothing.
In `serve` the application log reaches stderr through `Lines`, a writer thread with a bounded
queue: a stderr nobody reads never blocks the event loop (lines past the bound are dropped,
counted and reported).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import sys
import threading
import time
from typing import Any, TextIO

import orjson
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

root = logging.getLogger("groupgate")
api = logging.getLogger("groupgate.api")
auth = logging.getLogger("groupgate.auth")
cli = logging.getLogger("groupgate.cli")
decisions = logging.getLogger("groupgate.decisions")

# Attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object per line: time, level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


#: aiohttp's server logger: it reports malformed HTTP as "Error handling request".
aiohttp_server = logging.getLogger("aiohttp.server")


class MalformedHttpFilter(logging.Filter):
    """Demote aiohttp's report of a malformed request to one debug line without traceback.

    aiohttp answers malformed HTTP (a bad request line, a duplicate Host, an over-long
    header) with a 400 and logs the parser's exception at error level with its traceback;
    a body it cannot decode (bad gzip, say) is logged again when it drains the request:
    a hostile client could fill the log (4,714 tracebacks in one run). The client's mistake
    is not the service's error, so the record becomes a debug record (kept only when the
    `aiohttp.server` logger is at debug level) that names the problem in one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RequestPayloadError):  # a body aiohttp could not decode
            exc = exc.__cause__
        if not isinstance(exc, HttpProcessingError):
            return True
        record.levelno = logging.DEBUG
        record.levelname = "DEBUG"
        record.exc_info = None
        record.exc_text = None
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        first = str(exc.message).splitlines()[0][:200] if exc.message else ""
        record.msg = "malformed HTTP request from %s: %s %s"
        record.args = (remote, exc.code, first)
        return aiohttp_server.isEnabledFor(logging.DEBUG)


_MALFORMED = MalformedHttpFilter()


def quiet_malformed_http() -> None:
    """Install `MalformedHttpFilter` on aiohttp's server logger (idempotent)."""
    if _MALFORMED not in aiohttp_server.filters:
        aiohttp_server.addFilter(_MALFORMED)


class Lines:
    """Log lines written to a stream by a thread of their own, so that a stream that blocks
    (a pipe or terminal nobody reads) never blocks the event loop.

    `handler` formats a record where it is logged (as a direct handler would) and queues the
    line; past `buffer` waiting lines it drops the line and counts it, never waits. The
    writer thread writes the lines in order and, once it has caught up (or a second after
    its last such line), one more naming how many were dropped since. `stop` writes what
    waits (for at most `grace` seconds) and ends the thread. (Not the standard library's
    `QueueHandler` and `QueueListener`: the handler copies each record, the listener's stop
    fails on a full queue and waits for a blocked stream without bound.)
    """

    def __init__(self, stream: TextIO, formatter: logging.Formatter, buffer: int) -> None:
        self.stream = stream
        self.formatter = formatter
        self.queue: queue.Queue[str | None] = queue.Queue(buffer)
        self.dropped = 0
        self._reported = 0
        self._last_report = 0.0
        self.handler = _Queued(self)
        self.handler.setFormatter(formatter)
        self._thread = threading.Thread(target=self._write, name="groupgate-log", daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def stop(self, grace: float = 2.0) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=grace)
        self._thread.join(grace)

    def _write(self) -> None:
        while (line := self.queue.get()) is not None:
            try:
                self.stream.write(line + "\n")
                if self.dropped > self._reported and (
                    self.queue.empty() or time.monotonic() - self._last_report >= 1.0
                ):
                    self._report()
                self.stream.flush()
            except (OSError, ValueError):  # a closed stream: nothing to write to any more
                return

    def _report(self) -> None:
        dropped, self._reported = self.dropped - self._reported, self.dropped
        self._last_report = time.monotonic()
        notice = logging.LogRecord(
            root.name,
            logging.WARNING,
            __file__,
            0,
            "log: %d lines dropped, the log stream was not read as fast as they came",
            (dropped,),
            None,
        )
        self.stream.write(self.formatter.format(notice) + "\n")


class _Queued(logging.Handler):
    """The logging side of `Lines`: formats each record and queues its line."""

    def __init__(self, lines: Lines) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.put(self.format(record))
        except Exception:  # as logging.StreamHandler does
            self.handleError(record)


#: The queued stderr writer `configure` installed (None: a direct handler).
_lines: Lines | None = None


def dropped() -> int:
    """Log lines dropped so far because stderr was not read fast enough (`Lines`)."""
    return 0 if _lines is None else _lines.dropped


def configure(
    level: str = "info",
    fmt: str = "json",
    *,
    decision_log: bool = False,
    buffer: int | None = None,
) -> None:
    """Install one stderr handler on the `groupgate` logger (idempotent).

    With `buffer` (what `serve` does) the lines go through `Lines`: a writer thread, at most
    `buffer` waiting; without, straight to stderr (one-shot commands, whose log must be
    written before they return). The decision log always writes JSON to stdout when
    enabled, so it can be shipped apart from the application log; when disabled its level
    is raised above CRITICAL.
    """
    global _lines
    formatter = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    if _lines is not None:
        _lines.stop()
        _lines = None
    handler: logging.Handler
    if buffer is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
    else:
        _lines = Lines(sys.stderr, formatter, buffer)
        handler = _lines.handler
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    aio = logging.getLogger("aiohttp")
    aio.handlers[:] = [handler]
    aio.setLevel(max(logging.WARNING, root.level))
    aio.propagate = False
    quiet_malformed_http()
    if decision_log:
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(JsonFormatter())
        decisions.handlers[:] = [out]
        decisions.setLevel(logging.INFO)
    else:
        decisions.handlers[:] = []
        decisions.setLevel(logging.CRITICAL + 1)
    decisions.propagate = False


@atexit.register
def _flush() -> None:
    """At exit, what waits in the queued stderr writer is written (within its grace)."""
    if _lines is not None:
        _lines.stop()


def decision(surface: str, **fields: Any) -> None:
    """Write one decision record (caller checks that the decision log is on)."""
    decisions.info("decision", extra={"surface": surface, **fields})
