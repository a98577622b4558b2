"""deploy/gateways/nginx.conf, run by a real nginx in front of groupgate and a backend.

The recipe is used as it is, its three addresses substituted; the test helper adds what an
nginx.conf needs around a server block (pid, logs, events, temp paths inside a folder).
Which requests reach the backend, and with what identity: tests/gateways/matrix.py. With
nginx every spoofed request is refused, except where the client's header is one nginx
overwrites itself (X-Original-*, X-Groupgate-Subject/-Tenant): those are decided on the
request as it is. nginx refuses a repeated Authorization itself (400).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.gateways.conftest import StartSidecar, addresses, recipe
from tests.gateways.matrix import Backend, client_identity_kept_out, fails_closed, run_matrix
from tests.support.servers import free_port

pytestmark = pytest.mark.nginx


async def test_nginx_recipe(
    sidecar: StartSidecar, backend: Backend, nginx_factory: Callable[..., Any]
) -> None:
    front = free_port()
    server_block = recipe("nginx.conf", addresses(front, await sidecar("nginx"), backend.port))
    nginx = nginx_factory("http {\n" + server_block + "\n}\n", front)
    problems = await run_matrix("nginx", front, backend)
    assert not problems, "\n".join(problems) + "\n" + nginx.error_log()


async def test_nginx_recipe_fails_closed(
    backend: Backend, nginx_factory: Callable[..., Any]
) -> None:
    front = free_port()
    server_block = recipe("nginx.conf", addresses(front, free_port(), backend.port))
    nginx_factory("http {\n" + server_block + "\n}\n", front)
    assert not await fails_closed(front, backend)


async def test_nginx_recipe_never_passes_client_identity(
    backend: Backend, headerless_auth: int, nginx_factory: Callable[..., Any]
) -> None:
    """The auth answer lacks the identity headers: nginx sends none (empty values)."""
    front = free_port()
    server_block = recipe("nginx.conf", addresses(front, headerless_auth, backend.port))
    nginx_factory("http {\n" + server_block + "\n}\n", front)
    assert not await client_identity_kept_out(front, backend)
    assert [s.values("X-Groupgate-Subject") for s in backend.seen] == [[]]
