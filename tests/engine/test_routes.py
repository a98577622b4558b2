"""`RouteTable`: the segment tree matches as the most specific template first, held to a
plain reference (every template of the method and length, literals left first) on generated
tables and paths."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from groupgate.model import Route
from groupgate.policy import RouteTable

SEGMENTS = st.sampled_from(["api", "orders", "products", "media", "x", "{id}", "{other}"])
PATHS = st.sampled_from(["api", "orders", "products", "media", "x", "o-17", "{id}"])


def reference(routes: list[Route], method: str, path: str) -> Route | None:
    """What the table must answer: an exact template, else the matching template whose
    literal segments come furthest left (the first listed among equals)."""
    path = path.split("?", 1)[0].split("#", 1)[0] or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    # An exact template: the last listed of equal ones (as a dict keeps it).
    exact = {(r.method, r.path): r for r in routes}.get((method.upper(), path))
    if exact is not None:
        return exact
    segments = [s for s in path.split("/") if s]
    candidates = []
    for index, route in enumerate(routes):
        pattern = [s for s in route.path.split("/") if s]
        if route.method != method.upper() or len(pattern) != len(segments):
            continue
        params = [p.startswith("{") and p.endswith("}") for p in pattern]
        pairs = zip(pattern, segments, params, strict=True)
        if all(is_param or p == s for p, s, is_param in pairs):
            candidates.append((params, index, route))
    return min(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


@settings(max_examples=300, deadline=None)
@given(
    templates=st.lists(
        st.tuples(st.sampled_from(["GET", "POST"]), st.lists(SEGMENTS, min_size=1, max_size=4)),
        min_size=1,
        max_size=12,
    ),
    asked=st.lists(
        st.tuples(st.sampled_from(["GET", "get", "POST"]), st.lists(PATHS, max_size=4)),
        min_size=1,
        max_size=10,
    ),
)
def test_the_tree_matches_as_the_reference(
    templates: list[tuple[str, list[str]]], asked: list[tuple[str, list[str]]]
) -> None:
    routes = [
        Route(method, "/" + "/".join(segments), f"t{i}", "read")
        for i, (method, segments) in enumerate(templates)
    ]
    table = RouteTable(routes)
    for method, segments in asked + [(m, s) for m, s in templates]:
        path = "/" + "/".join(segments)
        assert table.match(method, path) == reference(routes, method, path), (method, path)


def test_a_literal_segment_beats_a_parameter() -> None:
    media = Route("GET", "/api/products/{id}/media", "media", "list")
    special = Route("GET", "/api/products/special/{id}", "products", "read")
    table = RouteTable([media, special])
    assert table.match("GET", "/api/products/special/media") is special
    assert table.match("GET", "/api/products/p-1/media") is media
    assert table.match("GET", "/api/products/p-1/other") is None
    assert table.match("POST", "/api/products/p-1/media") is None
