"""Where audit records go. Each sink writes a batch; the trail calls it off the request path.

- `StdoutSink`: JSON lines on stdout through the `groupgate.decisions` logger (the decision
  log of earlier versions, same fields), written in a worker thread so a slow reader of
  stdout never stalls the event loop;
- `FileSink`: JSON lines appended to a file, rotated by size (`<file>.1` ... `<file>.N`), in a
  worker thread;
- `RedisSink`: a capped stream (`keys.AUDIT`, `XADD MAXLEN ~`), one entry per batch, its
  field `records` holding the batch's records as JSON lines (`record.json_lines`: one
  serialisation per batch).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Protocol

from groupgate import log
from groupgate.audit.record import Record, as_dict, json_lines
from groupgate.store import keys


class Sink(Protocol):
    name: str

    async def write(self, batch: Sequence[Record]) -> None: ...

    async def close(self) -> None: ...


class StdoutSink:
    name = "stdout"

    def __init__(self, mask: Collection[str]) -> None:
        self.mask = tuple(mask)

    async def write(self, batch: Sequence[Record]) -> None:
        await asyncio.to_thread(self._write, list(batch))

    def _write(self, batch: list[Record]) -> None:
        for record in batch:
            fields = as_dict(record, self.mask)
            log.decision(fields.pop("surface"), **fields)

    async def close(self) -> None:
        return None


class FileSink:
    name = "file"

    def __init__(self, path: str, max_bytes: int, backups: int, mask: Collection[str]) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.mask = tuple(mask)
        self._file: Any = None

    async def write(self, batch: Sequence[Record]) -> None:
        await asyncio.to_thread(self._append, json_lines(batch, self.mask))

    def _append(self, lines: bytes) -> None:
        if self._file is None:
            self._file = self.path.open("ab")
        if self._file.tell() and self._file.tell() + len(lines) > self.max_bytes:
            self._rotate()
        self._file.write(lines)
        self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        self._file = None
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("ab")

    async def close(self) -> None:
        if self._file is not None:
            await asyncio.to_thread(self._file.close)
            self._file = None


class RedisSink:
    """One stream entry per batch: field `records` holds the batch's records as JSON lines
    (one XADD per batch, not per record: a decision's share of the work stays a record and
    a line). The stream keeps about `max_len` records: each XADD trims it (`MAXLEN ~`) to as
    many entries as `max_len` records make in batches of this one's size, so a stream written
    in small batches (a quiet server) keeps as many records as one written in full ones."""

    name = "redis"

    def __init__(self, client: Any, max_len: int, mask: Collection[str]) -> None:
        self.client = client
        self.max_len = max_len
        self.mask = tuple(mask)

    async def write(self, batch: Sequence[Record]) -> None:
        lines = json_lines(batch, self.mask)
        entries = max(1, self.max_len // max(1, len(batch)))
        await self.client.xadd(keys.AUDIT, {"records": lines}, maxlen=entries, approximate=True)

    async def close(self) -> None:
        return None
