"""Admin API under `/v1/admin/`: every write of the `Admin` protocol, each answering the
tenant's new revision and how many replicas acknowledged it, `{"revision": N, "replicas": R}`
(also in the `X-Groupgate-Replicas` header; 0 without replicas). A write fewer replicas
acknowledged in time than it waited for (`write_replicas`, `write_wait_ms`) is a 503
`not-replicated` problem with `revision`, `replicas` and `wanted`: it is applied on the
primary but a failover may lose it, so it is not acknowledged (retry it: writes are
idempotent).

    GET    /v1/admin/tenants                          list tenants
    POST   /v1/admin/tenants                          create {"tenant", "settings"?} (409 if exists)
    DELETE /v1/admin/tenants/{t}                      delete a tenant and its graph
    POST   /v1/admin/tenants/{t}/import               replace the graph (JSON or YAML body)
    GET    /v1/admin/tenants/{t}/export               the graph document, streamed
    PUT    /v1/admin/tenants/{t}/settings             tenant settings
    PUT|GET|DELETE /v1/admin/tenants/{t}/{kind}/{id}  kind: subjects|groups|companies|vendors
    PUT|GET|DELETE /v1/admin/tenants/{t}/resources/{type}/{id}  a held resource entity,
                                                      body {"attributes": {...}}
    POST   /v1/admin/tenants/{t}/subjects/{id}/memberships           add a membership
    DELETE /v1/admin/tenants/{t}/subjects/{id}/memberships/{group}   remove one

Every call needs an admin credential (see `groupgate.auth`); a key bound to tenant A
administers A only (403 elsewhere). A refused write is a 4xx problem whose detail names the
offending entry (`subjects[3].companies.c-sub: ...`) and changes nothing. An entity's id
comes from the path; an `id` in the body must agree with it.

An export is the graph document an import takes, read at one revision (`store/export.py`;
`X-Groupgate-Revision` says which). Its first `export_buffer_bytes` are held back: a write
landing while they are read restarts the export unseen (up to `export_attempts` times, then
409). A larger document is streamed as it is read, a batch of `export_batch` entities at a
time, so memory stays at about one batch plus the held-back bytes whatever the tenant's
size; a write (or a store failure) after the first byte went out aborts the connection
instead of finishing the chunked body, so a client never takes a cut document for a whole.

Imports are read under `max_import_bytes` (not the 1 MiB request limit); YAML bodies
(`application/yaml`, `text/yaml`, `application/x-yaml`) are parsed with a safe loader that
refuses anchors and aliases (no "billion laughs").
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import yaml
from aiohttp import web

from groupgate import log
from groupgate.api import parsing
from groupgate.api.app import STATE, State
from groupgate.api.headers import REPLICAS_HEADER, REVISION, credentials
from groupgate.api.native import json_response
from groupgate.api.problems import InvalidJson, Unprocessable, UnsupportedMedia, guarded
from groupgate.auth import Caller
from groupgate.errors import Conflict, Forbidden, GroupgateError, NotFound
from groupgate.store.export import Moved
from groupgate.store.written import Written

KINDS = {"subjects": "subject", "groups": "group", "companies": "company", "vendors": "vendor"}
YAML_TYPES = frozenset({"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"})


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("anchors and aliases are not accepted")
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if getattr(event, "anchor", None) is not None:
            raise yaml.YAMLError("anchors and aliases are not accepted")
        return super().compose_node(parent, index)


async def _admin(state: State, request: web.Request) -> Caller:
    return await state.auth.admin(*credentials(request.headers))


async def _tenant(request: web.Request) -> tuple[State, str]:
    state = request.app[STATE]
    caller = await _admin(state, request)
    tenant = parsing.ident(request.match_info["tenant"], "tenant")
    if caller.tenant is not None and caller.tenant != tenant:
        raise Forbidden(f"this credential is bound to tenant {caller.tenant!r}")
    return state, tenant


async def _body(state: State, request: web.Request) -> dict[str, Any]:
    limits = state.config.limits
    return await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)


def _revision(written: Written, status: int = 200, **fields: str) -> web.Response:
    body = {**fields, "revision": int(written), "replicas": written.replicas}
    response = json_response(body, status=status)
    response.headers[REPLICAS_HEADER] = str(written.replicas)
    return response


async def list_tenants(request: web.Request) -> web.Response:
    state = request.app[STATE]
    caller = await _admin(state, request)
    tenants = await state.decider.tenants()
    if caller.tenant is not None:
        tenants = [t for t in tenants if t == caller.tenant]
    return json_response({"tenants": tenants})


async def create_tenant(request: web.Request) -> web.Response:
    state = request.app[STATE]
    caller = await _admin(state, request)
    body = await _body(state, request)
    parsing.only(body, frozenset({"tenant", "settings"}), "")
    tenant = parsing.ident(body.get("tenant"), "tenant")
    if caller.tenant is not None and caller.tenant != tenant:
        raise Forbidden(f"this credential is bound to tenant {caller.tenant!r}")
    if tenant in await state.decider.tenants():
        raise Conflict(f"tenant {tenant!r} exists (import a document to replace its graph)")
    document: dict[str, Any] = {"tenant": tenant}
    if body.get("settings") is not None:
        document["settings"] = body["settings"]
    revision = await state.admin.import_graph(tenant, document)
    state.tenants.forget()
    return _revision(revision, status=201, tenant=tenant)


async def delete_tenant(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    revision = await state.admin.delete_tenant(tenant)
    state.tenants.forget()
    return _revision(revision)


async def import_graph(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    limits = state.config.limits
    ctype = request.content_type
    raw = await parsing.read_body(request, limits.max_import_bytes)
    if ctype in YAML_TYPES:
        try:
            document = yaml.load(raw, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            raise InvalidJson(f"invalid YAML: {exc}") from None
        parsing.inspect(document, limits.max_json_depth)
    elif ctype in parsing.JSON_TYPES or ctype.endswith("+json"):
        document = parsing.loads(raw, limits.max_json_depth)
    else:
        raise UnsupportedMedia(f"expected application/json or application/yaml, got {ctype}")
    parsing.expect_object(document)
    revision = await state.admin.import_graph(tenant, document)
    state.tenants.forget()
    return _revision(revision)


async def export_graph(request: web.Request) -> web.StreamResponse:
    """The tenant's graph document: whole when it fits the buffer, else streamed."""
    state, tenant = await _tenant(request)
    limits = state.config.limits
    for _ in range(limits.export_attempts):
        exporter = state.admin.exporter(limits.export_batch)
        chunks = state.admin.export(tenant, exporter)
        held: list[bytes] = []
        size = 0
        try:
            async for chunk in chunks:
                held.append(chunk)
                size += len(chunk)
                if size > limits.export_buffer_bytes:
                    break
            else:
                return web.Response(
                    body=b"".join(held),
                    content_type="application/json",
                    headers={REVISION: str(exporter.revision)},
                )
        except Moved:
            continue
        return await _stream(request, tenant, chunks, held, exporter.revision)
    raise Conflict(
        f"tenant {tenant!r} kept changing: {limits.export_attempts} exports were interrupted "
        "by writes; try again"
    )


