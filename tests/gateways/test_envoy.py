"""deploy/gateways/envoy.yaml: no Envoy binary can be had here, so the recipe is parsed and
the ext_authz settings the trust model depends on are checked, then groupgate is asked the
way that configuration makes Envoy ask (method kept, path prefixed).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import yaml

from tests.gateways.conftest import RECIPES, StartSidecar
from tests.gateways.matrix import bearer

EXT_AUTHZ = "envoy.filters.http.ext_authz"


def load() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((RECIPES / "envoy.yaml").read_text())
    return document


def manager(document: dict[str, Any]) -> dict[str, Any]:
    (listener,) = document["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (hcm,) = chain["filters"]
    assert hcm["name"] == "envoy.filters.network.http_connection_manager"
    config: dict[str, Any] = hcm["typed_config"]
    return config


def exact(matcher: dict[str, Any]) -> set[str]:
    return {p["exact"].lower() for p in matcher["patterns"] if "exact" in p}


def cluster_address(document: dict[str, Any], name: str) -> str:
    (cluster,) = [c for c in document["static_resources"]["clusters"] if c["name"] == name]
    (group,) = cluster["load_assignment"]["endpoints"]
    (endpoint,) = group["lb_endpoints"]
    socket = endpoint["endpoint"]["address"]["socket_address"]
    return f"{socket['address']}:{socket['port_value']}"


def test_ext_authz_runs_first_and_fails_closed() -> None:
    document = load()
    hcm = manager(document)
    names = [f["name"] for f in hcm["http_filters"]]
    assert names[0] == EXT_AUTHZ and names[-1] == "envoy.filters.http.router"
    authz = hcm["http_filters"][0]["typed_config"]
    assert authz["@type"].endswith("ext_authz.v3.ExtAuthz")
    assert authz["failure_mode_allow"] is False
    assert "with_request_body" not in authz  # the auth request has no body
    for host in hcm["route_config"]["virtual_hosts"]:  # no route switches the check off
        assert EXT_AUTHZ not in str(host.get("typed_per_filter_config", {}))
        for route in host["routes"]:
            assert EXT_AUTHZ not in str(route.get("typed_per_filter_config", {}))


def test_http_service_and_headers() -> None:
    document = load()
    authz = manager(document)["http_filters"][0]["typed_config"]
    service = authz["http_service"]
    assert service["path_prefix"] == "/v1/gateway/envoy"
    # The original method is kept: no override of it or of the path.
    assert "method_override" not in service and "path_override" not in service
    assert service["server_uri"]["cluster"] == "groupgate"
    assert cluster_address(document, "groupgate") == "127.0.0.1:8181"
    response = service["authorization_response"]
    # Overwritten on the upstream request, never appended to a client's copy.
    assert exact(response["allowed_upstream_headers"]) == {
        "x-groupgate-subject",
        "x-groupgate-tenant",
    }
    assert "allowed_upstream_headers_to_append" not in response
    assert "www-authenticate" in exact(response["allowed_client_headers"])
    # Neither header family is passed to groupgate (Envoy's kind reads the path).
    allowed = exact(authz["allowed_headers"])
    assert "authorization" in allowed
    assert not {h for h in allowed if h.startswith(("x-original-", "x-forwarded-"))}
    assert not [
        p for p in authz["allowed_headers"]["patterns"] if set(p) - {"exact", "ignore_case"}
    ]


async def test_groupgate_answers_what_envoy_asks(sidecar: StartSidecar) -> None:
    prefix = manager(load())["http_filters"][0]["typed_config"]["http_service"]["path_prefix"]
    port = await sidecar("envoy")
    name, value = bearer("emp-viewer")
    base = f"http://127.0.0.1:{port}{prefix}"
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/api/orders?x=1", headers={name: value}) as response:
            assert response.status == 200
            assert response.headers.getall("X-Groupgate-Subject") == ["emp-viewer"]
        async with session.delete(base + "/api/orders/o-17", headers={name: value}) as response:
            assert response.status == 403
        spoofed = {name: value, "X-Original-Method": "GET", "X-Forwarded-Method": "DELETE"}
        async with session.get(base + "/api/orders", headers=spoofed) as response:
            assert response.status == 403
        async with session.get(base + "/api/orders") as response:
            assert response.status == 401
