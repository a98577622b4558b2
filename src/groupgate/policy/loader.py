"""Load and validate a policy directory into a `Catalog`.

A policy directory holds YAML files; only `catalog.yaml` is required:

    catalog.yaml          levels (action -> level) and sections of resource types
    roles.yaml            user role templates: `roles` (names, named actions) and `matrix`
    customer_groups.yaml  the predefined customer groups (admin, contact, buyer, requester)
    vendor_roles.yaml     the four vendor group templates
    conditions.yaml       named attribute conditions
    routes.yaml           the gateway route table
    companions.yaml       seed 004's Role/Permission matrix, for `groupgate lint`
    approval_rules.yaml   tenant-wide approval rules (SPEC section 5): `approval_rules: [...]`

Every error names the file, the path inside it and what is wrong; nothing is half-loaded.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml

from groupgate.engine.graph import parse_approval_rules
from groupgate.errors import GraphError, PolicyError
from groupgate.model import (
    PREDEFINED_ROLES,
    SUBJECT_TYPES,
    VENDOR_ROLES,
    ActionGrant,
    ApprovalRule,
    Catalog,
    Condition,
    GroupKind,
    Level,
    ResourceType,
    RoleTemplate,
    Route,
    SubjectKind,
    frozen_map,
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SUBJECT_PATH_HEADS = frozenset({"id", "vendor", "companies", "attributes"})


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys.

    PyYAML keeps the last of two equal keys silently: a matrix row written twice would
    override the first without a word, in a table meant to encode seed 004 exactly.
    """


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_mapping,
)


class _File:
    """One YAML file being read, so that every error can name it and a path inside it."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
        except yaml.YAMLError as exc:
            raise PolicyError(self.name, "", f"not valid YAML: {exc}") from None
        self.data: dict[str, Any] = self.mapping(data if data is not None else {}, "")

    def fail(self, path: str, message: str) -> PolicyError:
        return PolicyError(self.name, path, message)

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path or "(top level)", f"expected a mapping, got {_kind(value)}")
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        return value

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected a non-empty string, got {_kind(value)}")
        return value

    def only(self, value: dict[str, Any], path: str, allowed: set[str]) -> None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(path, f"unknown key {unknown[0]!r} (allowed: {sorted(allowed)})")

    def level(self, value: Any, path: str) -> Level:
        try:
            return Level.parse(self.text(value, path))
        except KeyError:
            raise self.fail(path, f"unknown level {value!r} (none, read, manage)") from None


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def read_yaml(text: str) -> Any:
    """Parse YAML with the safe loader policies use, refusing duplicate keys.

    Raises `yaml.YAMLError` (test suites, `groupgate.policytests`, read their files so too).
    """
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader


def load_policy(directory: str | Path) -> Catalog:
    """Read and validate the policy directory; raise `PolicyError` on the first problem."""
    root = Path(directory)
    if not (root / "catalog.yaml").is_file():
        raise PolicyError(str(root), "", "not a policy directory (no catalog.yaml)")

    def read(name: str) -> _File | None:
        path = root / name
        return _File(path) if path.is_file() else None

    catalog_file = read("catalog.yaml")
    assert catalog_file is not None
    levels, types = _load_types(catalog_file)
    conditions = _load_conditions(read("conditions.yaml"))
    roles = _load_roles(read("roles.yaml"), types, conditions)
    predefined = _load_templates(
        read("customer_groups.yaml"), GroupKind.CUSTOMER, PREDEFINED_ROLES, types, conditions
    )
    vendor_roles = _load_templates(
        read("vendor_roles.yaml"), GroupKind.VENDOR, VENDOR_ROLES, types, conditions
    )
    routes = _load_routes(read("routes.yaml"), types, levels)
    companions = _load_companions(read("companions.yaml"), types)
    return Catalog(
        types=frozen_map(types),
        levels=frozen_map(levels),
        roles=frozen_map(roles),
        predefined=frozen_map(predefined),
        vendor_roles=frozen_map(vendor_roles),
        conditions=frozen_map(conditions),
        routes=routes,
        companions=frozen_map(companions),
        subject_types=_load_subject_types(catalog_file),
        approval_rules=_load_approval_rules(read("approval_rules.yaml")),
    )


def _load_approval_rules(f: _File | None) -> tuple[ApprovalRule, ...]:
    """`approval_rules: [...]`, the rules every company of every tenant gets, validated as a
    company's are (`engine.graph.parse_approval_rules`); the groups they name are not known
    here: a name no group of the graph has is held by nobody."""
    if f is None:
        return ()
    f.only(f.data, "", {"approval_rules"})
    try:
        found = f.data.get("approval_rules")
        return parse_approval_rules(found if found is not None else [], "approval_rules")
    except GraphError as exc:
        message = exc.detail[len(exc.path) + 2 :] if exc.path else exc.detail
        raise f.fail(exc.path, message) from None


def _load_subject_types(f: _File) -> Mapping[str, frozenset[SubjectKind]]:
    """`subject_types: {name: [kind, ...]}` in catalog.yaml: AuthZEN subject types this
    policy's PEPs send, added to the built-in ones (`model.SUBJECT_TYPES`)."""
    out = dict(SUBJECT_TYPES)
    declared = f.mapping(f.data.get("subject_types", {}), "subject_types")
    for name, kinds in declared.items():
        path = f"subject_types.{name}"
        f.text(name, "subject_types")
        found: set[SubjectKind] = set()
        for i, kind in enumerate(f.sequence(kinds, path)):
            try:
                found.add(SubjectKind(f.text(kind, f"{path}[{i}]")))
            except ValueError:
                raise f.fail(
                    f"{path}[{i}]", f"expected one of {', '.join(SubjectKind)}, got {kind!r}"
                ) from None
        out[name] = frozenset(found)
    return frozen_map(out)