async def _stream(
    request: web.Request,
    tenant: str,
    chunks: AsyncGenerator[bytes, None],
    held: list[bytes],
    revision: int | None,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={REVISION: str(revision)})
    response.content_type = "application/json"
    await response.prepare(request)
    try:
        for chunk in held:
            await response.write(chunk)
        held.clear()
        async for chunk in chunks:
            await response.write(chunk)
    except GroupgateError as exc:
        # The status went out with the first byte: all that is left is to cut the body
        # short (no final chunk), which every HTTP client reports as an error.
        log.api.warning("export of tenant %r aborted: %s", tenant, exc.detail)
        if request.transport is not None:
            request.transport.abort()
        return response
    except ConnectionError:
        return response  # the client went away: nothing left to tell it
    finally:
        await chunks.aclose()
    await response.write_eof()
    return response


async def put_settings(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    return _revision(await state.admin.put_settings(tenant, await _body(state, request)))


def _kind(request: web.Request) -> tuple[str, str]:
    kind = KINDS.get(request.match_info["kind"])
    if kind is None:
        raise NotFound(f"no such collection {request.match_info['kind']!r}")
    return kind, request.match_info["id"]


async def put_entity(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    kind, entity_id = _kind(request)
    body = await _body(state, request)
    if body.setdefault("id", entity_id) != entity_id:
        raise Unprocessable(f"id: the body names {body['id']!r}, the path {entity_id!r}")
    admin = state.admin
    writers = {
        "subject": admin.put_subject,
        "group": admin.put_group,
        "company": admin.put_company,
        "vendor": admin.put_vendor,
    }
    return _revision(await writers[kind](tenant, body))


async def get_entity(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    kind, entity_id = _kind(request)
    return json_response(await state.admin.get_entity(tenant, kind, entity_id))


async def delete_entity(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    kind, entity_id = _kind(request)
    admin = state.admin
    deleters = {
        "subject": admin.delete_subject,
        "group": admin.delete_group,
        "company": admin.delete_company,
        "vendor": admin.delete_vendor,
    }
    return _revision(await deleters[kind](tenant, entity_id))


def _resource(request: web.Request) -> tuple[str, str]:
    return request.match_info["type"], request.match_info["id"]


async def put_resource(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    type_id, resource_id = _resource(request)
    body = await _body(state, request)
    for name, value in (("type", type_id), ("id", resource_id)):
        if body.setdefault(name, value) != value:
            raise Unprocessable(f"{name}: the body names {body[name]!r}, the path {value!r}")
    return _revision(await state.admin.put_resource(tenant, body))


async def get_resource(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    return json_response(await state.admin.get_resource(tenant, *_resource(request)))


async def delete_resource(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    return _revision(await state.admin.delete_resource(tenant, *_resource(request)))


async def add_membership(request: web.Request) -> web.Response:
    """Body: `{"group": id, "permission"?}` or `{"company": id, "role": "buyer"}`."""
    state, tenant = await _tenant(request)
    body = await _body(state, request)
    subject = request.match_info["id"]
    return _revision(await state.admin.add_membership(tenant, subject, body))


async def remove_membership(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    subject = request.match_info["id"]
    group = request.match_info["group"]
    return _revision(await state.admin.remove_membership(tenant, subject, group))


def setup(app: web.Application) -> None:
    base = "/v1/admin/tenants"
    kinds = "{kind:subjects|groups|companies|vendors}"
    router = app.router
    router.add_get(base, guarded(list_tenants), name="admin.tenants")
    router.add_post(base, guarded(create_tenant), name="admin.create_tenant")
    router.add_delete(base + "/{tenant}", guarded(delete_tenant), name="admin.delete_tenant")
    router.add_post(base + "/{tenant}/import", guarded(import_graph), name="admin.import_graph")
    router.add_get(base + "/{tenant}/export", guarded(export_graph), name="admin.export_graph")
    router.add_put(base + "/{tenant}/settings", guarded(put_settings), name="admin.settings")
    router.add_post(
        base + "/{tenant}/subjects/{id}/memberships",
        guarded(add_membership),
        name="admin.add_membership",
    )
    router.add_delete(
        base + "/{tenant}/subjects/{id}/memberships/{group:.+}",
        guarded(remove_membership),
        name="admin.remove_membership",
    )
    resource = f"{base}/{{tenant}}/resources/{{type}}/{{id:.+}}"
    router.add_put(resource, guarded(put_resource), name="admin.put_resource")
    router.add_get(resource, guarded(get_resource), name="admin.get_resource")
    router.add_delete(resource, guarded(delete_resource), name="admin.delete_resource")
    # Predefined and vendor group ids contain '/': the id is the rest of the path.
    entity = f"{base}/{{tenant}}/{kinds}/{{id:.+}}"
    router.add_put(entity, guarded(put_entity), name="admin.put")
    router.add_get(entity, guarded(get_entity), name="admin.get")
    router.add_delete(entity, guarded(delete_entity), name="admin.delete")
