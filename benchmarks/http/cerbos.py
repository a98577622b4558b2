"""Cerbos, the PDP people would otherwise deploy, set up to answer the same questions.

Install: the `cerbos` binary from the npm package `@cerbos/cerbos-linux-x64` (pinned below)
into the git-ignored `benchmarks/.peers/` (`npm install --prefix benchmarks/.peers ...`).

Policy, written as Cerbos users write it: the caller (the PEP) passes the principal's roles
and attributes in every request; Cerbos holds one resource policy per resource type plus one
set of derived roles. The translation of the tenant:

- every group becomes a Cerbos role named after its access matrix (`u3`: user groups with
  the third distinct matrix, `c1`: customer groups, `v0`: vendor groups), so groups with the
  same matrix share a role and the policy size depends on matrices, not on group counts;
- the principal carries those roles and, per role, `attr.sites[role]` (the union of its
  groups' restriction values, `"*"` when one of them is unrestricted) and
  `attr.scopes[role]` (the companies or vendors its customer or vendor groups belong to);
- derived roles express the per-group tests: `u3_site` is `u3` where `R.attr.restrictions`
  intersects `P.attr.sites["u3"]` (site-aware types only), `c1_scoped` is `c1` where
  `R.attr.company` is in `P.attr.scopes["c1"]`, `v0_scoped` likewise with `R.attr.vendor`;
- resource policies allow level actions (read/view/list, create/update/delete/manage) and
  named actions (publish, approve) per role or derived role; dependent types (media) get
  their parent's rules. Anything not allowed is denied (Cerbos' default).

Merging a principal's groups per role is exact: groupgate's union across groups is "some
group grants the level and passes its own restriction test", and two groups with the same
matrix pass for the union of their restriction values.

Server: HTTP and gRPC on free loopback ports, disk storage of the policy folder without
watching, audit off, schema enforcement off, telemetry off. `verify` asks Cerbos every
question of the benchmark and fails loudly on any answer that differs from groupgate's.
"""

from __future__ import annotations

import http.client
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from benchmarks.dataset import Question
from benchmarks.http import processes
from benchmarks.http.workload import JSON, HttpRequest, Workload
from benchmarks.peers import grant_spec
from groupgate.engine.approvers import active_approval_groups
from groupgate.engine.profile import replaced_approver
from groupgate.model import Catalog, GroupKind, Level

PACKAGE = "@cerbos/cerbos-linux-x64"
#: Latest stable on npm when this was written (`npm view @cerbos/cerbos-linux-x64 versions`).
VERSION = "0.55.0"
PEERS = Path(__file__).resolve().parents[1] / ".peers"
CHECK_PATH = "/api/check/resources"
ANY_SITE = "*"
BASE_ROLE = "member"


class DisagreementError(AssertionError):
    """Cerbos and groupgate answered a question differently: the translation is wrong."""


# --------------------------------------------------------------------------- install


def binary_path() -> Path:
    folder = PEERS / "node_modules" / "@cerbos" / "cerbos-linux-x64"
    for name in ("cerbos", "cerbos-linux-x64"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return folder / "cerbos"


def version(binary: Path) -> str:
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.split()[0] if done.stdout.split() else ""


def install() -> Path:
    """Return the pinned `cerbos` binary, installing it with npm when missing or different."""
    binary = binary_path()
    if binary.is_file() and version(binary) == VERSION:
        return binary
    PEERS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(PEERS),
            "--no-audit",
            "--no-fund",
            f"{PACKAGE}@{VERSION}",
        ],
        check=True,
        timeout=600,
    )
    binary = binary_path()
    if not binary.is_file():
        raise FileNotFoundError(f"npm installed {PACKAGE} but no binary is in {binary.parent}")
    binary.chmod(0o755)
    found = version(binary)
    if found != VERSION:
        raise RuntimeError(f"{binary} reports version {found!r}, expected {VERSION}")
    return binary


# --------------------------------------------------------------------------- translation


@dataclass
class Translation:
    """The Cerbos policy files (name -> document) and each subject's principal."""

    files: dict[str, dict[str, Any]]
    principals: dict[str, dict[str, Any]]
    roles: int
    derived_roles: int


def _level_actions(catalog: Catalog) -> dict[str, list[str]]:
    read = sorted(a for a, level in catalog.levels.items() if level is Level.READ)
    manage = sorted(a for a, level in catalog.levels.items() if level is Level.MANAGE)
    return {"lvl_read": read, "lvl_manage": manage}


