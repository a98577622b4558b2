"""The tenant as a pycasbin RBAC-with-domains model, asked through `enforce`.

Model (`MODEL` below): `g = _, _, _` links a user to a group and a group to a role in a
domain; `g2 = _, _` maps actions to levels (`update` -> `lvl_manage`, `read` ->
`lvl_read`); policies are `p, role, domain, type, action`. Domains:

- `site:DE` (`site:-` when the resource has no restriction value) for employees. A user
  group's links to its roles live in domain `*` when unrestricted; a restricted group's link
  to its site role lives in `site:<value>` per restriction value. A domain matching function
  lets `*` links serve every `site:` domain (and only those, so company domains do not copy
  every employee's links);
- `co:<company>` for customers and `ven:<vendor>` for vendor users: a customer or vendor
  group is a role in its company's or vendor's domain, and groups with the same matrix
  (every company's Admin group, say) share one role and its policy lines, so the policy
  count depends on the number of distinct matrices, not on the number of groups.

Casbin takes one domain per request, so the question set gives a resource at most one
restriction value. `FastEnforcer` with `cache_key_order=[2]` indexes policies by type (the
engine's own optimisation); the plain `Enforcer` scans every policy line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.dataset import Question
from benchmarks.peers import action_parent, grant_spec
from groupgate.model import Catalog, Graph, GroupKind

MODEL = """
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.obj == p.obj && g2(r.act, p.act) && (p.dom == "*" || p.dom == r.dom) \
&& g(r.sub, p.sub, r.dom)
"""


@dataclass
class CasbinTenant:
    policies: list[list[str]]
    links: list[list[str]]
    action_links: list[list[str]]
    requests: list[tuple[str, str, str, str]]


def _domain(question: Question) -> str:
    if question.kind == "employee":
        return "site:" + (question.restrictions[0] if question.restrictions else "-")
    if question.kind == "customer":
        return "co:" + (question.company or "-")
    return "ven:" + (question.vendor or "-")


def encode(catalog: Catalog, graph: Graph, questions: Sequence[Question]) -> CasbinTenant:
    """Return the policy lines, role links, action links and one request per question."""
    policies: list[list[str]] = []
    links: list[list[str]] = []
    templates: dict[tuple[object, ...], str] = {}
    # A scoped group (customer or vendor group) is a role in its company's or vendor's
    # domain; groups with the same matrix share one role and its policy lines.
    scoped: dict[tuple[object, ...], str] = {}
    scoped_role: dict[str, tuple[str, str]] = {}
    for group in graph.groups.values():
        spec = grant_spec(catalog, group)
        if group.kind is GroupKind.USER:
            name = templates.get(spec.signature())
            if name is None:
                name = templates[spec.signature()] = f"T{len(templates)}"
                for role, parts in ((f"role:{name}", spec.plain), (f"site:{name}", spec.site)):
                    policies += [[role, "*", t, a] for a, types in parts for t in types]
            gid = f"grp:{group.id}"
            links.append([gid, f"role:{name}", "*"])
            for site in sorted(group.restrictions) or ["*"]:
                links.append([gid, f"site:{name}", f"site:{site}" if site != "*" else "*"])
            continue
        domain = f"co:{group.company}" if group.company else f"ven:{group.vendor}"
        sig = (domain[:3], *spec.signature())
        name = scoped.get(sig)
        if name is None:
            name = scoped[sig] = f"S{len(scoped)}"
            scoped_parts = [*spec.site, *spec.plain]
            policies += [[f"scoped:{name}", "*", t, a] for a, types in scoped_parts for t in types]
        scoped_role[group.id] = (f"scoped:{name}", domain)
    for subject in graph.subjects.values():
        for link in subject.memberships:
            found = scoped_role.get(link.group)
            if found is None:
                links.append([f"u:{subject.id}", f"grp:{link.group}", "*"])
            else:
                links.append([f"u:{subject.id}", found[0], found[1]])
    action_links = [[a, action_parent(catalog, a)] for a in sorted(catalog.levels)]
    requests = [(f"u:{q.subject}", _domain(q), q.type, q.action) for q in questions]
    return CasbinTenant(policies, links, action_links, requests)


def _employee_domains(request_domain: str, stored: str) -> bool:
    return stored == "*" and request_domain.startswith("site:")


class CasbinEngine:
    """A pycasbin enforcer built once from a `CasbinTenant`.

    `fast=True` builds a `FastEnforcer` indexing policies by type; otherwise a plain
    `Enforcer`. Policies and links are assigned in bulk (the management API checks each
    added rule against a list, which is quadratic on a tenant of this size) and the role
    links built once.
    """

    def __init__(self, tenant: CasbinTenant, *, fast: bool = True) -> None:
        import casbin
        from casbin.model import Model
        from casbin.model.policy_fast import FastPolicy

        # Not casbin.model.FastModel: in pycasbin 1.43 its add_def drops the return value,
        # so model loading stops after the first role definition (g2 is lost).
        model: Any = Model()
        model.load_model_from_text(MODEL)
        if fast:
            enforcer: Any = casbin.FastEnforcer(model, None, cache_key_order=[2])
            policy = FastPolicy([2])
            for line in tenant.policies:
                policy.append(line)
            model["p"]["p"].policy = policy
        else:
            enforcer = casbin.Enforcer(model, None)
            model["p"]["p"].policy = [list(p) for p in tenant.policies]
        model["g"]["g"].policy = tenant.links
        model["g"]["g2"].policy = tenant.action_links
        enforcer.add_named_domain_matching_func("g", _employee_domains)
        # pycasbin 1.43's DomainManager installs `lambda a, b: a == b` as its role matching
        # function, so every per-domain role manager takes the pattern-matching path: each
        # added link and each unknown name scans every role (building the `site:` domains'
        # managers took minutes). No matching function means the same equality, without
        # the scans.
        enforcer.rm_map["g"].matching_func = None
        enforcer.build_role_links()
        self.enforcer = enforcer
        self.tenant = tenant

    def is_allowed(self, request: tuple[str, str, str, str]) -> bool:
        return bool(self.enforcer.enforce(*request))
