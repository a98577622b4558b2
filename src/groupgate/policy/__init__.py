"""Policy data: loading and validating `policies/*.yaml` into a `Catalog`, routes, lint."""

from groupgate.policy.loader import load_policy
from groupgate.policy.routes import RouteTable

__all__ = ["RouteTable", "load_policy"]
