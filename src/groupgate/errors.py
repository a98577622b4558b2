"""The one exception tree of groupgate; `groupgate.api.problems` maps it to problem+json.

GroupgateError
 +-- PolicyError           a policy file is invalid (file, path, what is wrong)
 +-- InvalidInput          a request or document is malformed or breaks a rule (4xx)
 |    +-- GraphError       a graph document or admin write breaks a rule (path names the entry)
 |    +-- NotFound         an unknown tenant, subject, group, company, ...
 |    +-- Conflict         a concurrent write won; retry
 |         +-- Refused      a commit the spend ledger refuses, with the rule (409)
 +-- AuthError             the caller could not be authenticated (401)
 |    +-- Forbidden        authenticated, but not allowed to do this (403)
 +-- StoreUnavailable      the graph store cannot be reached and the cache is too stale (503)
      +-- NotReplicated    a write applied on the primary, not acknowledged by its replicas in
                           time (503): it may be lost in a failover
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GroupgateError(Exception):
    """Base of every error groupgate raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PolicyError(GroupgateError):
    """A policy file is invalid; the message names the file and the path inside it."""

    title = "Invalid policy"

    def __init__(self, file: str, path: str, message: str) -> None:
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.path = path


class InvalidInput(GroupgateError):
    status = 400
    title = "Invalid request"


class GraphError(InvalidInput):
    """A graph document or admin write breaks a rule; `path` names the offending entry."""

    status = 422
    title = "Graph rule violated"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class NotFound(InvalidInput):
    status = 404
    title = "Not found"


class Conflict(InvalidInput):
    status = 409
    title = "Conflict"


class Refused(Conflict):
    """A purchase commit the spend ledger refuses: `rule` names why (`period_limit_exceeded`,
    `budget_exceeded`, `approval_not_usable`, ...); `extensions` are more problem members."""

    title = "Purchase refused"

    def __init__(self, rule: str, detail: str, extensions: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.rule = rule
        self.extensions: Mapping[str, Any] = extensions or {}


class AuthError(GroupgateError):
    status = 401
    title = "Unauthorized"


class Forbidden(AuthError):
    status = 403
    title = "Forbidden"


class StoreUnavailable(GroupgateError):
    status = 503
    title = "Store unavailable"


class NotReplicated(StoreUnavailable):
    """A write the primary applied (at `revision`) that fewer than `wanted` replicas
    acknowledged within the wait: not acknowledged, since a failover may lose it."""

    title = "Write not replicated"

    def __init__(self, revision: int, replicas: int, wanted: int, wait_ms: int) -> None:
        super().__init__(
            f"applied on the primary at revision {revision}, acknowledged by {replicas} of "
            f"{wanted} replicas within {wait_ms} ms: a failover may lose it; retry the write "
            "(writes are idempotent) or check the revision"
        )
        self.revision = revision
        self.replicas = replicas
        self.wanted = wanted
