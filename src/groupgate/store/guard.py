"""Store errors fail closed, in one place.

A Redis error, an `OSError` or a timeout becomes `StoreUnavailable("store unreachable
(<error>): failing closed")` and is counted (`errors`: `store_errors` in `/metrics`); a call
that succeeds notes when the store last answered (`last_ok`: where the staleness bound of
cached answers starts). One `Guard` per service, shared by the decider, the admin writer and
`Freshness`. `await guard(call)` guards one call; `@guarded` guards every call of a
coroutine method of an object that has a `guard`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from redis.exceptions import RedisError

from groupgate.errors import StoreUnavailable

#: What a failing store raises: redis-py's errors, socket errors, timeouts.
STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

T = TypeVar("T")
P = ParamSpec("P")


class Guard:
    """Store errors met (`errors`), and when the store last answered (`last_ok`, monotonic)."""

    def __init__(self) -> None:
        self.errors = 0
        self.last_ok = time.monotonic()

    async def __call__(self, call: Awaitable[T]) -> T:
        """Await a store call; a store error fails closed."""
        try:
            result = await call
        except STORE_ERRORS as exc:
            raise self.failed(exc) from None
        self.last_ok = time.monotonic()
        return result

    def failed(self, exc: BaseException) -> StoreUnavailable:
        """Count the store error `exc`; return the error that fails closed for it."""
        self.errors += 1
        return StoreUnavailable(f"store unreachable ({type(exc).__name__}): failing closed")

    def answered(self) -> None:
        """Note that the store just answered."""
        self.last_ok = time.monotonic()


class Guarded(Protocol):
    """An object whose store calls a `Guard` guards."""

    guard: Guard


G = TypeVar("G", bound=Guarded)


def guarded(
    method: Callable[Concatenate[G, P], Awaitable[T]],
) -> Callable[Concatenate[G, P], Coroutine[Any, Any, T]]:
    """The coroutine method `method`, every call of it guarded by its object's `guard`."""

    @functools.wraps(method)
    async def call(self: G, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.guard(method(self, *args, **kwargs))

    return call
