"""A TCP proxy for tests that delays a share of the server's replies.

`DelayingProxy(upstream_port, share, delay)` listens on a free loopback port and forwards
each connection to the upstream server; each chunk the server sends back is held for
`delay` seconds with probability `share` (a client with a shorter socket timeout sees a
timed-out call). Order within a connection is kept. It counts the connections it carried,
those the client holds open now and the most it held open at once (a connection counts
until the client closes it, even while a delayed reply still waits), and the replies it
delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from tests.support.servers import LOCALHOST


class DelayingProxy:
    def __init__(self, upstream_port: int, share: float, delay: float, seed: int = 14) -> None:
        self.upstream_port = upstream_port
        self.share = share
        self.delay = delay
        self.delaying = True
        self.port = 0
        self.opened = 0
        self.open = 0
        self.peak = 0
        self.delayed = 0
        self.forwarded = 0
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, LOCALHOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.opened += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            up_reader, up_writer = await asyncio.open_connection(LOCALHOST, self.upstream_port)
        except OSError:
            self.open -= 1
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._from_client(reader, up_writer),
                self._pump(up_reader, writer, delay=True),
                return_exceptions=True,  # a reset connection ends its pump, nothing more
            )
        finally:
            for stream in (writer, up_writer):
                stream.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await stream.wait_closed()
            self._tasks.discard(task)

    async def _from_client(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            await self._pump(source, sink, delay=False)
        finally:
            self.open -= 1  # the client closed (or reset) its end

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, delay: bool
    ) -> None:
        """Copy until either side closes; then close the other direction too."""
        try:
            while chunk := await source.read(65536):
                if delay and self.delaying and self._random.random() < self.share:
                    self.delayed += 1
                    await asyncio.sleep(self.delay)
                if delay:
                    self.forwarded += 1
                sink.write(chunk)
                await sink.drain()
        finally:
            sink.close()
