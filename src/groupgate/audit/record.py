"""One audit record: what was decided, for whom, by which surface, how fast.

    decision_id, time, surface, tenant, caller, subject, action, type, id, allow, reason,
    revision, latency_ms, request_id

plus `extra` (what only one surface has: a purchase's amount as sent, the gateway's method
and path). Every field is present in every record (null when the surface does not know it),
so the trail can be queried by field across surfaces. On the request path a record is one
tuple; it is turned into JSON by the writer, off the request path.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

#: Decision ids: a random prefix per process and a counter (unique, cheap to make).
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def decision_id() -> str:
    return f"{_PREFIX}-{next(_COUNTER):x}"


class Record(NamedTuple):
    decision_id: str
    time: float
    surface: str
    tenant: str | None
    caller: str | None
    subject: str | None
    action: str | None
    type: str | None
    id: str | None
    allow: bool
    reason: str | None
    revision: int | None
    latency_ms: float
    request_id: str | None
    extra: Mapping[str, Any] | None


def as_dict(record: Record, mask: Collection[str] = ()) -> dict[str, Any]:
    """The record as the JSON object the sinks write; `mask`ed fields become digests
    (`sha256:` and 16 hex digits: records stay correlatable, values are not written)."""
    (decision, moment, surface, tenant, caller, subject, action, kind, rid, allow, reason,
     revision, latency, request_id, extra) = record  # fmt: skip
    # A dictionary display (the field names once, as constants): a third cheaper than
    # `dict(zip(Record._fields, record))`, and the writer makes one per record.
    out = {
        "decision_id": decision,
        "time": _instant(moment),
        "surface": surface,
        "tenant": tenant,
        "caller": caller,
        "subject": subject,
        "action": action,
        "type": kind,
        "id": rid,
        "allow": allow,
        "reason": reason,
        "revision": revision,
        "latency_ms": latency,
        "request_id": request_id,
    }
    if extra:
        for key, value in extra.items():
            out.setdefault(key, value)
    for name in mask:
        value = out.get(name)
        if value is not None:
            digest = hashlib.sha256(str(value).encode()).hexdigest()[:16]
            out[name] = f"sha256:{digest}"
    return out


def _instant(moment: float) -> str:
    """RFC 3339 in UTC to the microsecond (`2027-01-15T08:00:03.000000Z`, truncated); the
    second's part is formatted once per second, not once per record."""
    whole = int(moment)
    global _second, _second_text
    if whole != _second:
        _second = whole
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)) + "%06dZ"
    return _second_text % int((moment - whole) * 1e6)


_second = -1
_second_text = ""


#: Between two records of a batch serialised as one JSON array: a `"` inside a string is
#: always escaped (`\"`), so outside the records' top level this can only occur in a value
#: that is itself a list of objects, which `json_lines` never serialises this way.
_BETWEEN = b'},{"decision_id":'


def json_lines(batch: Sequence[Record], mask: Collection[str] = ()) -> bytes:
    """The records as JSON lines (no newline after the last). One `orjson.dumps` call for the
    whole batch, split between its records: a call per record costs ten times as much (each
    allocates its own output buffer; `benchmarks operations` measures what the trail costs)."""
    dicts = [as_dict(record, mask) for record in batch]
    if not dicts:
        return b""
    if any(record.extra and not _flat(record.extra) for record in batch):
        return b"\n".join(map(orjson.dumps, dicts))
    return orjson.dumps(dicts)[1:-1].replace(_BETWEEN, b'}\n{"decision_id":')


def _flat(extra: Mapping[str, Any]) -> bool:
    return not any(isinstance(value, dict | list | tuple) for value in extra.values())
