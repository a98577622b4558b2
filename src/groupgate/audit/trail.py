"""The bounded buffer between decisions and the sinks.

What the request path pays is `next(numbers)` and `add`, an append to a `deque` bounded at
`buffer` records, both in C (a decision is a plain tuple there, `record.Decision`, led by its
number; the writer gives it its id and makes it a `Record`, off the request path). Every
`flush_ms` a background task takes what waits in batches of at most `batch` records, makes
them records (`record.stamp`) and hands each batch to every sink in turn. When `buffer`
records wait, an append drops the oldest: a gap in the numbers, so the trail counts every
dropped record (`dropped`, exported as `groupgate_audit_records_total{result="dropped"}`)
and a warning names how many were dropped since the last one, at most once per second, so
no record is lost silently. A sink that fails counts its batch as failed and logs why; the
others still get it.

The request path keeps no Python frame of the trail's: an `add` in Python that tested the
length first and woke the writer when a batch was full was a visible share of a check's
time on the decision listener under load (py-spy).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from groupgate import log
from groupgate.audit.record import Decision, id_prefix, stamp
from groupgate.audit.sinks import Sink
from groupgate.config import AuditSettings


class AuditTrail:
    def __init__(self, settings: AuditSettings, sinks: Sequence[Sink]) -> None:
        self.settings = settings
        self.sinks = list(sinks)
        self._buffer: deque[Decision] = deque(maxlen=settings.buffer)
        self._batch = settings.batch
        self._prefix = id_prefix()
        #: The request path's part: a decision takes `next(numbers)` and is `add`ed.
        self.numbers = itertools.count(1)
        self.add: Callable[[Decision], None] = self._buffer.append
        #: The number of the last decision taken from the buffer (written or lost).
        self._taken = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self._dropped = 0
        #: Records a sink failed to write (per sink and record).
        self.failed = 0
        self._unreported = 0
        self._reported_at = 0.0
        self._closing = False
        #: Records handed to the sinks and not yet written by all of them.
        self._in_flight = 0

    @property
    def dropped(self) -> int:
        """Records dropped so far: those counted when a batch was taken, and the gap in the
        numbers the buffer holds now."""
        return self._dropped + self._gap()

    def _gap(self) -> int:
        """Decisions numbered after the last taken that the buffer no longer holds."""
        buffer = self._buffer
        return buffer[-1][0] - self._taken - len(buffer) if buffer else 0

    def _count_gap(self) -> None:
        gap = self._gap()
        self._dropped += gap
        self._unreported += gap
        self._taken += gap

    # ------------------------------------------------------------------ writer

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit")

    async def _run(self) -> None:
        interval = self.settings.flush_ms / 1000
        while not self._closing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            await self._drain()

    async def _drain(self) -> None:
        """Write what waits now, in batches of at most `batch`. What arrives during a write
        waits for the next round (`flush_ms`): draining on and on would write a small batch
        per round trip to the sink, each paying a write's fixed cost (measured under load at
        2,600 checks/s: batches of 16 to 31 records instead of about 650)."""
        left = len(self._buffer)
        while left:
            take = min(left, self._batch)
            left -= take
            await self._write(self._take(take))
        self._report()

    def _take(self, n: int) -> list[Decision]:
        """The `n` oldest waiting decisions, out of the buffer, counting those dropped
        before them."""
        self._count_gap()
        buffer = self._buffer
        if n == len(buffer):  # the usual case: all of it, in C
            batch = list(buffer)
            buffer.clear()
        else:  # n calls of `popleft`, in C
            batch = list(itertools.starmap(buffer.popleft, itertools.repeat((), n)))
        if batch:
            self._taken = batch[-1][0]
        return batch

    async def _write(self, taken: list[Decision]) -> None:
        self._in_flight = len(taken)
        batch = stamp(taken, self._prefix)
        for sink in self.sinks:
            try:
                await sink.write(batch)
            except Exception as exc:
                self.failed += len(batch)
                log.api.error(
                    "audit: the %s sink failed to write %d records: %s",
                    sink.name,
                    len(batch),
                    exc,
                )
        self.written += len(batch)
        self._in_flight = 0

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._unreported and (force or now - self._reported_at >= 1.0):
            log.api.warning(
                "audit: dropped %d records, the buffer of %d was full (%d dropped in all)",
                self._unreported,
                self._buffer.maxlen,
                self.dropped,
            )
            self._unreported = 0
            self._reported_at = now

    async def flush(self) -> None:
        """Write everything waiting, and what arrives meanwhile (tests, shutdown)."""
        while self._buffer:
            await self._drain()
        self._report(force=True)

    async def close(self, grace: float = 5.0) -> None:
        """Write what waits, within `grace` seconds; what a stalled sink still holds then is
        counted as dropped and logged."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        try:
            if task is not None:
                await asyncio.wait_for(asyncio.shield(task), grace)
            await asyncio.wait_for(self.flush(), grace)
        except TimeoutError:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            lost = self._in_flight + len(self._take(len(self._buffer)))
            self._dropped += lost
            log.api.error(
                "audit: a sink did not finish within %.1f s: %d records lost", grace, lost
            )
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.close()

    @property
    def waiting(self) -> int:
        return len(self._buffer)


class AuditCollector:
    """`groupgate_audit_records_total{result}` and `groupgate_audit_waiting` at scrape time."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def collect(self) -> Iterator[Any]:
        records = CounterMetricFamily("groupgate_audit_records", "audit records", labels=["result"])
        records.add_metric(["written"], self.trail.written)
        records.add_metric(["dropped"], self.trail.dropped)
        records.add_metric(["failed"], self.trail.failed)
        yield records
        waiting = GaugeMetricFamily("groupgate_audit_waiting", "audit records waiting")
        waiting.add_metric([], self.trail.waiting)
        yield waiting


def build(settings: AuditSettings, client: Any) -> AuditTrail | None:
    """The trail for `settings` (None when no sink is named); `client` is the store's Redis
    client, for the `redis` sink."""
    from groupgate.audit.sinks import FileSink, RedisSink, StdoutSink

    sinks: list[Sink] = []
    for name in settings.sinks:
        if name == "stdout":
            sinks.append(StdoutSink(settings.mask))
        elif name == "file" and settings.file is not None:
            sinks.append(
                FileSink(
                    settings.file, settings.file_max_bytes, settings.file_backups, settings.mask
                )
            )
        elif name == "redis":
            sinks.append(RedisSink(client, settings.stream_max_len, settings.mask))
    return AuditTrail(settings, sinks) if sinks else None
