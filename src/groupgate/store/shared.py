"""Reads shared by concurrent callers, each read begun after every caller that shares it.

A check with a consistency token must see the store as it is *after* the check arrived
(`CachedEntries.confirm`): a read already under way may predate a rollback. So callers
arriving while a read of the same key is in flight wait for the next read, which starts
when that one ends and serves all of them: at most one read per key in flight, at most one
queued, however many callers (a group commit for reads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedReads(Generic[T]):
    """`read(key)` through `fetch(key)`, shared as the module says."""

    def __init__(self, fetch: Callable[[str], Awaitable[T]]) -> None:
        self._fetch = fetch
        #: Key -> the read callers wait for that has not begun yet.
        self._next: dict[str, asyncio.Future[T]] = {}
        #: Key -> the task running the key's reads, one after another.
        self._runners: dict[str, asyncio.Task[None]] = {}

    async def read(self, key: str) -> T:
        waiting = self._next.get(key)
        if waiting is None:
            waiting = self._next[key] = asyncio.get_running_loop().create_future()
            if key not in self._runners:
                self._runners[key] = asyncio.create_task(self._run(key))
        # A caller that gives up does not cancel the read the others wait for.
        return await asyncio.shield(waiting)

    async def close(self) -> None:
        """Stop the reads under way; their callers get `CancelledError`."""
        runners, self._runners = self._runners, {}
        for task in runners.values():
            task.cancel()
        for task in runners.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiting in self._next.values():
            waiting.cancel()
        self._next.clear()

    async def _run(self, key: str) -> None:
        me = asyncio.current_task()
        try:
            while (waiting := self._next.pop(key, None)) is not None:
                try:
                    result = await self._fetch(key)
                except asyncio.CancelledError:
                    if self._runners.get(key) is me:  # not `close`: the read failed
                        waiting.set_exception(TimeoutError("the read was cancelled"))
                        waiting.exception()
                    else:
                        waiting.cancel()
                    raise
                except Exception as exc:  # handed to every caller of this read
                    waiting.set_exception(exc)
                    waiting.exception()  # raised to its callers: not "never retrieved"
                else:
                    waiting.set_result(result)
        finally:
            if self._runners.get(key) is me:
                del self._runners[key]
                if key in self._next:
                    # Callers came during a read that ended in a cancellation not asked by
                    # `close`: their read still runs, in a runner of its own (with none,
                    # they would wait for ever).
                    self._runners[key] = asyncio.create_task(self._run(key))
