"""The answer of a write: the tenant's new revision and its replicas' acknowledgement.

Its own module so that the low-level writers (`ops.py`, which `export.py` reads through)
and the protocols (`contract.py`) both name it without importing each other.
"""

from __future__ import annotations


class Written(int):
    """A write's answer: the tenant's new revision (an `int`, as every write answered before),
    with how many replicas acknowledged it (`replicas`) of those it waited for (`wanted`;
    0: the store has none, or the embedded store)."""

    replicas: int
    wanted: int

    def __new__(cls, revision: int, replicas: int = 0, wanted: int = 0) -> Written:
        written = super().__new__(cls, revision)
        written.replicas = replicas
        written.wanted = wanted
        return written
