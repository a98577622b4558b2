"""The section types a test suite may hold (`checks`, `purchases`, ...): the extension point.

A suite file names its graph, then one list per section type; every item of a list is one
named case. A section type knows how to validate one item (`parse`, at load time, before
anything runs) and how to run it against the suite's store (`run`). `checks` and
`purchases` register themselves on import of `groupgate.policytests`; another kind of
question (approval flows, say) becomes a section by implementing `Section` and calling
`register`, without touching the runner:

    class Flows:
        name = "flows"
        def parse(self, item, at, graph, catalog): ...  # -> any immutable spec
        async def run(self, spec, context): ...   # -> Outcome

Items are validated strictly: `parse` raises `SuiteError` (`at.fail(...)`) naming the file
and path (`suite_test.yaml:flows[2].expect`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from groupgate.model import Catalog, Graph
from groupgate.policytests.at import At
from groupgate.store.service import GraphService


@dataclass(frozen=True, slots=True)
class Context:
    """What a case runs against: the suite's store (embedded, the graph imported), tenant,
    policy and the validated graph."""

    service: GraphService
    tenant: str
    catalog: Catalog
    graph: Graph


@dataclass(frozen=True, slots=True)
class Outcome:
    """A case's result: passed or not; `detail` lines say what was expected and what came
    back (with the explain trace for checks)."""

    passed: bool
    message: str = ""
    detail: tuple[str, ...] = ()


class Section(Protocol):
    """One section type of a suite file."""

    #: The key of the section in a suite file (`checks`).
    name: str

    def parse(self, item: dict[str, Any], at: At, graph: Graph, catalog: Catalog) -> Any:
        """Validate one item (its `name` already taken out); return its immutable spec.

        `graph` is the suite's validated graph and `catalog` its policy, to refuse names
        they do not hold (a misspelt subject would otherwise pass every deny).
        """
        ...

    async def run(self, spec: Any, context: Context) -> Outcome:
        """Run one case against the suite's store."""
        ...


_SECTIONS: dict[str, Section] = {}


def register(section: Section) -> None:
    """Make `section.name` a key suite files may use; a name registers once."""
    if section.name in _SECTIONS and _SECTIONS[section.name] is not section:
        raise ValueError(f"section {section.name!r} is already registered")
    _SECTIONS[section.name] = section


def registered() -> dict[str, Section]:
    """The registered section types, by name."""
    return dict(_SECTIONS)
