"""Bodies changed at named places, for the tests that hold a fast path to its precise twin."""

from __future__ import annotations

import copy
from typing import Any

#: A change's value that deletes the key instead of setting it.
ABSENT = object()


def mutated(changes: list[tuple[tuple[str, ...], Any]], base: dict[str, Any]) -> dict[str, Any]:
    """`base` with each `(place, value)` applied (ABSENT deletes); places that vanished skip."""
    raw = copy.deepcopy(base)
    for place, value in changes:
        node: Any = raw
        for key in place[:-1]:
            node = node.get(key) if type(node) is dict else None
        if type(node) is not dict:
            continue
        if value is ABSENT:
            node.pop(place[-1], None)
        else:
            node[place[-1]] = copy.deepcopy(value)
    return raw
