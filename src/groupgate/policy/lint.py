"""Warnings about grants that most probably miss a companion grant (`groupgate lint`).

Seed 004's "Role/Permission Matrix" says which other types a group that manages a type most
probably also needs: a group managing quotes needs at least read on companies and manage on
products, or its members cannot process quotes. `policies/companions.yaml` encodes that
matrix as `Catalog.companions`; this module compares access matrices with it.

These are warnings, not errors: the seed calls the matrix "a baseline", the policy stays
valid, and checks decide exactly what the groups grant. Only access that can be changed is
linted: the role templates and the custom groups of a graph document. Predefined customer
groups and vendor groups are skipped, since their access cannot be edited.

`lint` is what `groupgate lint` prints: every finding labelled with its severity, `error`
(an invalid policy or graph document) or `warning` (a missing companion grant), each once.

`lint_policy` also parses a graph document found next to the policy (`data.json` or
`demo.json`), so it uses `groupgate.engine.graph` to validate it: the one place where
`policy` reaches into `engine`, for a development tool, not for the decision path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from groupgate.errors import GraphError, PolicyError
from groupgate.model import Catalog, Group, Level
from groupgate.policy.loader import load_policy

SOURCE = "seed 004 Role/Permission Matrix"
#: Graph documents `lint_policy` looks for in the policy directory, in this order.
DOCUMENTS = ("data.json", "demo.json")


def missing_companions(catalog: Catalog, access: Mapping[str, Level]) -> list[str]:
    """Return one phrase per companion grant that `access` lacks, in a stable order.

    For every type the access matrix manages, each companion `(other type, level)` of the
    catalog must be granted at that level or higher.
    """
    out: list[str] = []
    for type_id in sorted(access):
        level = access[type_id]
        for other, needed in catalog.companions.get((type_id, level), ()):
            if access.get(other, Level.NONE) < needed:
                verb = "manages" if level is Level.MANAGE else "reads"
                out.append(f"{verb} {type_id} without {needed.label} on {other}")
    return out


def lint_templates(catalog: Catalog) -> list[str]:
    """Return warnings for the catalog's user role templates."""
    return [
        f"role template {role_id}: {phrase} ({SOURCE})"
        for role_id, template in sorted(catalog.roles.items())
        for phrase in missing_companions(catalog, template.access)
    ]


def lint_groups(catalog: Catalog, groups: Iterable[Group] | Mapping[str, Any]) -> list[str]:
    """Return warnings for custom groups, e.g. `group quote-managers: manages quotes without
    read on companies (seed 004 Role/Permission Matrix)`.

    `groups` is an iterable of `Group`s, or a whole graph document (a mapping), which is then
    validated with the catalog first (`GraphError` if it is invalid) and its groups linted.
    Predefined groups (company and vendor groups) are skipped: their access cannot change.
    """
    if isinstance(groups, Mapping):
        from groupgate.engine.graph import parse_graph

        groups = parse_graph(groups, catalog).groups.values()
    return [
        f"group {group.id}: {phrase} ({SOURCE})"
        for group in sorted(groups, key=lambda g: g.id)
        if not group.predefined
        for phrase in missing_companions(catalog, group.access)
    ]


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of `groupgate lint`: `warning: ...` or `error: ...`."""

    severity: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


def lint(directory: str | Path, data: tuple[str, Any] | None = None) -> list[Finding]:
    """Lint the policy in `directory` and one graph document; every finding once.

    `data` is `(name, document)`: it is linted instead of the directory's own document, its
    findings prefixed with `name`. An invalid policy or document is one `error` finding.
    """
    try:
        found = lint_policy(directory, documents=data is None)
        if data is not None:
            name, doc = data
            if not isinstance(doc, Mapping):
                raise GraphError(name, "expected a graph document (an object)")
            try:
                found += [f"{name}: {w}" for w in lint_groups(load_policy(directory), doc)]
            except GraphError as exc:
                path = f"{name}: {exc.path}" if exc.path else name
                raise GraphError(path, _message(exc)) from None
    except (PolicyError, GraphError) as exc:
        return [Finding("error", exc.detail)]
    return [Finding("warning", message) for message in dict.fromkeys(found)]


def lint_policy(directory: str | Path, *, documents: bool = True) -> list[str]:
    """Load the policy in `directory` and return its warnings.

    Raises `PolicyError` if the policy is invalid. Lints the role templates and, when the
    directory holds a graph document (`data.json`, else `demo.json`) and `documents` is true,
    that document's groups, each warning prefixed with the document's name. An invalid
    document raises `GraphError` with the file name in front of the entry's path.
    """
    root = Path(directory)
    catalog = load_policy(root)
    findings = lint_templates(catalog)
    for name in DOCUMENTS if documents else ():
        path = root / name
        if not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise GraphError(name, f"not valid JSON: {exc}") from None
        if not isinstance(doc, Mapping):
            raise GraphError(name, "expected a graph document (an object)")
        try:
            findings += [f"{name}: {warning}" for warning in lint_groups(catalog, doc)]
        except GraphError as exc:
            raise GraphError(f"{name}: {exc.path}" if exc.path else name, _message(exc)) from None
        break
    return findings


def _message(exc: GraphError) -> str:
    prefix = f"{exc.path}: "
    return exc.detail[len(prefix) :] if exc.path and exc.detail.startswith(prefix) else exc.detail
