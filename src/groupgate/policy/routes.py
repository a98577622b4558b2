"""The gateway route table compiled for matching: (method, path) -> (resource type, action)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from groupgate.model import Route


class RouteTable:
    """Match a request path against route templates such as `/api/orders/{id}`.

    Templates are indexed by method and segment count; a literal segment beats a `{param}`
    segment at the same position, so `/api/products/{id}/media` never shadows a literal route.
    A request path can also be given as the template itself (AuthZEN gateway PEPs send
    `/todos/{todoId}` as the resource id): braces then match braces.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        #: Per method, a tree of segments: each node maps a literal segment to its child,
        #: `None` to the child of a `{param}`, and `END` to the route ending there (the
        #: first listed of templates differing only in their parameters' names).
        self._trees: dict[str, _Node] = {}
        for route in routes:
            self._exact[(route.method, route.path)] = route
            node = self._trees.setdefault(route.method, {})
            for segment in _segments(route.path):
                child = node.setdefault(None if _is_param(segment) else segment, {})
                assert isinstance(child, dict)
                node = child
            node.setdefault(END, route)

    def match(self, method: str, path: str) -> Route | None:
        """Return the route for `method` and `path` (query string ignored), or None."""
        method = method.upper()
        if "?" in path or "#" in path:
            path = path.split("?", 1)[0].split("#", 1)[0]
        if path[-1:] == "/":
            path = path.rstrip("/")
        path = path or "/"
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact
        tree = self._trees.get(method)
        return None if tree is None else _walk(tree, _segments(path), 0)


#: A node of a method's tree (see `RouteTable.__init__`).
_Node = dict[str | None, Any]
END = "/"  # never a segment (segments are split on "/")


def _walk(node: _Node, segments: list[str], at: int) -> Route | None:
    """The route `segments[at:]` reaches from `node`: a literal segment tried before a
    parameter at each position, so the template with literals furthest left wins (the most
    specific: `/api/products/{id}/media` never shadows a literal route)."""
    if at == len(segments):
        found: Route | None = node.get(END)
        return found
    segment = segments[at]
    literal = node.get(segment)
    if literal is not None:
        found = _walk(literal, segments, at + 1)
        if found is not None:
            return found
    param = node.get(None)
    return None if param is None else _walk(param, segments, at + 1)


def _segments(path: str) -> list[str]:
    segments = path[1:].split("/") if path[:1] == "/" else path.split("/")
    return [s for s in segments if s] if "" in segments else segments


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")