def _load_types(f: _File) -> tuple[dict[str, Level], dict[str, ResourceType]]:
    f.only(f.data, "", {"levels", "sections", "subject_types"})
    levels: dict[str, Level] = {}
    for action, level in f.mapping(f.data.get("levels", {}), "levels").items():
        levels[f.text(action, "levels")] = f.level(level, f"levels.{action}")
        if levels[action] is Level.NONE:
            # An action that needs no access would be allowed by any group at all.
            raise f.fail(f"levels.{action}", "an action needs read or manage, not none")
    types: dict[str, ResourceType] = {}
    where: dict[str, str] = {}
    for i, section in enumerate(f.sequence(f.data.get("sections"), "sections")):
        spath = f"sections[{i}]"
        f.only(f.mapping(section, spath), spath, {"name", "types"})
        name = f.text(section.get("name"), f"{spath}.name")
        for j, entry in enumerate(f.sequence(section.get("types"), f"{spath}.types")):
            tpath = f"{spath}.types[{j}]"
            f.only(
                f.mapping(entry, tpath), tpath, {"id", "label", "site_aware", "parent", "actions"}
            )
            type_id = f.text(entry.get("id"), f"{tpath}.id")
            if type_id in types:
                raise f.fail(f"{tpath}.id", f"duplicate resource type {type_id!r}")
            actions = frozenset(
                f.text(a, f"{tpath}.actions[{k}]")
                for k, a in enumerate(f.sequence(entry.get("actions", []), f"{tpath}.actions"))
            )
            clash = sorted(actions & set(levels))
            if clash:
                raise f.fail(f"{tpath}.actions", f"{clash[0]!r} is already a level action")
            site_aware = entry.get("site_aware", False)
            if not isinstance(site_aware, bool):
                raise f.fail(f"{tpath}.site_aware", "expected true or false")
            parent = entry.get("parent")
            where[type_id] = tpath
            types[type_id] = ResourceType(
                id=type_id,
                section=name,
                label=str(entry.get("label") or type_id),
                site_aware=site_aware,
                parent=f.text(parent, f"{tpath}.parent") if parent is not None else None,
                actions=actions,
            )
    for type_id, rtype in types.items():
        if rtype.parent is None:
            continue
        parent = types.get(rtype.parent)
        if parent is None:
            raise f.fail(
                f"{where[type_id]}.parent", f"parent {rtype.parent!r} is not a resource type"
            )
        if parent.parent is not None:
            raise f.fail(
                f"{where[type_id]}.parent", f"parent {rtype.parent!r} is itself a dependent type"
            )
    return levels, types


