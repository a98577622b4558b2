"""groupgate: an authorization sidecar (policy decision point) for B2B commerce."""

__version__ = "0.1.0"