def translate(work: Workload) -> Translation:
    """Translate the tenant into derived roles, resource policies and principals."""
    catalog, graph = work.catalog, work.graph
    expand = _level_actions(catalog)
    names: dict[tuple[object, ...], str] = {}
    role_of: dict[str, str] = {}
    scope_of: dict[str, str | None] = {}
    derived: dict[str, dict[str, Any]] = {}
    # (type, action) -> allowed base roles / derived roles
    plain: dict[tuple[str, str], set[str]] = {}
    via_derived: dict[tuple[str, str], set[str]] = {}

    def grant(target: dict[tuple[str, str], set[str]], who: str, action: str, types: Any) -> None:
        for action_name in expand.get(action, [action]):
            for type_id in types:
                target.setdefault((type_id, action_name), set()).add(who)

    active = active_approval_groups(graph)
    for group in graph.groups.values():
        spec = grant_spec(
            catalog,
            group,
            replaced=replaced_approver(group, active),
            approves=group.company is not None and active.get(group.company) == group.id,
        )
        if group.kind is GroupKind.USER:
            kind, attr, scope = "u", None, None
        elif group.kind is GroupKind.CUSTOMER:
            if group.company is None:
                raise ValueError(f"group {group.id}: tenant-wide customer groups not translated")
            kind, attr, scope = "c", "company", group.company
        else:
            kind, attr, scope = "v", "vendor", group.vendor
        key = (kind, *spec.signature())
        role = names.get(key)
        if role is None:
            role = names[key] = f"{kind}{sum(1 for k in names if k[0] == kind)}"
            if attr is None:
                site = f"{role}_site"
                derived[site] = _derived(
                    site,
                    role,
                    f'"{ANY_SITE}" in P.attr.sites["{role}"] || '
                    f'hasIntersection(P.attr.sites["{role}"], R.attr.restrictions)',
                )
                for action, types in spec.site:
                    grant(via_derived, site, action, types)
                for action, types in spec.plain:
                    grant(plain, role, action, types)
            else:
                scoped = f"{role}_scoped"
                derived[scoped] = _derived(
                    scoped,
                    role,
                    f'has(R.attr.{attr}) && R.attr.{attr} in P.attr.scopes["{role}"]',
                )
                for action, types in (*spec.site, *spec.plain):
                    grant(via_derived, scoped, action, types)
        role_of[group.id] = role
        scope_of[group.id] = scope

    files: dict[str, dict[str, Any]] = {
        "derived_roles.yaml": {
            "apiVersion": "api.cerbos.dev/v1",
            "derivedRoles": {"name": "groupgate", "definitions": list(derived.values())},
        }
    }
    for type_id in sorted(catalog.types):
        rules = _rules(type_id, plain, via_derived)
        if not rules:
            continue
        policy: dict[str, Any] = {"version": "default", "resource": type_id, "rules": rules}
        if any("derivedRoles" in r for r in rules):
            policy["importDerivedRoles"] = ["groupgate"]
        files[f"resource_{type_id}.yaml"] = {
            "apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": policy,
        }
    principals = {
        sid: _principal(sid, subject.memberships, role_of, scope_of, graph.groups)
        for sid, subject in graph.subjects.items()
    }
    return Translation(files, principals, len(names), len(derived))


def _derived(name: str, parent: str, expr: str) -> dict[str, Any]:
    return {"name": name, "parentRoles": [parent], "condition": {"match": {"expr": expr}}}


def _rules(
    type_id: str,
    plain: dict[tuple[str, str], set[str]],
    via_derived: dict[tuple[str, str], set[str]],
) -> list[dict[str, Any]]:
    """Group the type's actions by the roles that may do them: one rule per distinct set."""
    rules: list[dict[str, Any]] = []
    for field, table in (("roles", plain), ("derivedRoles", via_derived)):
        by_roles: dict[tuple[str, ...], list[str]] = {}
        for (t, action), allowed in sorted(table.items()):
            if t == type_id:
                by_roles.setdefault(tuple(sorted(allowed)), []).append(action)
        for roles, actions in sorted(by_roles.items()):
            rules.append({"actions": sorted(actions), "effect": "EFFECT_ALLOW", field: list(roles)})
    return rules


def _principal(
    sid: str,
    memberships: Sequence[Any],
    role_of: dict[str, str],
    scope_of: dict[str, str | None],
    groups: Any,
) -> dict[str, Any]:
    sites: dict[str, set[str]] = {}
    scopes: dict[str, set[str]] = {}
    for link in memberships:
        if link.level is not None or link.same_customer:
            raise ValueError(f"subject {sid}: link permissions are not translated")
        role = role_of[link.group]
        scope = scope_of[link.group]
        if role.startswith("u"):
            restrictions = groups[link.group].restrictions
            values = sites.setdefault(role, set())
            values.update(restrictions if restrictions else {ANY_SITE})
        elif scope is not None:
            scopes.setdefault(role, set()).add(scope)
    roles = sorted({*sites, *scopes}) or [BASE_ROLE]
    return {
        "id": sid,
        "roles": roles,
        "attr": {
            "sites": {r: sorted(v) for r, v in sorted(sites.items())},
            "scopes": {r: sorted(v) for r, v in sorted(scopes.items())},
        },
    }


