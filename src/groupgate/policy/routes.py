"""The gateway route table compiled for matching: (method, path) -> (resource type, action)."""

from __future__ import annotations

from collections.abc import Iterable

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
        self._patterns: dict[tuple[str, int], list[tuple[tuple[str | None, ...], Route]]] = {}
        for route in routes:
            self._exact[(route.method, route.path)] = route
            segments = _segments(route.path)
            pattern = tuple(None if _is_param(s) else s for s in segments)
            bucket = self._patterns.setdefault((route.method, len(segments)), [])
            bucket.append((pattern, route))
        for bucket in self._patterns.values():
            # More literal segments first: the most specific template wins.
            bucket.sort(key=lambda item: [s is None for s in item[0]])

    def match(self, method: str, path: str) -> Route | None:
        """Return the route for `method` and `path` (query string ignored), or None."""
        method = method.upper()
        path = path.split("?", 1)[0].split("#", 1)[0] or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact
        segments = _segments(path)
        for pattern, route in self._patterns.get((method, len(segments)), ()):
            if all(p is None or p == s for p, s in zip(pattern, segments, strict=True)):
                return route
        return None


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")
