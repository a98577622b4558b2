"""The OpenAPI 3.1 document of the sidecar, built from one table of operations.

`tests/api/test_openapi.py` compares the document's paths and methods with the application's
router, so an endpoint cannot be added or removed without this table following. The gateway
endpoints accept any method (`ANY` below expands to every HTTP method).
"""

from __future__ import annotations

from typing import Any

from groupgate.engine.graph import AMOUNT_SYNTAX

ANY = ("get", "post", "put", "patch", "delete", "head", "options")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


ERRORS = {
    "400": _problem("invalid JSON (syntax, duplicate keys, depth, numbers)"),
    "401": _problem("missing or invalid credential"),
    "403": _problem("credential not allowed here (tenant binding, admin)"),
    "404": _problem("unknown tenant or entity"),
    "413": _problem("body or batch too large"),
    "422": _problem("a field is missing, mistyped, unknown, or names nothing"),
    "503": _problem("store unavailable beyond the staleness bound (fail closed)"),
}
#: The AuthZEN endpoints' errors: 400 for what the others answer 422 or 415 (AuthZEN 1.0
#: §10.1.1, §10.1.2; `authzen.spec_error`). Each answer, errors included, carries the request's
#: `X-Request-ID` back (§10.1.3).
AUTHZEN_ERRORS = {
    **{code: found for code, found in ERRORS.items() if code != "422"},
    "400": _problem(
        "invalid JSON, or a field missing, mistyped or naming nothing (the native API's 422)"
    ),
}

# (path, methods, operation id, summary, request schema or None, response schema or None)
OPERATIONS: tuple[tuple[str, tuple[str, ...], str, str, str | None, str | None], ...] = (
    ("/v1/check", ("post",), "check", "Decide one check", "Check", "CheckAnswer"),
    ("/v1/checks", ("post",), "checks", "Decide a batch of checks", "Checks", "CheckAnswers"),
    (
        "/v1/filter",
        ("post",),
        "filter",
        "Restriction filter for list queries",
        "FilterQuery",
        "FilterAnswer",
    ),
    (
        "/v1/purchases/evaluate",
        ("post",),
        "purchase",
        "Does a purchase need approval?",
        "Purchase",
        "PurchaseAnswer",
    ),
    (
        "/access/v1/evaluation",
        ("post",),
        "authzenEvaluation",
        "AuthZEN access evaluation",
        "Evaluation",
        "Decision",
    ),
    (
        "/access/v1/evaluations",
        ("post",),
        "authzenEvaluations",
        "AuthZEN access evaluations",
        "Evaluations",
        "Decisions",
    ),
    (
        "/access/v1/search/subject",
        ("post",),
        "searchSubject",
        "AuthZEN subject search",
        "Search",
        "SearchAnswer",
    ),
    (
        "/access/v1/search/resource",
        ("post",),
        "searchResource",
        "AuthZEN resource search",
        "Search",
        "SearchAnswer",
    ),
    (
        "/access/v1/search/action",
        ("post",),
        "searchAction",
        "AuthZEN action search",
        "Search",
        "SearchAnswer",
    ),
    (
        "/.well-known/authzen-configuration",
        ("get",),
        "authzenConfiguration",
        "AuthZEN PDP metadata",
        None,
        "Object",
    ),
    (
        "/.well-known/authzen-configuration/{tenant}",
        ("get",),
        "authzenTenantConfiguration",
        "AuthZEN PDP metadata of a tenant (PDP identifier <base>/<tenant>)",
        None,
        "Object",
    ),
    (
        "/v1/gateway/auth",
        ANY,
        "gatewayAuth",
        "Forward-auth for nginx auth_request and Traefik",
        None,
        None,
    ),
    ("/auth", ANY, "gatewayAuthShort", "Forward-auth (short path)", None, None),
    ("/v1/gateway/envoy/{path}", ANY, "gatewayEnvoy", "Envoy ext_authz HTTP service", None, None),
    ("/v1/admin/tenants", ("get",), "listTenants", "List tenants", None, "Object"),
    (
        "/v1/admin/tenants",
        ("post",),
        "createTenant",
        "Create an empty tenant",
        "Object",
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}",
        ("delete",),
        "deleteTenant",
        "Delete a tenant",
        None,
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}/import",
        ("post",),
        "importGraph",
        "Replace a tenant's graph (JSON or YAML)",
        "Object",
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}/settings",
        ("put",),
        "putSettings",
        "Tenant settings",
        "Object",
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}/subjects/{id}/memberships",
        ("post",),
        "addMembership",
        "Add a membership",
        "Object",
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}/subjects/{id}/memberships/{group}",
        ("delete",),
        "removeMembership",
        "Remove a membership",
        None,
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}/resources/{type}/{id}",
        ("put",),
        "putResource",
        "Create or replace a held resource entity",
        "Object",
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}/resources/{type}/{id}",
        ("get",),
        "getResource",
        "Read a held resource entity",
        None,
        "Object",
    ),
    (
        "/v1/admin/tenants/{tenant}/resources/{type}/{id}",
        ("delete",),
        "deleteResource",
        "Delete a held resource entity",
        None,
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}/{kind}/{id}",
        ("put",),
        "putEntity",
        "Create or replace a subject, group, company or vendor",
        "Object",
        "Revision",
    ),
    (
        "/v1/admin/tenants/{tenant}/{kind}/{id}",
        ("get",),
        "getEntity",
        "Read a subject, group, company or vendor",
        None,
        "Object",
    ),
    (
        "/v1/admin/tenants/{tenant}/{kind}/{id}",
        ("delete",),
        "deleteEntity",
        "Delete a subject, group, company or vendor",
        None,
        "Revision",
    ),
    ("/healthz", ("get",), "healthz", "Liveness", None, "Object"),
    ("/readyz", ("get",), "readyz", "Readiness: store reachable, policy loaded", None, "Object"),
    ("/metrics", ("get",), "metrics", "Prometheus metrics (text format)", None, None),
    ("/openapi.json", ("get",), "openapi", "This document", None, "Object"),
)