def write_policies(folder: Path, translation: Translation) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in translation.files.items():
        (folder / name).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return folder


def check_body(principal: dict[str, Any], q: Question, index: int) -> bytes:
    """A `CheckResources` request: the principal with its attributes, one resource, one action."""
    attr: dict[str, Any] = {"restrictions": list(q.restrictions)}
    if q.company is not None:
        attr["company"] = q.company
    if q.vendor is not None:
        attr["vendor"] = q.vendor
    return orjson.dumps(
        {
            "requestId": f"q{index}",
            "principal": principal,
            "resources": [
                {
                    "actions": [q.action],
                    "resource": {"kind": q.type, "id": f"r{index}", "attr": attr},
                }
            ],
        }
    )


def check_requests(work: Workload, translation: Translation) -> list[HttpRequest]:
    """The benchmark's questions as Cerbos requests, in the same order as groupgate's."""
    return [
        HttpRequest("POST", CHECK_PATH, check_body(translation.principals[q.subject], q, i))
        for i, q in enumerate(work.questions)
    ]


# --------------------------------------------------------------------------- server


def write_config(folder: Path, policies: Path, http_port: int, grpc_port: int) -> Path:
    config = {
        "server": {
            "httpListenAddr": f"127.0.0.1:{http_port}",
            "grpcListenAddr": f"127.0.0.1:{grpc_port}",
        },
        "storage": {
            "driver": "disk",
            "disk": {"directory": str(policies), "watchForChanges": False},
        },
        "engine": {"defaultPolicyVersion": "default"},
        "audit": {"enabled": False},
        "schema": {"enforcement": "none"},
        "telemetry": {"disabled": True},
    }
    path = folder / "cerbos.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def compile_policies(binary: Path, policies: Path) -> None:
    """`cerbos compile`: fail with Cerbos' own message on an invalid policy."""
    done = subprocess.run(
        [str(binary), "compile", str(policies)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cerbos compile failed:\n{done.stdout}\n{done.stderr}")


@contextmanager
def server(
    binary: Path, folder: Path, *, cpus: tuple[int, ...] | None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run `cerbos server` on a free port; yield (port, process)."""
    http_port, grpc_port = processes.free_port(), processes.free_port()
    config = write_config(folder, folder / "policies", http_port, grpc_port)
    env = {"CERBOS_NO_TELEMETRY": "1"}
    if cpus is not None:
        # Go sizes its scheduler from the affinity mask too; say it explicitly for the record.
        env["GOMAXPROCS"] = str(len(cpus))
    with processes.server(
        [str(binary), "server", f"--config={config}", "--log-level=warn"],
        port=http_port,
        ready_path="/_cerbos/health",
        log=folder / "cerbos.log",
        env=env,
        cpus=cpus,
    ) as process:
        yield http_port, process


def decide(conn: http.client.HTTPConnection, body: bytes, action: str) -> bool:
    conn.request("POST", CHECK_PATH, body=body, headers=JSON)
    response = conn.getresponse()
    raw = response.read()
    if response.status != 200:
        raise DisagreementError(f"cerbos answered {response.status}: {raw[:500]!r}")
    answer = orjson.loads(raw)
    effect = answer["results"][0]["actions"][action]
    return bool(effect == "EFFECT_ALLOW")


def verify(port: int, work: Workload, requests: Sequence[HttpRequest]) -> dict[str, int]:
    """Ask Cerbos every question; raise `DisagreementError` on any answer unlike groupgate's."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    wrong: list[str] = []
    allows = 0
    try:
        for i, (q, request) in enumerate(zip(work.questions, requests, strict=True)):
            assert request.body is not None
            got = decide(conn, request.body, q.action)
            allows += got
            if got != work.expected[i]:
                wrong.append(
                    f"#{i} {q}: groupgate {work.expected[i]}, cerbos {got}; "
                    f"principal {work_principal(request.body)}"
                )
    finally:
        conn.close()
    if wrong:
        raise DisagreementError(
            f"{len(wrong)} of {len(requests)} answers differ, e.g.:\n" + "\n".join(wrong[:5])
        )
    return {"questions": len(requests), "agree": len(requests), "allow": allows}


def work_principal(body: bytes) -> Any:
    return orjson.loads(body)["principal"]
