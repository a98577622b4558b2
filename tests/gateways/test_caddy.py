"""deploy/gateways/Caddyfile, run by a real Caddy (Debian's 2.6.2) in front of groupgate.

The recipe is used as it is, its addresses (and the admin port) substituted. Which requests
reach the backend, and with what identity: tests/gateways/matrix.py. With Caddy a client's
X-Original-* reaches groupgate (forward_auth copies every request header), so one that
disagrees with the request is refused; its X-Forwarded-Method/-Uri and identity headers are
replaced by Caddy, so the request is decided, and identified, as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.gateways.conftest import StartSidecar, addresses, recipe
from tests.gateways.matrix import Backend, client_identity_kept_out, fails_closed, run_matrix
from tests.support.servers import free_port


async def test_caddy_recipe(
    sidecar: StartSidecar, backend: Backend, caddy_factory: Callable[..., Any]
) -> None:
    front = free_port()
    substitutions = addresses(front, await sidecar("caddy"), backend.port)
    substitutions["admin localhost:2019"] = f"admin 127.0.0.1:{free_port()}"
    caddy = caddy_factory(recipe("Caddyfile", substitutions), front)
    problems = await run_matrix("caddy", front, backend)
    assert not problems, "\n".join(problems) + "\n" + caddy.log()


async def test_caddy_recipe_fails_closed(
    backend: Backend, caddy_factory: Callable[..., Any]
) -> None:
    front = free_port()
    substitutions = addresses(front, free_port(), backend.port)
    substitutions["admin localhost:2019"] = f"admin 127.0.0.1:{free_port()}"
    caddy_factory(recipe("Caddyfile", substitutions), front)
    assert not await fails_closed(front, backend)


async def test_caddy_recipe_never_passes_client_identity(
    backend: Backend, headerless_auth: int, caddy_factory: Callable[..., Any]
) -> None:
    """The auth answer lacks the identity headers: the client's copies were removed before
    forward_auth (Caddy 2.6.2 then sends its unexpanded placeholder, later versions nothing)."""
    front = free_port()
    substitutions = addresses(front, headerless_auth, backend.port)
    substitutions["admin localhost:2019"] = f"admin 127.0.0.1:{free_port()}"
    caddy_factory(recipe("Caddyfile", substitutions), front)
    assert not await client_identity_kept_out(front, backend)
    assert len(backend.seen) == 1
