"""Pure decision logic: graph validation, compiled profiles, checks, purchases, explain.

No I/O and no asyncio here: plain functions over `groupgate.model` objects. The store feeds
it data and caches its results; the API validates requests before they reach it.
"""

from groupgate.engine.check import check, restriction_filter, some
from groupgate.engine.graph import parse_graph
from groupgate.engine.profile import Profile, compile_profile
from groupgate.engine.purchases import evaluate_purchase
from groupgate.engine.reference import evaluate

__all__ = [
    "Profile",
    "check",
    "compile_profile",
    "evaluate",
    "evaluate_purchase",
    "parse_graph",
    "restriction_filter",
    "some",
]
