"""`memory.Trimmer`: freed memory is given back once after a burst of connections closes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from groupgate.api import memory


class Later:
    """A stand-in for `loop.call_later` and the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> None:
        self.calls.append((self.now + delay, callback))

    def run_due(self) -> None:
        due = [c for c in self.calls if c[0] <= self.now]
        self.calls = [c for c in self.calls if c[0] > self.now]
        for _, callback in due:
            callback()


def burst(trimmer: memory.Trimmer, peak: int, down_to: int) -> None:
    for count in range(1, peak + 1):
        trimmer.opened(count)
    for count in range(peak - 1, down_to - 1, -1):
        trimmer.closed(count)


@pytest.fixture
def released(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(memory, "release", lambda: calls.append(1))
    return calls


def test_a_burst_that_closes_is_released_once_after_it_settles(released: list[int]) -> None:
    later = Later()
    trimmer = memory.Trimmer(1.0, 64, later, clock=lambda: later.now)
    burst(trimmer, 200, 0)
    assert len(later.calls) == 1 and released == []  # scheduled once, not run in the close
    later.now = memory.Trimmer.SETTLE
    later.run_due()
    assert released == [1] and trimmer.releases == 1
    assert len(later.calls) == 1  # once more later, for what the burst still held
    burst(trimmer, 200, 0)  # another burst meanwhile schedules nothing more
    assert len(later.calls) == 1
    later.now = memory.Trimmer.SETTLE + 1.0
    later.run_due()
    assert released == [1, 1] and later.calls == []
    burst(trimmer, 10, 0)  # a small wave after it: below the peak, nothing to give back
    assert later.calls == []


def test_releases_are_rate_limited(released: list[int]) -> None:
    later = Later()
    trimmer = memory.Trimmer(5.0, 64, later, clock=lambda: later.now)
    burst(trimmer, 100, 0)
    later.now = 1.0
    later.run_due()  # the release, and the trailing one set for 6.0
    later.now = 6.0
    later.run_due()
    assert released == [1, 1]
    burst(trimmer, 100, 0)
    assert later.calls and later.calls[0][0] == pytest.approx(11.0)  # not before the interval
    later.now = 11.0
    later.run_due()
    assert released == [1, 1, 1]


def test_no_release_while_connections_stay_open_or_when_off(released: list[int]) -> None:
    later = Later()
    trimmer = memory.Trimmer(1.0, 64, later, clock=lambda: later.now)
    burst(trimmer, 100, 30)  # still above a quarter of the peak
    assert later.calls == []
    off = memory.Trimmer(0.0, 64, later, clock=lambda: later.now)
    burst(off, 1000, 0)
    assert later.calls == []


def test_release_runs() -> None:
    memory.release()  # a full collection and, on glibc, malloc_trim(0): nothing raised
    assert memory.MALLOC_TRIM is None or callable(memory.MALLOC_TRIM)
