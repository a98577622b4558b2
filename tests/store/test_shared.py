"""`SharedReads`: callers share a read only if it began after they all arrived."""

from __future__ import annotations

import asyncio

import pytest

from groupgate.store.shared import SharedReads


class Gated:
    """A fetch that returns its call number once the test opens that call's gate."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gates: list[asyncio.Event] = []
        self.fail: BaseException | None = None

    async def fetch(self, key: str) -> int:
        self.calls.append(key)
        number = len(self.calls)
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail is not None:
            raise self.fail
        return number


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_during_a_read_share_the_next_one() -> None:
    fetch = Gated()
    reads = SharedReads(fetch.fetch)
    first = asyncio.create_task(reads.read("t"))
    await settle()
    assert fetch.calls == ["t"]  # under way
    later = [asyncio.create_task(reads.read("t")) for _ in range(3)]
    other = asyncio.create_task(reads.read("u"))  # another key reads on its own
    await settle()
    assert fetch.calls == ["t", "u"]  # the late callers wait: the read under way predates them
    fetch.gates[0].set()
    assert await first == 1
    await settle()
    assert fetch.calls == ["t", "u", "t"]  # one more read, begun after all of them arrived
    fetch.gates[2].set()
    assert await asyncio.gather(*later) == [3, 3, 3]
    fetch.gates[1].set()
    assert await other == 2
    await reads.close()


async def test_an_error_reaches_every_caller_of_the_read() -> None:
    fetch = Gated()
    fetch.fail = ConnectionError("down")
    reads = SharedReads(fetch.fetch)
    callers = [asyncio.create_task(reads.read("t")) for _ in range(2)]
    await settle()
    fetch.gates[0].set()
    for caller in callers:
        with pytest.raises(ConnectionError, match="down"):
            await caller
    fetch.fail = None
    again = asyncio.create_task(reads.read("t"))
    await settle()
    fetch.gates[1].set()
    assert await again == 2  # the next caller reads afresh
    await reads.close()


async def test_a_caller_that_gives_up_leaves_the_read_to_the_others() -> None:
    fetch = Gated()
    reads = SharedReads(fetch.fetch)
    quitter, stayer = (asyncio.create_task(reads.read("t")) for _ in range(2))
    await settle()
    quitter.cancel()
    await settle()
    fetch.gates[0].set()
    assert await stayer == 1
    assert quitter.cancelled()
    await reads.close()


async def test_close_cancels_the_reads_under_way() -> None:
    fetch = Gated()
    reads = SharedReads(fetch.fetch)
    caller = asyncio.create_task(reads.read("t"))
    await settle()
    await reads.close()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_a_read_cancelled_from_within_fails_its_callers_and_the_next_one_still_runs() -> None:
    # A fetch can end in `CancelledError` without `close` (a client library that turns its
    # own timeout or a lost connection into a cancellation). Its callers get a store error
    # (the guard fails closed), and the callers who came meanwhile get their read: before,
    # they waited on a read that no runner would make, for ever.
    fetch = Gated()
    reads = SharedReads(fetch.fetch)
    first = asyncio.create_task(reads.read("t"))
    await settle()
    later = asyncio.create_task(reads.read("t"))  # waits for the next read
    await settle()
    fetch.fail = asyncio.CancelledError()
    fetch.gates[0].set()
    with pytest.raises(TimeoutError, match="cancelled"):
        await first
    await settle()
    assert fetch.calls == ["t", "t"]  # the next read runs
    fetch.fail = None
    fetch.gates[1].set()
    assert await later == 2
    third = asyncio.create_task(reads.read("t"))  # and reads go on as before
    await settle()
    fetch.gates[2].set()
    assert await third == 3
    await reads.close()
