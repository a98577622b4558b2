"""What `groupgate serve` prints when it starts, and when: once its port is bound.

`banner` is the text: the addresses, the store, the policy and data files, curl lines to try
the demo, the DEMO MODE line, and on the demo the demo-only token secret with the
`groupgate token` command and curl line that try gateway forward-auth with it.

`serve` prints it once the port is bound (`groupgate.api.server.run`'s `on_bound`): a
failed bind prints only the error.
"""

from __future__ import annotations

import shlex

from groupgate.config import Config

#: What the banner's gateway curl line sends, per gateway kind: target, method and URI headers.
GATEWAY_TRY = {
    "nginx": ("/v1/gateway/auth", "X-Original-Method", "X-Original-URI"),
    "haproxy": ("/v1/gateway/auth", "X-Original-Method", "X-Original-URI"),
    "caddy": ("/v1/gateway/auth", "X-Forwarded-Method", "X-Forwarded-Uri"),
    "traefik": ("/v1/gateway/auth", "X-Forwarded-Method", "X-Forwarded-Uri"),
}


def gateway_lines(config: Config, secret: str) -> list[str]:
    """How to try forward-auth on the demo: mint a subject token, then ask about a request."""
    base = f"http://{config.host}:{config.port}"
    kind = config.gateway_kind
    command = ["groupgate", "token", "--secret", secret, "--sub", "emp-viewer"]
    if config.jwt.audience:
        command += ["--aud", config.jwt.audience[0]]
    if config.jwt.issuer:
        command += ["--iss", config.jwt.issuer]
    if kind in GATEWAY_TRY:
        path, method, uri = GATEWAY_TRY[kind]
        asked = f"{base}{path} -H '{method}: GET' -H '{uri}: /api/orders'"
    else:
        asked = f"{base}/v1/gateway/envoy/api/orders"
    return [
        f"Gateway forward-auth (gateway kind {kind}; recipes in deploy/gateways/):",
        "  demo-only token secret, generated at start: subject tokens are verified with it "
        "until this process stops (set GROUPGATE_JWT_SECRET or another jwt_* setting to use "
        "yours)",
        f"  TOKEN=$({shlex.join(command)})",
        f'  curl -si {asked} -H "Authorization: Bearer $TOKEN"',
    ]


def banner(config: Config, demo: bool, demo_secret: str | None = None) -> str:
    base = f"http://{config.host}:{config.port}"
    lines = [f"groupgate listening on {base} ({config.workers} worker(s))"]
    if config.decision_port is not None:
        lines.append(
            f"  decision listener: http://{config.host}:{config.decision_port}/v1/check (POST only)"
        )
    lines.append(f"  store: {config.redis_url or 'embedded (in-process, not persisted)'}")
    lines.append(f"  policies: {config.policies}")
    for path in config.data:
        lines.append(f"  data: {path}")
    auth = " -H 'authorization: Bearer <api key>'" if config.keys_configured else ""
    if any(p.name == "demo.json" for p in config.data):
        lines.append("Try it (an employee of the DE order fulfillment group updating a DE order):")
        lines.append(
            f"  curl -s {base}/v1/check -H 'content-type: application/json'{auth} -d "
            '\'{"subject": {"id": "emp-de"}, "action": "update", '
            '"resource": {"type": "orders", "id": "o-17", "restrictions": ["DE"]}}\''
        )
        lines.append(
            f"  curl -s {base}/v1/purchases/evaluate -H 'content-type: application/json'{auth}"
            ' -d \'{"subject": {"id": "cust-buyer"}, "company": "c-parent", '
            '"amount": "6200.00", "currency": "EUR"}\''
        )
    lines.append(f"  AuthZEN: {base}/.well-known/authzen-configuration   API: {base}/openapi.json")
    if demo:
        open_parts = ["demo data"]
        if not config.keys_configured:
            open_parts.append("decisions open to anyone (set GROUPGATE_API_KEYS to close them)")
        if config.admin_open:
            open_parts.append(
                "the admin API open to anyone who can reach this port "
                "(set GROUPGATE_ADMIN_KEYS to close it)"
            )
        lines.append("  DEMO MODE, not for production: " + "; ".join(open_parts))
    elif config.admin_open:
        lines.append(
            "  WARNING: GROUPGATE_ADMIN_OPEN is set and no admin key is: the admin API is open "
            "to anyone who can reach this port"
        )
    if demo_secret is not None and any(p.name == "demo.json" for p in config.data):
        lines += gateway_lines(config, demo_secret)
    elif demo_secret is not None:
        lines.append(
            "  demo-only token secret, generated at start, for subject tokens: "
            f"groupgate token --secret {shlex.quote(demo_secret)} --sub <subject>"
        )
    if config.workers > 1 and config.redis_url is None:
        lines.append(
            "  WARNING: several workers on the embedded store each hold their own copy of the "
            "graph; admin writes reach one worker only. Use --redis for multi-worker setups."
        )
    return "\n".join(lines)
