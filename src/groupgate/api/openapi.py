"""The OpenAPI 3.1 document of the sidecar (`GET /openapi.json`), built from one table of
operations.

Each operation lists the statuses its handler really answers, each status with the problem
`type` slugs (`groupgate.api.problems`) it can carry; the refusals of the shared HTTP front
(`api/front.py`, `api/http_rules.py`: malformed HTTP, timeouts, limits, the connection cap),
made before any route is chosen, are added to every operation from one table (`FRONT`). The
gateway endpoints document their contract (`groupgate.api.forward_auth`): the headers read per
`gateway_kind`, the empty-bodied answers and their headers. Admin writes reference JSON
schemas of what `groupgate.engine.graph` validates.

`tests/api/test_openapi.py` compares the document's paths and methods with the application's
router, resolves every `$ref`, and drives the app to check that statuses it answers are listed.
The gateway endpoints accept any method (`ANY` below expands to every HTTP method).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from groupgate.api.problems import TYPE_PREFIX
from groupgate.engine.graph import AMOUNT_SYNTAX

ANY = ("get", "post", "put", "patch", "delete", "head", "options")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


class Problem(NamedTuple):
    """One way an operation fails: its status, its problem `type` slug, what it means."""

    status: int
    slug: str
    description: str


#: Every problem an operation may list, by name (several names may share a status and slug).
PROBLEMS: dict[str, Problem] = {
    # The shared HTTP front, before routing (`FRONT`).
    "invalid-http": Problem(
        400,
        "invalid-http",
        "malformed HTTP: request line, header field, Host, target form, framing, or a body "
        "whose chunks or coding are broken",
    ),
    "timeout": Problem(408, "timeout", "the request did not arrive within http_request_timeout"),
    "expect-too-large": Problem(
        413, "too-large", "Expect: 100-continue with a Content-Length over the body limit"
    ),
    "uri-too-long": Problem(414, "uri-too-long", "request target over the configured limit"),
    "content-coding": Problem(
        415, "unsupported-media-type", "a request body with a content coding (not identity)"
    ),
    "expectation-failed": Problem(417, "expectation-failed", "an Expect other than 100-continue"),
    "headers-too-large": Problem(
        431, "headers-too-large", "a header field or the header section over its limit"
    ),
    "internal": Problem(500, "internal", "an unexpected error (detail in the sidecar's log)"),
    "overloaded": Problem(
        503, "overloaded", "past max_connections: answered with Retry-After, then closed"
    ),
    "http-version": Problem(505, "http-version", "only HTTP/1.0 and HTTP/1.1 are served"),
    # Handlers.
    "invalid-json": Problem(
        400,
        "invalid-json",
        "the body is not one JSON object within the limits (syntax, duplicate keys, depth, "
        "numbers out of range)",
    ),
    "duplicate-header": Problem(
        400,
        "duplicate-header",
        "a header that must appear once came more than once (Authorization, "
        "X-Groupgate-Key, X-Groupgate-Min-Revision; X-Groupgate-Tenant on AuthZEN)",
    ),
    "unauthorized": Problem(401, "unauthorized", "missing or invalid credential"),
    "forbidden": Problem(403, "forbidden", "the credential is bound to another tenant"),
    "not-admin": Problem(
        403, "forbidden", "not an admin credential, or one bound to another tenant"
    ),
    "unknown-tenant": Problem(
        404, "not-found", "unknown tenant, or none named while several are loaded"
    ),
    "body-too-large": Problem(413, "too-large", "the body is over max_body_bytes"),
    "batch-too-large": Problem(413, "too-large", "the batch is over max_batch items"),
    "not-json": Problem(415, "unsupported-media-type", "the content type is not JSON"),
    "unprocessable": Problem(
        422,
        "unprocessable",
        "a field is missing, mistyped or unknown, or names no resource type or action of it "
        "(an unknown subject is a deny, not an error)",
    ),
    "store-unavailable": Problem(
        503, "store-unavailable", "store unreachable past the staleness bound (fail closed)"
    ),
    # Purchases.
    "unknown-company": Problem(404, "not-found", "unknown company"),
    "purchase-error": Problem(
        422, "unprocessable", "the purchase cannot be evaluated (the detail says why)"
    ),
    "unknown-subject-or-company": Problem(404, "not-found", "unknown subject or company"),
    "unknown-order": Problem(404, "not-found", "no such order (never committed, or expired)"),
    "purchase-refused": Problem(
        409,
        "purchase-refused",
        "the commit is refused; `rule` says why: period_limit_exceeded or budget_exceeded "
        "(with `limits`), approval_not_usable, order_id_reused, order_released, ledger_overflow",
    ),
    # Approval flows.
    "idempotency-key": Problem(
        400, "invalid-request", "the Idempotency-Key header is missing (or repeated)"
    ),
    "purchase-denied": Problem(403, "forbidden", "the purchase is denied: nothing to approve"),
    "not-eligible": Problem(
        403,
        "forbidden",
        "the subject may not act on the flow's current tier now (the detail says why), or "
        "cancels a flow it did not request",
    ),
    "unknown-flow": Problem(404, "not-found", "unknown tenant, company or approval flow"),
    "flow-conflict": Problem(
        409,
        "conflict",
        "the flow is no longer PENDING (approved, declined, closed, expired), the "
        "Idempotency-Key was used for another request, or too many concurrent changes",
    ),
    # AuthZEN (`authzen.spec_error`).
    "bad-request": Problem(
        400,
        "bad-request",
        "a field missing, mistyped or naming nothing, or a content type that is not JSON: the "
        "native API's 422 and 415 (AuthZEN 1.0 §10.1.1, §10.1.2)",
    ),
    "token-mismatch": Problem(400, "invalid-request", "page.token was issued for another request"),
    "not-a-tenant-id": Problem(404, "not-found", "the path's tenant is not a well-formed id"),
    # Operations.
    "not-ready": Problem(503, "not-ready", "no policy loaded, or the store does not answer"),
    # Admin.
    "path-tenant": Problem(422, "unprocessable", "the path's tenant is not a valid id"),
    "unknown-entity": Problem(404, "not-found", "unknown tenant or entity"),
    "write-conflict": Problem(409, "conflict", "too many concurrent writes to this tenant: retry"),
    "not-replicated": Problem(
        503,
        "not-replicated",
        "applied on the primary (the problem's revision: the tenant's, or the ledger's for a "
        "commit or release) but fewer replicas acknowledged it "
        "within write_wait_ms than write_replicas asks (the problem's replicas and wanted): a "
        "failover may lose it, retry",
    ),
    "tenant-exists": Problem(409, "conflict", "the tenant exists (import to replace its graph)"),
    "export-conflict": Problem(
        409, "conflict", "writes kept moving the revision during every export attempt: retry"
    ),
    "graph-rule": Problem(
        422, "graph-rule", "the write breaks a graph rule; the detail names the entry"
    ),
    "id-mismatch": Problem(422, "unprocessable", "the body's type or id disagrees with the path's"),
    "import-too-large": Problem(413, "too-large", "the body is over max_import_bytes"),
    "not-json-yaml": Problem(415, "unsupported-media-type", "the body is neither JSON nor YAML"),
    "invalid-yaml": Problem(
        400, "invalid-json", "invalid YAML (anchors and aliases refused), or not an object"
    ),
}

#: The HTTP front's refusals, on every operation (answered before routing).
FRONT = (
    "invalid-http",
    "timeout",
    "expect-too-large",
    "uri-too-long",
    "content-coding",
    "expectation-failed",
    "headers-too-large",
    "internal",
    "overloaded",
    "http-version",
)

_FRONT_PROBLEMS = [PROBLEMS[name] for name in FRONT]

#: A decision read from a JSON body (native API, purchases).
_DECIDE = (
    "invalid-json",
    "duplicate-header",
    "unauthorized",
    "forbidden",
    "unknown-tenant",
    "body-too-large",
    "not-json",
    "unprocessable",
    "store-unavailable",
)
#: The same on AuthZEN: 422 and 415 become 400 (`authzen.spec_error`).
_AUTHZEN = (
    "invalid-json",
    "bad-request",
    "duplicate-header",
    "unauthorized",
    "forbidden",
    "unknown-tenant",
    "body-too-large",
    "store-unavailable",
)
#: Every admin call: its credential and the path's tenant.
_ADMIN = ("duplicate-header", "unauthorized", "not-admin", "path-tenant", "store-unavailable")
#: An admin write with a JSON body.
_WRITE = (
    *_ADMIN,
    "invalid-json",
    "body-too-large",
    "not-json",
    "unprocessable",
    "unknown-entity",
    "write-conflict",
    "not-replicated",
    "graph-rule",
)

#: Request header parameters, by name.
HEADERS: dict[str, dict[str, Any]] = {
    "X-Groupgate-Min-Revision": {
        "description": "consistency token: answer from at least this revision (ASCII digits, "
        "at most 18); the larger of it and the body's min_revision applies",
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    },
    "X-Groupgate-Tenant": {
        "description": "the tenant, when the credential is not bound to one",
        "schema": {"type": "string"},
    },
    "Idempotency-Key": {
        "description": "required on POST /v1/approvals: the same key of the same subject "
        "returns the same flow (1 to 255 visible ASCII characters)",
        "required": True,
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    },
    "X-Request-ID": {
        "description": "echoed on every answer of the endpoint, problems included (AuthZEN "
        "1.0 §10.1.3; printable ASCII, at most 256 characters)",
        "schema": {"type": "string", "maxLength": 256},
    },
    "X-Original-Method": {
        "description": "the original request's method (gateway_kind nginx, haproxy)",
        "schema": {"type": "string"},
    },
    "X-Original-URI": {
        "description": "the original request's URI (gateway_kind nginx, haproxy)",
        "schema": {"type": "string"},
    },
    "X-Forwarded-Method": {
        "description": "the original request's method (gateway_kind caddy, traefik)",
        "schema": {"type": "string"},
    },
    "X-Forwarded-Uri": {
        "description": "the original request's URI (gateway_kind caddy, traefik)",
        "schema": {"type": "string"},
    },
}
_DECISION_HEADERS = ("X-Groupgate-Min-Revision",)
_AUTHZEN_HEADERS = ("X-Groupgate-Min-Revision", "X-Groupgate-Tenant", "X-Request-ID")
_GATEWAY_HEADERS = (
    "X-Original-Method",
    "X-Original-URI",
    "X-Forwarded-Method",
    "X-Forwarded-Uri",
    "X-Groupgate-Min-Revision",
)

GATEWAY_CONTRACT = (
    "Forward-auth (module `groupgate.api.forward_auth`, `src/groupgate/api/forward_auth.py`): "
    "the original request "
    "is read only from the headers the configured `gateway_kind`'s proxy writes itself: "
    "`X-Original-Method` and `X-Original-URI` (nginx, haproxy), `X-Forwarded-Method` and "
    "`X-Forwarded-Uri` (caddy, traefik), or, for envoy, this request's own method and the "
    "path after `/v1/gateway/envoy`. The subject is `Authorization: Bearer <subject JWT>` "
    "(its tenant claim picks the tenant); `X-Groupgate-Key` is optional but, when sent, must "
    "be valid and its tenant binding applies; `X-Groupgate-Min-Revision` asks for a fresh "
    "enough answer. Refused with a 403 before any token is read: the endpoint of another "
    "kind, a repeated `Authorization`, `X-Groupgate-Key`, `X-Groupgate-Min-Revision` or "
    "original-request header, both header families present and disagreeing, the configured "
    "family missing, a method that is not an HTTP token, a non-normalised path (`..`, `.`, "
    "`//`, backslashes, encoded `/`, `\\`, `.` or NUL) and a malformed min-revision. `HEAD` "
    "is decided as `GET`; `OPTIONS` gets no exemption (a preflight has no token: 401). Then "
    "the route table maps the method and path to a type and action, and the answer is "
    "whether the subject may do it on some entity of that type. Every answer has an empty "
    "body."
)


class Op(NamedTuple):
    """One row of the table: an operation on `path` for each of `methods`."""

    path: str
    methods: tuple[str, ...]
    op_id: str
    summary: str
    request: str | None
    response: str | None
    #: Names in `PROBLEMS` (the `FRONT` ones are added to every operation).
    errors: tuple[str, ...] = ()
    #: Names in `HEADERS`: the request headers read besides the credentials.
    headers: tuple[str, ...] = ()
    ok: str = "200"


_BASE = "/v1/admin/tenants"
_ENTITY = _BASE + "/{tenant}/{kind}/{id}"
_RESOURCE = _BASE + "/{tenant}/resources/{type}/{id}"

OPERATIONS: tuple[Op, ...] = (
    Op(
        "/v1/check",
        ("post",),
        "check",
        "Decide one check",
        "Check",
        "CheckAnswer",
        _DECIDE,
        _DECISION_HEADERS,
    ),
    Op(
        "/v1/checks",
        ("post",),
        "checks",
        "Decide a batch of checks",
        "Checks",
        "CheckAnswers",
        (*_DECIDE, "batch-too-large"),
        _DECISION_HEADERS,
    ),
    Op(
        "/v1/filter",
        ("post",),
        "filter",
        "Restriction filter for list queries",
        "FilterQuery",
        "FilterAnswer",
        _DECIDE,
        _DECISION_HEADERS,
    ),
    Op(
        "/v1/purchases/evaluate",
        ("post",),
        "purchase",
        "Does a purchase need approval?",
        "Purchase",
        "PurchaseAnswer",
        (*_DECIDE, "unknown-company", "purchase-error"),
        _DECISION_HEADERS,
    ),
    Op(
        "/v1/purchases/commit",
        ("post",),
        "purchaseCommit",
        "Record an order's spend against limits and budgets (idempotent by order_id)",
        "Commit",
        "CommitAnswer",
        (*_DECIDE, "unknown-subject-or-company", "purchase-refused", "not-replicated"),
    ),
    Op(
        "/v1/purchases/release",
        ("post",),
        "purchaseRelease",
        "Release an order's spend (idempotent)",
        "Release",
        "ReleaseAnswer",
        (*_DECIDE, "unknown-order", "not-replicated"),
    ),
    Op(
        "/v1/approvals",
        ("post",),
        "requestApproval",
        "Request approval of a purchase (Idempotency-Key required): 201 a flow, 200 allow",
        "ApprovalRequest",
        "ApprovalFlow",
        (
            *_DECIDE,
            "idempotency-key",
            "purchase-denied",
            "unknown-flow",
            "flow-conflict",
            "purchase-error",
        ),
        ("Idempotency-Key",),
        ok="201",
    ),
    Op(
        "/v1/approvals",
        ("get",),
        "listApprovals",
        "Flows an approver may act on now (?approver=S) or a requester asked for "
        "(?requester=S); &status, &limit, &cursor, &tenant",
        None,
        "ApprovalList",
        _DECIDE,
    ),
    Op(
        "/v1/approvals/{id}",
        ("get",),
        "getApproval",
        "An approval flow, with who may act on each open tier now (?tenant=)",
        None,
        "ApprovalFlow",
        (*_DECIDE, "unknown-flow", "flow-conflict"),
    ),
    *(
        Op(
            f"/v1/approvals/{{id}}/{verb}",
            ("post",),
            f"{verb}Approval",
            summary,
            body,
            "ApprovalFlow",
            (*_DECIDE, "not-eligible", "unknown-flow", "flow-conflict"),
        )
        for verb, summary, body in (
            ("approve", "Approve the flow's current tier", "ApprovalAct"),
            ("decline", "Decline the flow (DECLINED)", "ApprovalDecline"),
            ("cancel", "Withdraw the flow as its requester (CLOSED)", "ApprovalCancel"),
        )
    ),
    Op(
        "/access/v1/evaluation",
        ("post",),
        "authzenEvaluation",
        "AuthZEN access evaluation",
        "Evaluation",
        "Decision",
        _AUTHZEN,
        _AUTHZEN_HEADERS,
    ),
    Op(
        "/access/v1/evaluations",
        ("post",),
        "authzenEvaluations",
        "AuthZEN access evaluations",
        "Evaluations",
        "Decisions",
        (*_AUTHZEN, "batch-too-large"),
        _AUTHZEN_HEADERS,
    ),
    *(
        Op(
            f"/access/v1/search/{entity}",
            ("post",),
            f"search{entity.title()}",
            f"AuthZEN {entity} search",
            "Search",
            "SearchAnswer",
            (*_AUTHZEN, "token-mismatch"),
            _AUTHZEN_HEADERS,
        )
        for entity in ("subject", "resource", "action")
    ),
    Op(
        "/.well-known/authzen-configuration",
        ("get",),
        "authzenConfiguration",
        "AuthZEN PDP metadata",
        None,
        "Object",
        (),
        ("X-Request-ID",),
    ),
    Op(
        "/.well-known/authzen-configuration/{tenant}",
        ("get",),
        "authzenTenantConfiguration",
        "AuthZEN PDP metadata of a tenant (PDP identifier <base>/<tenant>)",
        None,
        "Object",
        ("not-a-tenant-id",),
        ("X-Request-ID",),
    ),
    Op(
        "/v1/gateway/auth",
        ANY,
        "gatewayAuth",
        "Forward-auth for nginx auth_request, HAProxy, Caddy and Traefik",
        None,
        None,
        (),
        _GATEWAY_HEADERS,
    ),
    Op(
        "/auth",
        ANY,
        "gatewayAuthShort",
        "Forward-auth (short path)",
        None,
        None,
        (),
        _GATEWAY_HEADERS,
    ),
    Op(
        "/v1/gateway/envoy/{path}",
        ANY,
        "gatewayEnvoy",
        "Envoy ext_authz HTTP service",
        None,
        None,
        (),
        ("X-Groupgate-Min-Revision",),
    ),
    Op(
        _BASE,
        ("get",),
        "listTenants",
        "List tenants",
        None,
        "TenantList",
        ("duplicate-header", "unauthorized", "not-admin", "store-unavailable"),
    ),
    Op(
        _BASE,
        ("post",),
        "createTenant",
        "Create an empty tenant",
        "NewTenant",
        "CreatedTenant",
        (
            "duplicate-header",
            "unauthorized",
            "not-admin",
            "invalid-json",
            "body-too-large",
            "not-json",
            "unprocessable",
            "tenant-exists",
            "write-conflict",
            "not-replicated",
            "graph-rule",
            "store-unavailable",
        ),
        ok="201",
    ),
    Op(
        _BASE + "/{tenant}",
        ("delete",),
        "deleteTenant",
        "Delete a tenant",
        None,
        "Revision",
        (*_ADMIN, "unknown-entity", "write-conflict", "not-replicated"),
    ),
    Op(
        _BASE + "/{tenant}/import",
        ("post",),
        "importGraph",
        "Replace a tenant's graph (JSON or YAML)",
        "GraphDocument",
        "Revision",
        (
            *_ADMIN,
            "invalid-json",
            "invalid-yaml",
            "import-too-large",
            "not-json-yaml",
            "write-conflict",
            "not-replicated",
            "graph-rule",
        ),
    ),
    Op(
        _BASE + "/{tenant}/export",
        ("get",),
        "exportGraph",
        "Export a tenant's graph document (streamed, at one revision)",
        None,
        "GraphDocument",
        (*_ADMIN, "unknown-entity", "export-conflict"),
    ),
    Op(
        _BASE + "/{tenant}/settings",
        ("put",),
        "putSettings",
        "Tenant settings",
        "Settings",
        "Revision",
        _WRITE,
    ),
    Op(
        _BASE + "/{tenant}/subjects/{id}/memberships",
        ("post",),
        "addMembership",
        "Add a membership",
        "NewMembership",
        "Revision",
        _WRITE,
    ),
    Op(
        _BASE + "/{tenant}/subjects/{id}/memberships/{group}",
        ("delete",),
        "removeMembership",
        "Remove a membership",
        None,
        "Revision",
        (*_ADMIN, "unknown-entity", "write-conflict", "not-replicated"),
    ),
    Op(
        _BASE + "/{tenant}/delegations",
        ("post",),
        "putDelegation",
        "Create or replace a delegation of approval",
        "Delegation",
        "CreatedDelegation",
        _WRITE,
        ok="201",
    ),
    Op(
        _BASE + "/{tenant}/delegations",
        ("get",),
        "listDelegations",
        "The tenant's delegations",
        None,
        "DelegationList",
        (*_ADMIN, "unknown-entity"),
    ),
    Op(
        _BASE + "/{tenant}/delegations/{id}",
        ("delete",),
        "deleteDelegation",
        "Delete a delegation",
        None,
        "Revision",
        (*_ADMIN, "unknown-entity", "write-conflict", "not-replicated"),
    ),
    Op(
        _RESOURCE,
        ("put",),
        "putResource",
        "Create or replace a held resource entity",
        "ResourceEntity",
        "Revision",
        (*_WRITE, "id-mismatch"),
    ),
    Op(
        _RESOURCE,
        ("get",),
        "getResource",
        "Read a held resource entity",
        None,
        "Object",
        (*_ADMIN, "unknown-entity"),
    ),
    Op(
        _RESOURCE,
        ("delete",),
        "deleteResource",
        "Delete a held resource entity",
        None,
        "Revision",
        (*_ADMIN, "unknown-entity", "write-conflict", "not-replicated"),
    ),
    Op(
        _ENTITY,
        ("put",),
        "putEntity",
        "Create or replace a subject, group, company or vendor (the schema by {kind})",
        "Entity",
        "Revision",
        (*_WRITE, "id-mismatch"),
    ),
    Op(
        _ENTITY,
        ("get",),
        "getEntity",
        "Read a subject, group, company or vendor",
        None,
        "Object",
        (*_ADMIN, "unknown-entity"),
    ),
    Op(
        _ENTITY,
        ("delete",),
        "deleteEntity",
        "Delete a subject, group, company or vendor",
        None,
        "Revision",
        (*_ADMIN, "unknown-entity", "write-conflict", "not-replicated", "graph-rule"),
    ),
    Op(
        "/v1/admin/policies/reload",
        ("post",),
        "reloadPolicies",
        "Reload the policy set (the last good one stays when the new one is invalid)",
        None,
        "PolicyReload",
        ("duplicate-header", "unauthorized", "not-admin"),
    ),
    Op("/healthz", ("get",), "healthz", "Liveness", None, "Status"),
    Op(
        "/readyz",
        ("get",),
        "readyz",
        "Readiness: store reachable, policy loaded",
        None,
        "Status",
        ("not-ready",),
    ),
    Op("/metrics", ("get",), "metrics", "Prometheus metrics (text format)", None, None),
    Op("/openapi.json", ("get",), "openapi", "This document", None, "Object"),
)
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_OBJ = {"type": "object"}
_ELIGIBLE = {"type": "object", "properties": {"groups": _STRS, "subjects": _STRS}}
_NULLABLE_STR = {"type": ["string", "null"]}

_SCHEMAS: dict[str, Any] = {
    "Object": _OBJ,
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {"type": _STR, "title": _STR, "status": {"type": "integer"}, "detail": _STR},
    },
    "Revision": {
        "type": "object",
        "properties": {
            "revision": {"type": "integer"},
            "replicas": {"type": "integer", "description": "replicas that acknowledged the write"},
        },
    },
    "Status": {
        "type": "object",
        "properties": {"status": _STR, "policies": _ref("PolicyStatus")},
    },
    "PolicyStatus": {
        "type": "object",
        "description": "the policy set in use and the last reload (api/policies.py)",
        "properties": {
            "ok": {"type": "boolean", "description": "the newest set on disk is in use"},
            "digest": _STR,
            "loaded_at": {"type": "number"},
            "error": {**_NULLABLE_STR, "description": "why the newest set was refused"},
            "reloads": {"type": "integer"},
            "failures": {"type": "integer"},
        },
    },
    "PolicyReload": {"type": "object", "properties": {"policies": _ref("PolicyStatus")}},
    "Subject": {"type": "object", "required": ["id"], "properties": {"id": _STR, "type": _STR}},
    "Resource": {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": _STR,
            "id": _NULLABLE_STR,
            "company": _NULLABLE_STR,
            "restrictions": {"type": ["array", "null"], "items": _STR},
            "vendor": _NULLABLE_STR,
            "owner": _NULLABLE_STR,
            "customer": _NULLABLE_STR,
            "properties": _OBJ,
        },
    },
    "Check": {
        "type": "object",
        "required": ["subject", "action", "resource"],
        "additionalProperties": False,
        "properties": {
            "tenant": _STR,
            "subject": _ref("Subject"),
            "action": _STR,
            "resource": _ref("Resource"),
            "context": _OBJ,
            "explain": {"type": "boolean"},
            "min_revision": {"type": "integer", "minimum": 0},
        },
    },
    "Checks": {
        "type": "object",
        "required": ["checks"],
        "properties": {
            "tenant": _STR,
            "subject": _ref("Subject"),
            "action": _STR,
            "resource": _ref("Resource"),
            "explain": {"type": "boolean"},
            "min_revision": {"type": "integer", "minimum": 0},
            "checks": {"type": "array", "items": _OBJ},
        },
    },
    "CheckAnswer": {
        "type": "object",
        "required": ["allow", "reason", "revision"],
        "properties": {
            "allow": {"type": "boolean"},
            "reason": _STR,
            "group": _STR,
            "revision": {"type": "integer"},
            "explain": _STRS,
            "stale": {"type": "boolean"},
        },
    },
    "CheckAnswers": {
        "type": "object",
        "properties": {"results": {"type": "array", "items": _ref("CheckAnswer")}},
    },
    "FilterQuery": {
        "type": "object",
        "required": ["subject", "action", "resource_type"],
        "properties": {
            "tenant": _STR,
            "subject": _ref("Subject"),
            "action": _STR,
            "resource_type": _STR,
            "min_revision": {"type": "integer"},
        },
    },
    "FilterAnswer": {
        "type": "object",
        "properties": {
            "all": {"type": "boolean"},
            "filters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "restrictions": {"type": ["array", "null"], "items": _STR},
                        "attributes": {"type": "object", "additionalProperties": _STRS},
                        "group": _NULLABLE_STR,
                    },
                },
            },
            "revision": {"type": "integer"},
        },
    },
    "Purchase": {
        "type": "object",
        "required": ["subject", "company", "amount", "currency"],
        "properties": {
            "tenant": _STR,
            "subject": _ref("Subject"),
            "company": _STR,
            "amount": {"type": "string", "pattern": AMOUNT_SYNTAX},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "cost_center": {
                "type": "string",
                "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}$",
                "description": "the cost centre the purchase is booked on: selects the "
                "company's budgets, and approval rules may match it",
            },
            "explain": {
                "type": "boolean",
                "description": "add `explain`: every approval rule of the company, matched "
                "or not, and why",
            },
            "min_revision": {"type": "integer", "minimum": 0},
            "context": _OBJ,
        },
    },
    "Commit": {
        "allOf": [
            {
                "type": "object",
                "required": ["order_id", "subject", "company", "amount", "currency"],
                "additionalProperties": False,
                "properties": {
                    "tenant": _STR,
                    "order_id": {**_STR, "description": "letters, digits and ._:@+- (at most 128)"},
                    "subject": {"oneOf": [_STR, _ref("Subject")]},
                    "company": _STR,
                    "amount": {
                        "type": "string",
                        "pattern": AMOUNT_SYNTAX,
                        "description": "at most 4 decimals not zero, below 900719925474.0992",
                    },
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "cost_center": _STR,
                    "approval_id": {**_STR, "description": "an APPROVED approval flow covering it"},
                },
            },
        ]
    },
    "CommitAnswer": {
        "type": "object",
        "properties": {
            "order_id": _STR,
            "status": {"const": "committed"},
            "approved": {"type": "boolean"},
            "replayed": {"type": "boolean", "description": "the answer of an earlier commit"},
            "totals": {"type": "array", "items": _ref("SpendTotal")},
            "ledger_revision": {"type": "integer"},
            "revision": {"type": "integer"},
        },
    },
    "SpendTotal": {
        "type": "object",
        "properties": {
            "scope": {"enum": ["company", "subject", "budget"]},
            "id": _STR,
            "period": {"enum": ["day", "week", "month", "quarter", "year"]},
            "bucket": {**_STR, "description": "2027-06-15, 2027-W24, 2027-06, 2027-Q2, 2027"},
            "budget": _STR,
            "spent": _OBJ,
            "limit": _OBJ,
        },
    },
    "Release": {
        "type": "object",
        "required": ["order_id"],
        "additionalProperties": False,
        "properties": {"tenant": _STR, "order_id": _STR},
    },
    "ReleaseAnswer": {
        "type": "object",
        "properties": {
            "order_id": _STR,
            "status": {"const": "released"},
            "ledger_revision": {"type": "integer"},
        },
    },
    "PurchaseAnswer": {
        "type": "object",
        "properties": {
            "decision": {"enum": ["allow", "approval_required", "deny"]},
            "rule": {
                **_STR,
                "description": "the built-in rule that decided, or `rule:<id>` when only "
                "approval rules require approval",
            },
            "approvers": {
                **_ELIGIBLE,
                "description": "who may approve the first tier (the requester never)",
            },
            "limit": {"type": ["object", "null"]},
            "tiers": {"type": "array", "items": _ref("PurchaseTier")},
            "rules": {**_STRS, "description": "the ids of the approval rules that matched"},
            "explain": {"type": "array", "items": _ref("RuleExplained")},
            "revision": {"type": "integer"},
            "approval": {
                "type": "object",
                "properties": {"id": _STR, "usable": {"type": "boolean"}, "reason": _NULLABLE_STR},
            },
        },
    },
    "PurchaseTier": {
        "type": "object",
        "description": "one approval tier, approved in order: one approval per list, from a "
        "holder of any of its names (roles of the company or group ids)",
        "properties": {
            "rule": _STR,
            "requires": {"type": "array", "items": _STRS},
            "eligible": _ELIGIBLE,
        },
    },
    "RuleExplained": {
        "type": "object",
        "properties": {
            "rule": _STR,
            "source": {**_STR, "description": "`policy`, or the company whose rules apply"},
            "matched": {"type": "boolean"},
            "why": _STR,
            "requires": {"type": "array", "items": {"type": "array", "items": _STRS}},
        },
    },
    "ApprovalRequest": {
        "type": "object",
        "required": ["subject", "company", "amount", "currency", "cart"],
        "properties": {
            "tenant": _STR,
            "subject": _ref("Subject"),
            "company": _STR,
            "amount": {"type": "string", "pattern": AMOUNT_SYNTAX},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "cart": _ref("Cart"),
            "comment": {"type": "string", "maxLength": 2000},
        },
        "additionalProperties": False,
    },
    "Cart": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": _STR,
            "hash": {"type": "string", "maxLength": 256},
            "cost_center": _STR,
        },
        "additionalProperties": False,
    },
    "ApprovalFlow": {
        "type": "object",
        "description": "a flow (201 created, 200 the Idempotency-Key's flow), or "
        '{"decision": "allow", "rule", "revision"} when the purchase needs no approval',
        "properties": {
            "id": _STR,
            "status": {"enum": ["PENDING", "APPROVED", "DECLINED", "CLOSED", "EXPIRED"]},
            "requester": _STR,
            "company": _STR,
            "amount": {"type": "string", "pattern": AMOUNT_SYNTAX},
            "currency": _STR,
            "cart": _ref("Cart"),
            "rule": _STR,
            "tier": {"type": "integer"},
            "tiers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "rule": _STR,
                        "requires": {"type": "array", "items": _STRS},
                        "approvals": {"type": "array", "items": _OBJ},
                        "eligible": {
                            "type": "object",
                            "properties": {"groups": _STRS, "subjects": _STRS},
                        },
                    },
                },
            },
            "created_at": _STR,
            "expires_at": _STR,
            "ended_at": _NULLABLE_STR,
            "ended_by": _NULLABLE_STR,
            "reason": _NULLABLE_STR,
            "used_by": _NULLABLE_STR,
            "decision": {"enum": ["allow"]},
            "revision": {"type": "integer"},
        },
    },
    "ApprovalList": {
        "type": "object",
        "properties": {
            "approvals": {"type": "array", "items": _ref("ApprovalFlow")},
            "next_cursor": _NULLABLE_STR,
            "revision": {"type": "integer"},
        },
    },
    "ApprovalAct": {
        "type": "object",
        "required": ["subject"],
        "properties": {"tenant": _STR, "subject": _ref("Subject"), "comment": _STR},
        "additionalProperties": False,
    },
    "ApprovalDecline": {
        "type": "object",
        "required": ["subject", "reason"],
        "properties": {"tenant": _STR, "subject": _ref("Subject"), "reason": _STR},
        "additionalProperties": False,
    },
    "ApprovalCancel": {
        "type": "object",
        "required": ["subject"],
        "properties": {"tenant": _STR, "subject": _ref("Subject")},
        "additionalProperties": False,
    },
    "Evaluation": {
        "type": "object",
        "required": ["subject", "action", "resource"],
        "description": "A purchase: `action.name` `purchase` on `resource.type` `carts` "
        "(`resource.id` the cart; `properties`: company, amount, currency, cost_center?). "
        "Allow is `decision: true`; approval required is `decision: false` with "
        "`context.approval` (PurchaseApproval); deny is `decision: false` with the reason.",
        "properties": {"subject": _OBJ, "action": _OBJ, "resource": _OBJ, "context": _OBJ},
    },
    "PurchaseApproval": {
        "type": "object",
        "description": "`context.approval` of an AuthZEN purchase that needs approval: the "
        "approval can be requested (ARAP-style), with the request to send",
        "properties": {
            "rule": _STR,
            "rules": _STRS,
            "tiers": {"type": "array", "items": _ref("PurchaseTier")},
            "requestable": {"type": "boolean"},
            "request": {
                "type": "object",
                "properties": {
                    "method": {"enum": ["POST"]},
                    "href": _STR,
                    "body": {
                        "type": "object",
                        "description": "subject, company, amount, currency and cart "
                        "({id, cost_center?}): the body of POST /v1/approvals",
                    },
                },
            },
        },
    },
    "Evaluations": {
        "type": "object",
        "properties": {
            "subject": _OBJ,
            "action": _OBJ,
            "resource": _OBJ,
            "context": _OBJ,
            "evaluations": {"type": "array", "items": _ref("Evaluation")},
            "options": {
                "type": "object",
                "properties": {
                    "evaluations_semantic": {
                        "enum": ["execute_all", "deny_on_first_deny", "permit_on_first_permit"]
                    }
                },
            },
        },
    },
    "Decision": {
        "type": "object",
        "required": ["decision"],
        "properties": {"decision": {"type": "boolean"}, "context": _OBJ},
    },
    "Decisions": {
        "type": "object",
        "properties": {"evaluations": {"type": "array", "items": _ref("Decision")}},
    },
    "Search": {
        "type": "object",
        "properties": {
            "subject": _OBJ,
            "action": _OBJ,
            "resource": _OBJ,
            "context": _OBJ,
            "page": {"type": "object", "properties": {"token": _STR, "limit": {"type": "integer"}}},
        },
    },
    "SearchAnswer": {
        "type": "object",
        "properties": {
            "results": {"type": "array", "items": _OBJ},
            "page": {"type": "object", "properties": {"next_token": _STR}},
        },
    },
}


# ----------------------------------------------------------------- admin bodies
# What `groupgate.engine.graph` (`parse_*`) and `groupgate.store.writes` validate. An entity's
# id comes from the path on a single write (an `id` in the body must agree); in a graph
# document it is required (`_with_id`).

_ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}$"}
_NULLABLE_ID = {"type": ["string", "null"], "pattern": _ID["pattern"]}
_TEXT = {"type": "string", "minLength": 1, "pattern": r"\S"}
_RESTRICTIONS = {"type": ["array", "null"], "items": _TEXT, "maxItems": 256}
_GROUP_ID = {
    "type": "string",
    "maxLength": 300,
    "description": "a group id: `<id>` or `<company or vendor>/<role>`",
}
_ROLE = {
    "type": "string",
    "description": "a predefined customer group: admin, contact, buyer or requester "
    "(case-insensitive; aliases such as Purchaser are accepted)",
}
_RULE_NAME = {
    "type": "string",
    "description": "a predefined role (admin, contact, buyer, requester; aliases accepted) "
    "or a customer group of the company",
}
_PERMISSION = {"enum": ["ro", "rw", "same_customer"]}
_GRANT = {
    "oneOf": [
        _TEXT,
        {
            "type": "object",
            "required": ["action"],
            "additionalProperties": False,
            "properties": {"action": _TEXT, "when": {"type": "string"}},
        },
    ],
    "description": "a named action of the type, optionally under a condition of the policy",
}
_ACTIONS = {"type": "object", "additionalProperties": {"type": "array", "items": _GRANT}}


def _with_id(name: str) -> dict[str, Any]:
    return {"allOf": [_ref(name), {"required": ["id"]}]}


ADMIN_SCHEMAS: dict[str, Any] = {
    # Under `allOf`: the Purchase schema's `amount` stays the one top-level `amount` property
    # (tests/api/test_hostile.py finds the amount syntax there).
    "Money": {
        "allOf": [
            {
                "type": "object",
                "required": ["amount", "currency"],
                "additionalProperties": False,
                "properties": {
                    "amount": {"type": "string", "pattern": AMOUNT_SYNTAX},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                },
            }
        ]
    },
    "Settings": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "company_contact_propagation": {
                "enum": ["UPWARD", "DOWNWARD", "DISABLED"],
                "default": "UPWARD",
                "description": "case-insensitive",
            },
            "default_customer_groups": {"type": "array", "items": _ID},
            "customer_group_support": {"type": "boolean", "default": True},
            "time_zone": {
                **_STR,
                "default": "UTC",
                "description": "IANA name: the calendar of spending periods and budgets",
            },
        },
    },
    "SpendingLimit": {
        "allOf": [
            {
                "type": "object",
                "required": ["period", "amount", "currency"],
                "additionalProperties": False,
                "properties": {
                    "period": {"enum": ["day", "week", "month", "quarter", "year"]},
                    "amount": {"type": "string", "pattern": AMOUNT_SYNTAX},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                },
                "description": "at most one per period and currency",
            },
        ]
    },
    "Budget": {
        "allOf": [
            {
                "type": "object",
                "required": ["id", "cost_center", "from", "until", "amount", "currency"],
                "additionalProperties": False,
                "properties": {
                    "id": _ID,
                    "cost_center": _ID,
                    "from": {"type": "string", "format": "date"},
                    "until": {"type": "string", "format": "date", "description": "included"},
                    "amount": {"type": "string", "pattern": AMOUNT_SYNTAX},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                },
            },
        ]
    },
    "NewTenant": {
        "type": "object",
        "required": ["tenant"],
        "additionalProperties": False,
        "properties": {"tenant": _ID, "settings": {"oneOf": [_ref("Settings"), {"type": "null"}]}},
    },
    "CreatedTenant": {
        "type": "object",
        "properties": {
            "tenant": _STR,
            "revision": {"type": "integer"},
            "replicas": {"type": "integer", "description": "replicas that acknowledged the write"},
        },
    },
    "TenantList": {"type": "object", "properties": {"tenants": _STRS}},
    "Vendor": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {**_ID, "description": "no '/'"},
            "name": {**_TEXT, "description": "defaults to the id"},
        },
        "description": "creates the vendor's four groups (<vendor>/vendor.order.manager, ...)",
    },
    "Company": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "name": _TEXT,
            "parent": _NULLABLE_ID,
            "account_limit": {"oneOf": [_ref("Money"), {"type": "null"}]},
            "restrictions": _RESTRICTIONS,
            "approval_group": {"type": ["string", "null"]},
            "approval_rules": {
                "type": ["array", "null"],
                "items": _ref("ApprovalRule"),
                "description": "the company's approval rules, for it and its subsidiaries "
                "(unless one sets its own; `[]`: none here and below; absent: inherited)",
            },
            "spending_limits": {"type": ["array", "null"], "items": _ref("SpendingLimit")},
            "budgets": {"type": ["array", "null"], "items": _ref("Budget")},
        },
        "description": "creates the company's predefined groups <company>/admin, /contact, "
        "/buyer, /requester",
    },
    "ApprovalRule": {
        "type": "object",
        "required": ["id", "tiers"],
        "additionalProperties": False,
        "description": "matches when every condition given holds; its tiers follow the "
        "built-in requirement (SPEC section 5)",
        "properties": {
            "id": _ID,
            "when": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "amount_over": {
                        "type": "string",
                        "pattern": AMOUNT_SYNTAX,
                        "description": "needs `currency`",
                    },
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "cost_center": {"type": "array", "items": _ID, "minItems": 1},
                },
            },
            "requesters": {
                "type": "array",
                "items": _RULE_NAME,
                "minItems": 1,
                "description": "the rule applies only to requesters holding one of these",
            },
            "tiers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 5,
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "array", "minItems": 1, "items": _RULE_NAME},
                },
                "description": "approved in order; a tier is ALL of its lists, a list ANY of "
                "its names",
            },
        },
    },
    "Group": {
        "type": "object",
        "required": ["name", "kind"],
        "additionalProperties": False,
        "properties": {
            "id": {**_ID, "description": "no '/'; defaults to a slug of the name"},
            "name": _TEXT,
            "description": _STR,
            "kind": {"enum": ["user", "customer"]},
            "role": {**_TEXT, "description": "a role template of the policy"},
            "access": {
                "type": "object",
                "additionalProperties": {
                    "enum": ["none", "read", "manage"],
                    "description": "case-insensitive; none removes the role's grant",
                },
                "description": "resource type (one that governs itself) -> level",
            },
            "actions": {**_ACTIONS, "description": "resource type -> named actions"},
            "restrictions": {**_RESTRICTIONS, "description": "user groups only"},
            "company": {**_NULLABLE_ID, "description": "customer groups only"},
            "vendor": {"type": "null"},
            "predefined": {"enum": [False, None]},
        },
    },
    "VendorGroupUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": _GROUP_ID,
            "name": _TEXT,
            "description": _STR,
            "kind": _STR,
            "vendor": _STR,
            "actions": {**_ACTIONS, "description": "only the actions the role may be granted"},
        },
        "description": "the fields an existing vendor group takes (name, description, actions)",
    },
    "Membership": {
        "oneOf": [
            _GROUP_ID,
            {
                "type": "object",
                "required": ["group"],
                "additionalProperties": False,
                "properties": {
                    "group": _GROUP_ID,
                    "permission": {
                        "oneOf": [_PERMISSION, {"type": "array", "items": _PERMISSION}],
                        "description": "ro and rw exclude each other",
                    },
                    "valid_from": {
                        "type": "string",
                        "format": "date-time",
                        "description": "the link holds from this instant (RFC 3339 with an "
                        "offset; kept to the millisecond)",
                    },
                    "valid_until": {
                        "type": "string",
                        "format": "date-time",
                        "description": "the link holds until before this instant; later "
                        "than valid_from",
                    },
                },
            },
        ]
    },
    "NewMembership": {
        "oneOf": [
            {"allOf": [_ref("Membership"), {"type": "object"}]},
            {
                "type": "object",
                "required": ["company"],
                "additionalProperties": False,
                "properties": {"company": _ID, "role": {**_ROLE, "default": "contact"}},
                "description": "join a company's predefined group (assigns the customer)",
            },
        ]
    },
    "SubjectEntity": {
        "type": "object",
        "required": ["kind"],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "kind": {"enum": ["employee", "customer", "vendor_user"]},
            "attributes": {"type": ["object", "null"]},
            "vendor": {**_NULLABLE_ID, "description": "required for, and only for, a vendor_user"},
            "groups": {"type": ["array", "null"], "items": _ref("Membership")},
            "companies": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "array", "items": _ROLE},
                "description": "customers only: company id -> predefined groups",
            },
            "spending_limits": {"type": ["array", "null"], "items": _ref("SpendingLimit")},
        },
        "if": {"properties": {"kind": {"const": "vendor_user"}}},
        "then": {"required": ["vendor"], "properties": {"vendor": _ID}},
        "else": {"properties": {"vendor": {"type": "null"}}},
    },
    "ResourceEntity": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "type": {**_TEXT, "description": "a resource type of the policy"},
            "id": _ID,
            "attributes": {
                "type": ["object", "null"],
                "maxProperties": 64,
                "properties": {
                    "restrictions": _RESTRICTIONS,
                    **{
                        name: {"type": ["string", "null"], "minLength": 1}
                        for name in ("company", "vendor", "owner", "customer")
                    },
                },
                "propertyNames": {"not": {"enum": ["type", "id"]}},
                "description": "any other attribute is a property (any JSON value)",
            },
        },
    },
    "Entity": {
        "description": "by the path's {kind}: subjects, groups, companies, vendors",
        "anyOf": [
            _ref("SubjectEntity"),
            {"anyOf": [_ref("Group"), _ref("VendorGroupUpdate")]},
            _ref("Company"),
            _ref("Vendor"),
        ],
    },
    "GraphDocument": {
        "type": "object",
        "additionalProperties": False,
        "description": "a whole tenant graph (SPEC section 4), validated whole; on the "
        "import path the tenant is the path's",
        "properties": {
            "tenant": _ID,
            "settings": {"oneOf": [_ref("Settings"), {"type": "null"}]},
            "vendors": {"type": ["array", "null"], "items": _with_id("Vendor")},
            "companies": {"type": ["array", "null"], "items": _with_id("Company")},
            "groups": {
                "type": ["array", "null"],
                "items": {"anyOf": [_ref("Group"), _ref("VendorGroupUpdate")]},
            },
            "subjects": {"type": ["array", "null"], "items": _with_id("SubjectEntity")},
            "resources": {
                "type": ["array", "null"],
                "items": {"allOf": [_ref("ResourceEntity"), {"required": ["type", "id"]}]},
            },
            "delegations": {"type": ["array", "null"], "items": _ref("Delegation")},
        },
    },
    "Delegation": {
        "type": "object",
        "additionalProperties": False,
        "description": "while it runs, `to` may approve in `company` what `from` may (never "
        "their own purchase); both customers of the company; RFC 3339 times, from < until",
        "required": ["from", "to", "company", "from_time", "until_time"],
        "properties": {
            "id": _ID,
            "from": _ID,
            "to": _ID,
            "company": _ID,
            "from_time": {"type": "string", "format": "date-time"},
            "until_time": {"type": "string", "format": "date-time"},
        },
    },
    "CreatedDelegation": {
        "type": "object",
        "properties": {
            "id": _STR,
            "revision": {"type": "integer"},
            "replicas": {"type": "integer", "description": "replicas that acknowledged the write"},
        },
    },
    "DelegationList": {
        "type": "object",
        "properties": {
            "delegations": {"type": "array", "items": _ref("Delegation")},
            "revision": {"type": "integer"},
        },
    },
}

SCHEMAS: dict[str, Any] = {**_SCHEMAS, **ADMIN_SCHEMAS}


def _parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [{"name": n, "in": "path", "required": True, "schema": _STR} for n in names]


def _header(name: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, **HEADERS[name]}


_CHALLENGE_HEADER = {
    "WWW-Authenticate": {
        "description": 'the challenge: Bearer realm="groupgate" (with error="invalid_token" '
        "when a token was refused, on the gateway)",
        "schema": _STR,
    }
}


def _problems(names: tuple[str, ...], shared: bool = True) -> dict[str, dict[str, Any]]:
    """The problem+json responses of `names` and the front's, one per status; a status only
    the front answers is a reference to `components.responses` when `shared`."""
    by_status: dict[int, list[Problem]] = {}
    for name in (*names, *FRONT):
        found = PROBLEMS[name]
        by_status.setdefault(found.status, []).append(found)
    out: dict[str, dict[str, Any]] = {}
    for status in sorted(by_status):
        listed = by_status[status]
        if shared and all(p in _FRONT_PROBLEMS for p in listed):
            out[str(status)] = {"$ref": f"#/components/responses/Front{status}"}
            continue
        slugs = list(dict.fromkeys(TYPE_PREFIX + p.slug for p in listed))
        schema = {"allOf": [_ref("Problem"), {"properties": {"type": {"enum": slugs}}}]}
        response: dict[str, Any] = {
            "description": "; ".join(f"{p.description} ({p.slug})" for p in listed),
            "content": {"application/problem+json": {"schema": schema}},
        }
        if status == 401:
            response["headers"] = dict(_CHALLENGE_HEADER)
        out[str(status)] = response
    return out


#: The gateway's own answers: a status and headers, never a body.
GATEWAY_ANSWERS: dict[str, dict[str, Any]] = {
    "200": {
        "description": "allowed: pass the request upstream with these headers",
        "headers": {
            "X-Groupgate-Subject": {"description": "the subject of the token", "schema": _STR},
            "X-Groupgate-Tenant": {"description": "the tenant decided in", "schema": _STR},
        },
    },
    "401": {
        "description": "no token, or a token (or X-Groupgate-Key) refused",
        "headers": dict(_CHALLENGE_HEADER),
    },
    "403": {
        "description": "refused by the trust rules above, no route for the method and path, "
        "a tenant the caller may not use or that is unknown, a subject or tenant that is not "
        "visible ASCII, or denied",
    },
    "404": {
        "description": "the request target names neither gateway endpoint (reached only "
        "when the router and `forward_auth.endpoint` read a target differently)",
    },
    "503": {"description": "store unreachable past the staleness bound (fail closed)"},
}


def _gateway_responses() -> dict[str, Any]:
    out = {code: dict(answer) for code, answer in GATEWAY_ANSWERS.items()}
    for code, problem in _problems((), shared=False).items():
        if code in out:  # the same status from the front: then with a problem body
            found = out[code]
            found["description"] += "; or, from the HTTP front: " + problem["description"]
            found["content"] = problem["content"]
        else:
            out[code] = {"$ref": f"#/components/responses/Front{code}"}
    return dict(sorted(out.items()))


def _ok(op: Op) -> dict[str, Any]:
    if op.path == "/metrics":
        content = {"text/plain": {"schema": _STR}}
        return {"description": "Prometheus text format 0.0.4", "content": content}
    ok: dict[str, Any] = {"description": "Created" if op.ok == "201" else "OK"}
    if op.response is not None:
        ok.update(_json(_ref(op.response)))
    if op.op_id == "exportGraph":
        ok["description"] = EXPORT_ANSWER
        ok["headers"] = {
            "X-Groupgate-Revision": {"description": "the revision exported", "schema": _STR}
        }
    return ok


EXPORT_ANSWER = (
    "the graph document an import takes, read at one revision: predefined groups are left "
    "out (they come with their companies and vendors), customised vendor groups are written "
    "as the entries that customise them. A document within `export_buffer_bytes` comes whole "
    "(a write meanwhile restarts the export); a larger one is streamed (chunked) as it is "
    "read, and a write landing after its first byte cuts the body short (no final chunk): "
    "a client that read it to the end without an error has one whole revision"
)


def _request_body(op: Op) -> dict[str, Any]:
    schema = _ref(op.request or "Object")
    content = {"application/json": {"schema": schema}}
    if op.op_id == "importGraph":
        content["application/yaml"] = {"schema": schema}
    return {"required": True, "content": content}


def _security(op: Op) -> list[dict[str, list[str]]] | None:
    if op.path.startswith("/v1/gateway/") or op.path == "/auth":
        return [{"subjectJwt": [], "keyHeader": []}, {"subjectJwt": []}]
    if op.path.startswith(("/.well-known/", "/healthz", "/readyz", "/metrics", "/openapi")):
        return []
    return None  # the document's


def operation(op: Op, method: str) -> dict[str, Any]:
    """The operation object of `op` for `method`."""
    gateway = op.methods == ANY  # only the gateway endpoints take every method
    responses = {op.ok: _ok(op), **(_gateway_responses() if gateway else _problems(op.errors))}
    if "X-Request-ID" in op.headers:
        echo = {"X-Request-ID": {"description": "the request's, echoed", "schema": _STR}}
        for response in responses.values():
            if "$ref" in response:
                continue  # the front's refusals come before the endpoint: no echo
            response["headers"] = {**response.get("headers", {}), **echo}
    found: dict[str, Any] = {
        "operationId": op.op_id if len(op.methods) == 1 else f"{op.op_id}_{method}",
        "summary": op.summary,
        "responses": responses,
    }
    if gateway:
        found["description"] = GATEWAY_CONTRACT
    params = [*_parameters(op.path), *(_header(name) for name in op.headers)]
    if params:
        found["parameters"] = params
    if op.request is not None:
        found["requestBody"] = _request_body(op)
    security = _security(op)
    if security is not None:
        found["security"] = security
    return found


def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        for method in op.methods:
            paths.setdefault(op.path, {})[method] = operation(op, method)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "groupgate",
            "version": "0.1.0",
            "description": "Authorization sidecar (policy decision point) for B2B commerce. "
            "Errors are application/problem+json (RFC 9457) whose `type` is "
            f"`{TYPE_PREFIX}<slug>`; each response lists the slugs it may carry. The HTTP "
            "front's refusals (malformed HTTP, timeouts, limits, the connection cap) apply "
            "to every operation.",
        },
        "components": {
            "schemas": SCHEMAS,
            "responses": {f"Front{code}": found for code, found in _problems((), False).items()},
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key or a service JWT (admin calls: an admin one)",
                },
                "keyHeader": {"type": "apiKey", "in": "header", "name": "X-Groupgate-Key"},
                "subjectJwt": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "the end user's token, verified per the jwt_* settings",
                },
            },
        },
        "security": [{"apiKey": []}, {"keyHeader": []}, {}],
        "paths": paths,
    }
