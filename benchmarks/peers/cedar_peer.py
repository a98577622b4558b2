"""The tenant as a Cedar policy set and entity store (schema-less), asked through cedarpy.

Encoding, chosen to be the way one would write it in Cedar (roles as entities, relations as
entity attributes), not one policy per group:

- `User::"<id>"` has its groups as parents. A user group has as parents `Role::"T<n>"` (its
  grants on types that ignore restrictions) and `SiteRole::"T<n>"` when unrestricted, or
  `SiteRole::"T<n>@DE"` per restriction value. Groups with the same matrix share `T<n>`.
- Customer groups (predefined and custom) and vendor groups are related through their
  scope: groups with the same matrix share a template `S<n>`, the scope entity lists its
  groups per template (`Company::"c1"` has `S0: [Group::"c1/admin"]`), and one policy per
  template and action reads `principal in resource.company.S0`. The policy count depends
  on the number of distinct matrices, not on the number of groups or companies.
- Actions: `Action::"update"` is in `Action::"lvl_manage"`, `Action::"read"` in
  `Action::"lvl_read"`; named actions (publish, approve) stand alone.
- Each question's resource is an entity `Res::"r<i>"` with `rtype`, `restrictions`, and
  `company`/`vendor` references, loaded into the same pre-parsed `Entities` handle, so a
  request is three uids and no context (the cheapest form of a cedarpy request).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.dataset import Question
from benchmarks.peers import GrantSpec, action_parent, grant_spec
from groupgate.model import Catalog, Graph, GroupKind


@dataclass
class CedarTenant:
    policies_text: str
    entities: list[dict[str, Any]]
    requests: list[dict[str, str]]
    policy_count: int


def _uid(kind: str, ident: str) -> dict[str, str]:
    return {"type": kind, "id": ident}


def _ref(kind: str, ident: str) -> dict[str, dict[str, str]]:
    return {"__entity": _uid(kind, ident)}


def _permits(principal: str, parts: Sequence[tuple[str, tuple[str, ...]]], when: str) -> list[str]:
    out = []
    for action, types in parts:
        listed = ", ".join(json.dumps(t) for t in types)
        extra = f" && {when}" if when else ""
        out.append(
            f"permit(principal{principal}, action in Action::{json.dumps(action)}, resource)\n"
            f"  when {{ [{listed}].contains(resource.rtype){extra} }};"
        )
    return out


def encode(catalog: Catalog, graph: Graph, questions: Sequence[Question]) -> CedarTenant:
    """Return the Cedar policies, entities and one request per question."""
    policies: list[str] = []
    entities: list[dict[str, Any]] = []
    templates: dict[tuple[object, ...], str] = {}
    site_roles: set[str] = set()

    def template(spec: GrantSpec) -> str:
        name = templates.get(spec.signature())
        if name is None:
            name = templates[spec.signature()] = f"T{len(templates)}"
            policies.extend(_permits(f' in Role::"{name}"', spec.plain, ""))
            policies.extend(_permits(f' in SiteRole::"{name}"', spec.site, ""))
        return name

    # Scoped groups (customer groups of a company, vendor groups): the scope entity lists
    # its groups per template, e.g. Company::"c1".S0 = [Group::"c1/admin"].
    scoped: dict[tuple[object, ...], str] = {}
    scope_attrs: dict[tuple[str, str], dict[str, list[dict[str, dict[str, str]]]]] = {}
    for group in graph.groups.values():
        spec = grant_spec(catalog, group)
        parents: list[dict[str, str]] = []
        if group.kind is GroupKind.USER:
            name = template(spec)
            parents.append(_uid("Role", name))
            if not group.restrictions:
                parents.append(_uid("SiteRole", name))
            for site in sorted(group.restrictions):
                key = f"{name}@{site}"
                parents.append(_uid("SiteRole", key))
                if key not in site_roles:
                    site_roles.add(key)
                    when = f"resource.restrictions.contains({json.dumps(site)})"
                    policies.extend(_permits(f" in SiteRole::{json.dumps(key)}", spec.site, when))
        else:
            attr = "company" if group.kind is GroupKind.CUSTOMER else "vendor"
            scope_id: str | None = group.company if attr == "company" else group.vendor
            if scope_id is None:
                raise ValueError(f"group {group.id}: tenant-wide customer groups not translated")
            sig = (attr, *spec.signature())
            sname = scoped.get(sig)
            if sname is None:
                sname = scoped[sig] = f"S{len(scoped)}"
                when = (
                    f"resource has {attr} && resource.{attr} has {sname} "
                    f"&& principal in resource.{attr}.{sname}"
                )
                policies.extend(_permits("", [*spec.site, *spec.plain], when))
            members = scope_attrs.setdefault((attr.capitalize(), scope_id), {})
            members.setdefault(sname, []).append(_ref("Group", group.id))
        entities.append({"uid": _uid("Group", group.id), "attrs": {}, "parents": parents})

    for (kind, ident), lists in scope_attrs.items():
        entities.append({"uid": _uid(kind, ident), "attrs": lists, "parents": []})
    for subject in graph.subjects.values():
        parents = [_uid("Group", m.group) for m in subject.memberships]
        entities.append({"uid": _uid("User", subject.id), "attrs": {}, "parents": parents})
    entities.extend(_actions(catalog))

    requests: list[dict[str, str]] = []
    for i, question in enumerate(questions):
        attrs: dict[str, Any] = {
            "rtype": question.type,
            "restrictions": list(question.restrictions),
        }
        if question.company is not None:
            attrs["company"] = _ref("Company", question.company)
        if question.vendor is not None:
            attrs["vendor"] = _ref("Vendor", question.vendor)
        entities.append({"uid": _uid("Res", f"r{i}"), "attrs": attrs, "parents": []})
        requests.append(
            {
                "principal": f"User::{json.dumps(question.subject)}",
                "action": f"Action::{json.dumps(question.action)}",
                "resource": f'Res::"r{i}"',
            }
        )
    return CedarTenant("\n".join(policies) + "\n", entities, requests, len(policies))


def _actions(catalog: Catalog) -> list[dict[str, Any]]:
    named = sorted({a for t in catalog.types.values() for a in t.actions})
    out: list[dict[str, Any]] = [
        {"uid": _uid("Action", "lvl_read"), "attrs": {}, "parents": []},
        {"uid": _uid("Action", "lvl_manage"), "attrs": {}, "parents": []},
    ]
    for action in sorted(catalog.levels):
        parent = action_parent(catalog, action)
        out.append(
            {"uid": _uid("Action", action), "attrs": {}, "parents": [_uid("Action", parent)]}
        )
    out += [{"uid": _uid("Action", a), "attrs": {}, "parents": []} for a in named]
    return out


class CedarEngine:
    """cedarpy with a pre-parsed policy set and entity store (parsed once, reused)."""

    def __init__(self, tenant: CedarTenant) -> None:
        import cedarpy

        self._cedarpy = cedarpy
        self.tenant = tenant
        self.policies = cedarpy.PolicySet.from_str(tenant.policies_text)
        self.entities = cedarpy.Entities.from_json_str(json.dumps(tenant.entities))

    def is_allowed(self, request: dict[str, str]) -> bool:
        result = self._cedarpy.is_authorized(request, self.policies, self.entities)
        return bool(result.allowed)

    def batch(self, requests: list[dict[str, str]]) -> list[bool]:
        results = self._cedarpy.is_authorized_batch(requests, self.policies, self.entities)
        return [bool(r.allowed) for r in results]
