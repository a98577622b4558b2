"""Memory given back to the system after a burst of connections has closed.

A burst of connections (2,000 slow bodies, say) grows the heap with their buffers; when they
close, Python frees the objects, but glibc keeps the freed pages in its arenas, so the
process' resident memory stays at the burst's peak (`python -m benchmarks slowbody`: 1.23x of
the start on the main listener). `Trimmer` watches the open connections of a listener: once
they fall to a quarter of a peak of at least `peak` connections, it runs a full collection
(what a closed connection left in reference cycles) and glibc's `malloc_trim(0)`, which hands
the free pages of every arena back. At most once per `interval` seconds, and on the next turn
of the event loop, not inside the connection's own callback. Where glibc is not the C library
(`malloc_trim` absent) only the collection runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


MALLOC_TRIM = _malloc_trim()


def release() -> None:
    """Collect garbage, then give glibc's free pages back to the system."""
    gc.collect()
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


class Trimmer:
    """Calls `release` when a listener's open connections drop after a burst (see above).

    `interval` 0 turns it off; `later(delay, callback)` runs a callback after `delay`
    seconds (the event loop's `call_later`). The release waits `SETTLE` seconds after the
    drop, so that the rest of the burst has closed too, and runs once more `interval` (at
    least `SETTLE`) seconds later; no other release is scheduled in between.
    """

    SETTLE = 1.0

    def __init__(
        self,
        interval: float,
        peak: int,
        later: Callable[[float, Callable[[], None]], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.peak = peak
        self.later = later
        self.clock = clock
        self.open = 0
        self.highest = 0  # the most connections open since the last release
        self.last = float("-inf")
        self.pending = False
        self.releases = 0

    def opened(self, count: int) -> None:
        """`count` connections are open, one just opened."""
        self.open = count
        if count > self.highest:
            self.highest = count

    def closed(self, count: int) -> None:
        """`count` connections are open, one just closed."""
        self.open = count
        if (
            self.interval > 0
            and not self.pending
            and self.highest >= self.peak
            and count <= self.highest // 4
        ):
            self.pending = True
            wait = max(self.SETTLE, self.last + self.interval - self.clock())
            self.later(wait, self._release)

    def _release(self) -> None:
        self.last = self.clock()
        self.highest = self.open
        self.releases += 1
        release()
        # Once more a little later, for what the burst still held: connections refused past
        # the cap (not counted here) close a second after their 503, timers run out.
        self.later(max(self.SETTLE, self.interval), self._trail)

    def _trail(self) -> None:
        self.pending = False
        self.last = self.clock()
        self.highest = self.open
        self.releases += 1
        release()
