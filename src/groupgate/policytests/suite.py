"""Find and validate test suite files: a graph, then named cases per section type.

Layout (as Cerbos finds `*_test.yaml` suites anywhere under its policy directory, and
`opa test` its `*_test.rego` files beside the policies): a suite file's name ends in
`_test.yaml` (or `_test.yml`), usually under `<policy dir>/tests/`. A suite runs against
the policy directory it lives in (the nearest directory above it holding `catalog.yaml`),
unless `--policies` names one.

    name: todo permissions              # required
    description: ...                    # optional
    graph: {tenant: t, subjects: ...}   # a graph document (SPEC section 4), or
    fixture: ../data.json               # one in a file, relative to this one (JSON or YAML)
    checks: [...]                       # the registered sections (see `sections`):
    purchases: [...]                    #   lists of cases, each with a unique `name`

A file may instead hold several suites: `suites: [{name, graph, checks, ...}, ...]`.
Everything is validated before anything runs; the first problem raises `SuiteError` naming
the file and the path inside it (`todo_test.yaml:checks[3].expect: ...`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from groupgate.engine.graph import parse_graph
from groupgate.errors import GraphError, PolicyError
from groupgate.model import Catalog, Graph
from groupgate.policy.loader import load_policy, read_yaml
from groupgate.policytests import at as read
from groupgate.policytests.at import At, SuiteError
from groupgate.policytests.sections import registered

SUFFIXES = ("_test.yaml", "_test.yml")
SUITE_KEYS = frozenset({"name", "description", "graph", "fixture"})
DEFAULT_TENANT = "test"


@dataclass(frozen=True, slots=True)
class Case:
    """One named case of a section; `at` is where it sits (`checks[3]`)."""

    section: str
    name: str
    at: At
    spec: Any


@dataclass(frozen=True, slots=True)
class Suite:
    """A validated suite: its graph document (imported as is) and its cases."""

    file: str
    name: str
    catalog: Catalog
    document: dict[str, Any]
    graph: Graph
    cases: tuple[Case, ...]

    @property
    def tenant(self) -> str:
        return self.graph.tenant


def discover(paths: Iterable[Path]) -> list[Path]:
    """The suite files named or found (recursively, sorted) under the given paths."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise SuiteError(f"{path}: no such file or directory")
    return found


def policy_dir(path: Path) -> Path | None:
    """The nearest directory above `path` that holds `catalog.yaml`."""
    for parent in path.resolve().parents:
        if (parent / "catalog.yaml").is_file():
            return parent
    return None


class Loader:
    """Loads suite files, reading each policy directory once."""

    def __init__(self, policies: Path | None = None) -> None:
        self.policies = policies
        self._catalogs: dict[Path, Catalog] = {}

    def catalog(self, file: Path) -> Catalog:
        directory = self.policies or policy_dir(file)
        if directory is None:
            raise SuiteError(
                f"{file}: no policy directory above it (none holds catalog.yaml); "
                "pass one with --policies"
            )
        key = directory.resolve()
        if key not in self._catalogs:
            try:
                self._catalogs[key] = load_policy(directory)
            except PolicyError as exc:
                raise SuiteError(
                    f"{file}: its policy directory {directory}: {exc.detail}"
                ) from None
        return self._catalogs[key]

    def load(self, files: Sequence[Path]) -> list[Suite]:
        """Validate every file; return their suites in order."""
        suites: list[Suite] = []
        for file in files:
            suites += self.load_file(file)
        return suites

    def load_file(self, file: Path) -> list[Suite]:
        top = At(str(file))
        try:
            data = read_yaml(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise top.fail(exc.strerror or str(exc)) from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise top.fail(f"not valid YAML: {exc}") from None
        body = read.mapping(data, top)
        catalog = self.catalog(file)
        if "suites" in body:
            read.only(body, {"suites"}, top)
            items = read.sequence(body["suites"], top.key("suites"))
            if not items:
                raise top.key("suites").fail("expected at least one suite")
            return [
                self._suite(file, catalog, item, top.key("suites").index(i))
                for i, item in enumerate(items)
            ]
        return [self._suite(file, catalog, body, top)]

    def _suite(self, file: Path, catalog: Catalog, value: Any, at: At) -> Suite:
        body = read.mapping(value, at)
        types = registered()
        read.only(body, SUITE_KEYS | types.keys(), at, required=("name",))
        name = read.text(body["name"], at.key("name"))
        if "description" in body:
            read.text(body["description"], at.key("description"))
        document, graph = self._graph(file, catalog, body, at)
        cases: list[Case] = []
        names: set[str] = set()
        for section_name, section in types.items():
            if section_name not in body:
                continue
            where = at.key(section_name)
            for i, item in enumerate(read.sequence(body[section_name], where)):
                case_at = where.index(i)
                entry = dict(read.mapping(item, case_at))
                case_name = read.text(entry.pop("name", None), case_at.key("name"))
                if case_name in names:
                    raise case_at.key("name").fail(f"a case named {case_name!r} comes earlier")
                names.add(case_name)
                spec = section.parse(entry, case_at, graph, catalog)
                cases.append(Case(section_name, case_name, case_at, spec))
        if not cases:
            raise at.fail(f"no cases (add a list under {', '.join(sorted(types))})")
        return Suite(str(file), name, catalog, document, graph, tuple(cases))

    def _graph(
        self, file: Path, catalog: Catalog, body: dict[str, Any], at: At
    ) -> tuple[dict[str, Any], Graph]:
        if ("graph" in body) == ("fixture" in body):
            raise at.fail("name the graph: either `graph` (a document) or `fixture` (a file)")
        if "graph" in body:
            where = at.key("graph")
            document = read.mapping(body["graph"], where)
        else:
            name = read.text(body["fixture"], at.key("fixture"))
            path = file.parent / name
            document = read.mapping(_read_document(path, at.key("fixture")), At(str(path)))
            where = At(str(path))
        tenant = document.get("tenant") if isinstance(document.get("tenant"), str) else None
        try:
            graph = parse_graph(document, catalog, tenant or DEFAULT_TENANT)
        except GraphError as exc:
            message = exc.detail.removeprefix(f"{exc.path}: ") if exc.path else exc.detail
            raise (where.key(exc.path) if exc.path else where).fail(message) from None
        return document, graph


def _read_document(path: Path, at: At) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise at.fail(f"{path}: {exc.strerror or exc}") from None
    try:
        if path.suffix in {".yaml", ".yml"}:
            return read_yaml(raw.decode("utf-8"))
        return orjson.loads(raw)
    except (yaml.YAMLError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise at.fail(f"{path}: not a valid graph document: {exc}") from None