def _load_conditions(f: _File | None) -> dict[str, Condition]:
    """`conditions.<id>.any`: comparisons, any of which makes the condition hold.

    Each names the request side with `resource: <path>` (an attribute of the resource:
    `owner`, `properties.ownerID`) or `request: <path>` (what the request says of its
    subject or action: `subject.properties.<name>`, `action.properties.<name>`, AuthZEN's
    properties), and what it must equal with `subject: <path>` (the stored subject's `id`,
    `vendor`, `companies` or `attributes.<name>`) or `equals: <value or list of values>`
    (strings or integers).
    """
    if f is None:
        return {}
    f.only(f.data, "", {"conditions"})
    out: dict[str, Condition] = {}
    for cid, body in f.mapping(f.data.get("conditions", {}), "conditions").items():
        path = f"conditions.{cid}"
        f.only(f.mapping(body, path), path, {"description", "any"})
        pairs: list[tuple[str, str]] = []
        equals: list[tuple[str, frozenset[str | int]]] = []
        for k, pair in enumerate(f.sequence(body.get("any"), f"{path}.any")):
            ppath = f"{path}.any[{k}]"
            f.only(f.mapping(pair, ppath), ppath, set(REQUEST_SIDES) | set(VALUE_SIDES))
            asked = _one_of(f, pair, REQUEST_SIDES, ppath)
            resource = _request_path(f, asked, pair[asked], f"{ppath}.{asked}")
            if _one_of(f, pair, VALUE_SIDES, ppath) == "equals":
                equals.append((resource, _constants(f, pair["equals"], f"{ppath}.equals")))
                continue
            subject = f.text(pair.get("subject"), f"{ppath}.subject")
            head, dot, rest = subject.partition(".")
            # id, vendor, companies, or attributes.<name>: the only paths both evaluators read.
            if (
                head not in SUBJECT_PATH_HEADS
                or bool(dot) != (head == "attributes")
                or (dot and not rest)
            ):
                raise f.fail(f"{ppath}.subject", f"unknown subject path {subject!r}")
            pairs.append((resource, subject))
        if not pairs and not equals:
            raise f.fail(f"{path}.any", "a condition needs at least one comparison")
        out[cid] = Condition(
            cid, tuple(pairs), str(body.get("description", "")), equals=tuple(equals)
        )
    return out


#: The keys naming a comparison's request side, and its other side.
REQUEST_SIDES = ("resource", "request")
VALUE_SIDES = ("subject", "equals")
#: The request paths `request:` may name (`model.Resource.attribute` reads them).
REQUEST_PREFIXES = ("subject.properties.", "action.properties.")


def _one_of(f: _File, pair: dict[str, Any], keys: tuple[str, str], path: str) -> str:
    found = [key for key in keys if key in pair]
    if len(found) != 1:
        raise f.fail(path, f"expected exactly one of {keys[0]!r} and {keys[1]!r}")
    return found[0]


def _request_path(f: _File, key: str, value: Any, path: str) -> str:
    found = f.text(value, path)
    head = found.partition(".")[0]
    if key == "request":
        if not found.startswith(REQUEST_PREFIXES) or found.endswith("."):
            raise f.fail(path, "expected subject.properties.<name> or action.properties.<name>")
    elif head in ("subject", "action"):
        # `resource: subject.x` would read the request's subject: say so with `request:`.
        raise f.fail(path, f"a resource path cannot start with {head!r} (see `request:`)")
    return found


def _constants(f: _File, value: Any, path: str) -> frozenset[str | int]:
    values = value if isinstance(value, list) else [value]
    for i, item in enumerate(values):
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise f.fail(f"{path}[{i}]", f"expected a string or an integer, got {_kind(item)}")
    if not values:
        raise f.fail(path, "expected at least one value")
    return frozenset(values)


def _access(f: _File, value: Any, path: str, types: Mapping[str, ResourceType]) -> dict[str, Level]:
    access: dict[str, Level] = {}
    for type_id, level in f.mapping(value, path).items():
        _grantable_type(f, type_id, f"{path}.{type_id}", types)
        access[type_id] = f.level(level, f"{path}.{type_id}")
    return access