_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_OBJ = {"type": "object"}
_NULLABLE_STR = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "Object": _OBJ,
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {"type": _STR, "title": _STR, "status": {"type": "integer"}, "detail": _STR},
    },
    "Revision": {"type": "object", "properties": {"revision": {"type": "integer"}}},
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
        },
    },
    "PurchaseAnswer": {
        "type": "object",
        "properties": {
            "decision": {"enum": ["allow", "approval_required", "deny"]},
            "rule": _STR,
            "approvers": {"type": "object", "properties": {"groups": _STRS, "subjects": _STRS}},
            "limit": {"type": ["object", "null"]},
            "revision": {"type": "integer"},
        },
    },
    "Evaluation": {
        "type": "object",
        "required": ["subject", "action", "resource"],
        "properties": {"subject": _OBJ, "action": _OBJ, "resource": _OBJ, "context": _OBJ},
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


def _parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [{"name": n, "in": "path", "required": True, "schema": _STR} for n in names]


def _errors(path: str) -> dict[str, Any]:
    if path.startswith(("/access/", "/.well-known/authzen-configuration")):
        return AUTHZEN_ERRORS
    return ERRORS


def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for path, methods, op_id, summary, request, response in OPERATIONS:
        for method in methods:
            ok: dict[str, Any] = {"description": "OK"}
            if response is not None:
                ok.update(_json(_ref(response)))
            operation: dict[str, Any] = {
                "operationId": op_id if len(methods) == 1 else f"{op_id}_{method}",
                "summary": summary,
                "responses": {"200": ok, **_errors(path)},
            }
            params = _parameters(path)
            if params:
                operation["parameters"] = params
            if request is not None:
                operation["requestBody"] = {"required": True, **_json(_ref(request))}
            paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "groupgate",
            "version": "0.1.0",
            "description": "Authorization sidecar (policy decision point) for B2B commerce.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer"},
                "keyHeader": {"type": "apiKey", "in": "header", "name": "X-Groupgate-Key"},
            },
        },
        "security": [{"apiKey": []}, {"keyHeader": []}, {}],
        "paths": paths,
    }
