"""Stored approval flows <-> model objects (the fields are listed in store/flows.py).

What is stored was validated before it was written; loading trusts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from groupgate.engine.delegations import format_time
from groupgate.model import Flow, FlowApproval, Membership, Tier
from groupgate.store import codec


def load_links(found: Mapping[str, str]) -> tuple[Membership, ...]:
    return tuple(codec.load_link(g, v) for g, v in sorted(found.items()))


def flat(raw: Mapping[Any, Any]) -> list[Any]:
    return [x for kv in raw.items() for x in kv]


def load_flow(flow_id: str, f: Mapping[str, str]) -> Flow:
    tiers = tuple(
        Tier(t["rule"], tuple(tuple(names) for names in t["requires"]))
        for t in orjson.loads(f.get("tiers") or "[]")
    )
    approvals = tuple(
        FlowApproval(
            int(a["tier"]),
            int(a["slot"]),
            a["subject"],
            int(a["time"]),
            a.get("via"),
            a.get("comment"),
        )
        for a in orjson.loads(f.get("approvals") or "[]")
    )
    return Flow(
        id=flow_id,
        status=f["status"],  # type: ignore[arg-type]
        requester=f.get("requester", ""),
        company=f.get("company", ""),
        amount=f.get("amount", ""),
        currency=f.get("currency", ""),
        cart_id=f.get("cart_id", ""),
        cart_hash=f.get("cart_hash", ""),
        cost_center=f.get("cost_center", ""),
        used_by=f.get("used_by", ""),
        rule=f.get("rule", ""),
        tiers=tiers,
        tier=int(f.get("tier") or 0),
        approvals=approvals,
        created=int(f.get("created_ms") or 0),
        expires=int(f.get("expires_ms") or 0),
        comment=f.get("comment", ""),
        ended=int(f["ended_ms"]) if f.get("ended_ms") else None,
        ended_by=f.get("ended_by", ""),
        reason=f.get("reason", ""),
    )


def dump_approvals(approvals: Iterable[FlowApproval]) -> bytes:
    return orjson.dumps(
        [
            {
                "tier": a.tier,
                "slot": a.slot,
                "subject": a.subject,
                "time": a.time,
                "via": a.via,
                "comment": a.comment,
            }
            for a in approvals
        ]
    )


def summary(flow: Flow) -> dict[str, Any]:
    """What an event says of a flow."""
    return {
        "id": flow.id,
        "status": flow.status,
        "requester": flow.requester,
        "company": flow.company,
        "amount": flow.amount,
        "currency": flow.currency,
        "cart_id": flow.cart_id,
        "tier": flow.tier,
        "tiers": len(flow.tiers),
        "expires_at": format_time(flow.expires),
    }