def _grantable_type(
    f: _File, type_id: Any, path: str, types: Mapping[str, ResourceType]
) -> ResourceType:
    rtype = types.get(type_id)
    if rtype is None:
        raise f.fail(path, f"unknown resource type {type_id!r}")
    if rtype.parent is not None:
        raise f.fail(path, f"{type_id!r} is a dependent type: grant {rtype.parent!r} instead")
    return rtype


def _actions(
    f: _File,
    value: Any,
    path: str,
    types: Mapping[str, ResourceType],
    conditions: Mapping[str, Condition],
) -> dict[str, tuple[ActionGrant, ...]]:
    out: dict[str, tuple[ActionGrant, ...]] = {}
    for type_id, items in f.mapping(value, path).items():
        tpath = f"{path}.{type_id}"
        rtype = _grantable_type(f, type_id, tpath, types)
        grants = []
        for k, item in enumerate(f.sequence(items, tpath)):
            ipath = f"{tpath}[{k}]"
            if isinstance(item, str):
                item = {"action": item}
            f.only(f.mapping(item, ipath), ipath, {"action", "when"})
            action = f.text(item.get("action"), f"{ipath}.action")
            if action not in rtype.actions:
                raise f.fail(ipath, f"{type_id!r} has no named action {action!r}")
            when = item.get("when")
            if when is not None and when not in conditions:
                raise f.fail(f"{ipath}.when", f"unknown condition {when!r}")
            grants.append(ActionGrant(action, when))
        out[type_id] = tuple(grants)
    return out


def _load_roles(
    f: _File | None,
    types: Mapping[str, ResourceType],
    conditions: Mapping[str, Condition],
) -> dict[str, RoleTemplate]:
    if f is None:
        return {}
    f.only(f.data, "", {"roles", "matrix"})
    declared = f.mapping(f.data.get("roles", {}), "roles")
    order = list(declared)
    access: dict[str, dict[str, Level]] = {role: {} for role in order}
    for type_id, row in f.mapping(f.data.get("matrix", {}), "matrix").items():
        _grantable_type(f, type_id, f"matrix.{type_id}", types)
        cells = f.sequence(row, f"matrix.{type_id}")
        if len(cells) != len(order):
            raise f.fail(f"matrix.{type_id}", f"expected {len(order)} cells, one per role")
        for role, cell in zip(order, cells, strict=True):
            level = f.level(cell, f"matrix.{type_id}[{role}]")
            if level is not Level.NONE:
                access[role][type_id] = level
    roles: dict[str, RoleTemplate] = {}
    for role, body in declared.items():
        path = f"roles.{role}"
        f.only(f.mapping(body, path), path, {"name", "description", "actions"})
        roles[role] = RoleTemplate(
            id=role,
            name=f.text(body.get("name"), f"{path}.name"),
            kind=GroupKind.USER,
            access=frozen_map(access[role]),
            actions=frozen_map(
                _actions(f, body.get("actions", {}), f"{path}.actions", types, conditions)
            ),
            description=str(body.get("description", "")),
        )
    return roles


def _load_templates(
    f: _File | None,
    kind: GroupKind,
    required: tuple[str, ...],
    types: Mapping[str, ResourceType],
    conditions: Mapping[str, Condition],
) -> dict[str, RoleTemplate]:
    if f is None:
        return {}
    f.only(f.data, "", {"groups"})
    groups = f.mapping(f.data.get("groups"), "groups")
    missing = [role for role in required if role not in groups]
    if missing:
        raise f.fail("groups", f"missing {missing[0]!r} (required: {list(required)})")
    out: dict[str, RoleTemplate] = {}
    for role, body in groups.items():
        path = f"groups.{role}"
        if role not in required:
            raise f.fail(path, f"unknown group {role!r} (expected: {list(required)})")
        allowed = {"name", "description", "access", "actions", "aliases", "grantable"}
        f.only(f.mapping(body, path), path, allowed)
        grantable = None
        if kind is GroupKind.VENDOR:
            grantable = {
                type_id: frozenset(g.action for g in grants)
                for type_id, grants in _actions(
                    f, body.get("grantable", {}), f"{path}.grantable", types, conditions
                ).items()
            }
        aliases = f.sequence(body.get("aliases", []), f"{path}.aliases")
        out[role] = RoleTemplate(
            id=role,
            name=f.text(body.get("name"), f"{path}.name"),
            kind=kind,
            access=frozen_map(_access(f, body.get("access", {}), f"{path}.access", types)),
            actions=frozen_map(
                _actions(f, body.get("actions", {}), f"{path}.actions", types, conditions)
            ),
            description=str(body.get("description", "")),
            grantable=frozen_map(grantable) if grantable is not None else None,
            aliases=tuple(f.text(a, f"{path}.aliases[{k}]") for k, a in enumerate(aliases)),
        )
    return out


