"""Resource entities groupgate holds, as the in-process table merges them into checks.

A check or evaluation that names a held resource by type and id gets its attributes from
here: what groupgate holds wins, what the request sends fills only what is not held. The
sidecar keeps every held entity of a tenant in one dictionary keyed by `(type, id)`, loaded
in one script call and dropped whole by a change event that names resources (or by anything
that drops the tenant's cache), so a check on a cached subject stays dictionary look-ups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from groupgate.model import NO_PROPERTIES, Resource, ResourceEntity, frozen_map, new_tuple

_FIELDS = ("company", "vendor", "owner", "customer")


class Held(NamedTuple):
    """A held entity's attributes: each `Resource` field, None where not held."""

    company: str | None
    restrictions: frozenset[str] | None
    vendor: str | None
    owner: str | None
    customer: str | None
    #: Every other attribute (conditions read them as properties).
    properties: Mapping[str, Any]

    def merge(self, sent: Resource) -> Resource:
        """`sent` with the held attributes in place of the sent ones."""
        props = sent.properties
        if self.properties:
            props = frozen_map({**props, **self.properties}) if props else self.properties
        return new_tuple(
            Resource,
            (
                sent.type,
                sent.id,
                sent.company if self.company is None else self.company,
                sent.restrictions if self.restrictions is None else self.restrictions,
                sent.vendor if self.vendor is None else self.vendor,
                sent.owner if self.owner is None else self.owner,
                sent.customer if self.customer is None else self.customer,
                props,
            ),
        )


#: Held entities of one tenant, by (type, id).
Table = dict[tuple[str, str], Held]


def dump(entity: ResourceEntity) -> bytes:
    return orjson.dumps(dict(entity.attributes))


def load(raw: bytes) -> Held:
    """A stored (validated) attribute object as a `Held`."""
    body: dict[str, Any] = orjson.loads(raw)
    restrictions = body.pop("restrictions", None)
    fields = [body.pop(name, None) for name in _FIELDS]
    return Held(
        fields[0],
        None if restrictions is None else frozenset(restrictions),
        fields[1],
        fields[2],
        fields[3],
        frozen_map(body) if body else NO_PROPERTIES,
    )


def document(type_id: str, resource_id: str, raw: bytes) -> dict[str, Any]:
    """The admin API's GET of a held entity."""
    return {"type": type_id, "id": resource_id, "attributes": orjson.loads(raw)}
