"""deploy/gateways/haproxy.cfg and groupgate.lua, run by a real HAProxy (Debian's 2.6).

The recipes are used as they are, the addresses and the Lua file's path substituted. Which
requests reach the backend, and with what identity: tests/gateways/matrix.py. The Lua action
sends groupgate only the headers it writes and the client's credentials (every copy), so a
client's X-Original-*/X-Forwarded-* never decide: spoofed requests are decided as what they
are (denied when that is denied; allowed with groupgate's identity otherwise), and repeated
credentials are refused by groupgate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.gateways.conftest import RECIPES, StartSidecar, addresses, recipe
from tests.gateways.matrix import Backend, client_identity_kept_out, fails_closed, run_matrix
from tests.support.servers import free_port


async def test_haproxy_recipe(
    sidecar: StartSidecar, backend: Backend, haproxy_factory: Callable[..., Any]
) -> None:
    front = free_port()
    substitutions = addresses(front, await sidecar("haproxy"), backend.port)
    substitutions["/etc/haproxy/groupgate.lua"] = "groupgate.lua"  # beside the config
    lua = (RECIPES / "groupgate.lua").read_text()
    haproxy = haproxy_factory(recipe("haproxy.cfg", substitutions), front, {"groupgate.lua": lua})
    problems = await run_matrix("haproxy", front, backend)
    assert not problems, "\n".join(problems) + "\n" + haproxy.log()


async def test_haproxy_recipe_fails_closed(
    backend: Backend, haproxy_factory: Callable[..., Any]
) -> None:
    front = free_port()
    substitutions = addresses(front, free_port(), backend.port)
    substitutions["/etc/haproxy/groupgate.lua"] = "groupgate.lua"
    lua = (RECIPES / "groupgate.lua").read_text()
    haproxy_factory(recipe("haproxy.cfg", substitutions), front, {"groupgate.lua": lua})
    assert not await fails_closed(front, backend)


async def test_haproxy_recipe_never_passes_client_identity(
    backend: Backend, headerless_auth: int, haproxy_factory: Callable[..., Any]
) -> None:
    """The auth answer lacks the identity headers: the Lua action denies the request."""
    front = free_port()
    substitutions = addresses(front, headerless_auth, backend.port)
    substitutions["/etc/haproxy/groupgate.lua"] = "groupgate.lua"
    lua = (RECIPES / "groupgate.lua").read_text()
    haproxy_factory(recipe("haproxy.cfg", substitutions), front, {"groupgate.lua": lua})
    assert not await client_identity_kept_out(front, backend)
    assert backend.seen == []