def _load_routes(
    f: _File | None, types: Mapping[str, ResourceType], levels: Mapping[str, Level]
) -> tuple[Route, ...]:
    if f is None:
        return ()
    f.only(f.data, "", {"crud", "routes"})
    routes: list[Route] = []
    if "crud" in f.data:
        crud = f.mapping(f.data["crud"], "crud")
        f.only(crud, "crud", {"prefix", "types"})
        prefix = str(crud.get("prefix", "")).rstrip("/")
        for k, type_id in enumerate(f.sequence(crud.get("types"), "crud.types")):
            if type_id not in types:
                raise f.fail(f"crud.types[{k}]", f"unknown resource type {type_id!r}")
            base = f"{prefix}/{type_id}"
            routes += [
                Route("GET", base, type_id, "list"),
                Route("POST", base, type_id, "create"),
                Route("GET", f"{base}/{{id}}", type_id, "read"),
                Route("PUT", f"{base}/{{id}}", type_id, "update"),
                Route("PATCH", f"{base}/{{id}}", type_id, "update"),
                Route("DELETE", f"{base}/{{id}}", type_id, "delete"),
            ]
            missing = {"list", "create", "read", "update", "delete"} - set(levels)
            if missing:
                raise f.fail("crud", f"level action {sorted(missing)[0]!r} is not in catalog")
    for k, entry in enumerate(f.sequence(f.data.get("routes", []), "routes")):
        path = f"routes[{k}]"
        f.only(f.mapping(entry, path), path, {"method", "path", "type", "action"})
        method = f.text(entry.get("method"), f"{path}.method").upper()
        if method not in HTTP_METHODS:
            raise f.fail(f"{path}.method", f"unknown HTTP method {method!r}")
        template = f.text(entry.get("path"), f"{path}.path")
        if not template.startswith("/"):
            raise f.fail(f"{path}.path", "a route path starts with '/'")
        type_id = f.text(entry.get("type"), f"{path}.type")
        rtype = types.get(type_id)
        if rtype is None:
            raise f.fail(f"{path}.type", f"unknown resource type {type_id!r}")
        action = f.text(entry.get("action"), f"{path}.action")
        governing = types[rtype.parent] if rtype.parent else rtype
        if action not in levels and action not in governing.actions:
            raise f.fail(f"{path}.action", f"{type_id!r} has no action {action!r}")
        routes.append(Route(method, template, type_id, action))
    seen: set[tuple[str, str]] = set()
    for route in routes:
        key = (route.method, route.path)
        if key in seen:
            raise f.fail("routes", f"duplicate route {route.method} {route.path}")
        seen.add(key)
    return tuple(routes)


def _load_companions(
    f: _File | None, types: Mapping[str, ResourceType]
) -> dict[tuple[str, Level], tuple[tuple[str, Level], ...]]:
    if f is None:
        return {}
    f.only(f.data, "", {"manage"})
    out: dict[tuple[str, Level], tuple[tuple[str, Level], ...]] = {}
    for type_id, body in f.mapping(f.data.get("manage", {}), "manage").items():
        path = f"manage.{type_id}"
        _grantable_type(f, type_id, path, types)
        f.only(f.mapping(body, path), path, {"read", "manage"})
        needs: list[tuple[str, Level]] = []
        for label in ("read", "manage"):
            for k, other in enumerate(f.sequence(body.get(label, []), f"{path}.{label}")):
                _grantable_type(f, other, f"{path}.{label}[{k}]", types)
                needs.append((other, Level.parse(label)))
        out[(type_id, Level.MANAGE)] = tuple(needs)
    return out
