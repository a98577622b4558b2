"""Native check API (SPEC section 4): allowed, denied, explain, batches, filter, tenancy."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from groupgate.api import native, parsing
from groupgate.api.app import valid_actions
from groupgate.api.problems import InvalidJson
from groupgate.errors import InvalidInput
from groupgate.policy import load_policy
from tests.api import mutations
from tests.api.conftest import POLICIES

Client = TestClient[Any, Any]


def order(*restrictions: str, **extra: Any) -> dict[str, Any]:
    return {"type": "orders", "id": "o-17", "restrictions": list(restrictions), **extra}


async def check(client: Client, body: dict[str, Any], **kw: Any) -> tuple[int, Any]:
    response = await client.post("/v1/check", json=body, **kw)
    return response.status, await response.json(content_type=None)


async def test_allowed_with_reason_and_revision(demo: Client) -> None:
    status, body = await check(
        demo, {"subject": {"id": "emp-de"}, "action": "update", "resource": order("DE")}
    )
    assert status == 200
    assert body["allow"] is True
    assert "de-fulfillment" in body["reason"]
    assert body["group"] == "de-fulfillment"
    assert isinstance(body["revision"], int) and body["revision"] >= 1
    assert "explain" not in body and "stale" not in body


async def test_denied_outside_restriction(demo: Client) -> None:
    status, body = await check(
        demo, {"subject": {"id": "emp-de"}, "action": "update", "resource": order("US")}
    )
    assert status == 200 and body["allow"] is False
    assert body["reason"]


async def test_union_read_everything_manage_only_restricted(demo: Client) -> None:
    base = {"tenant": "demo", "subject": {"id": "emp-mixed"}}
    _, read_us = await check(demo, {**base, "action": "read", "resource": order("US")})
    _, update_us = await check(demo, {**base, "action": "update", "resource": order("US")})
    _, update_de = await check(demo, {**base, "action": "update", "resource": order("DE")})
    assert (read_us["allow"], update_us["allow"], update_de["allow"]) == (True, False, True)


async def test_unknown_subject_is_a_deny_not_an_error(demo: Client) -> None:
    status, body = await check(
        demo, {"subject": {"id": "nobody"}, "action": "read", "resource": order("DE")}
    )
    assert status == 200 and body["allow"] is False
    assert "nobody" in body["reason"]


async def test_explain_trace_on_request(demo: Client) -> None:
    status, body = await check(
        demo,
        {
            "subject": {"id": "emp-de"},
            "action": "update",
            "resource": order("US"),
            "explain": True,
        },
    )
    assert status == 200 and body["allow"] is False
    assert isinstance(body["explain"], list) and body["explain"]
    assert any("de-fulfillment" in line for line in body["explain"])


async def test_customer_group_scoped_to_its_company(demo: Client) -> None:
    base = {"subject": {"id": "cust-admin"}, "action": "read"}
    _, own = await check(demo, {**base, "resource": {"type": "orders", "company": "c-parent"}})
    _, sub = await check(demo, {**base, "resource": {"type": "orders", "company": "c-sub"}})
    assert own["allow"] is True and sub["allow"] is False


async def test_batch_inherits_top_level_fields_and_keeps_order(demo: Client) -> None:
    response = await demo.post(
        "/v1/checks",
        json={
            "tenant": "demo",
            "subject": {"id": "emp-de"},
            "action": "update",
            "checks": [
                {"resource": order("DE")},
                {"resource": order("US")},
                {"resource": order("US"), "subject": {"id": "emp-us"}},
                {"resource": order("DE"), "action": "read", "subject": {"id": "emp-viewer"}},
                {"resource": order("DE"), "action": "delete", "subject": {"id": "emp-viewer"}},
            ],
        },
    )
    assert response.status == 200
    results = (await response.json())["results"]
    assert [r["allow"] for r in results] == [True, False, True, True, False]
    assert all(isinstance(r["revision"], int) for r in results)


async def test_empty_batch(demo: Client) -> None:
    response = await demo.post("/v1/checks", json={"checks": []})
    assert response.status == 200 and await response.json() == {"results": []}


async def test_batch_item_error_names_the_item(demo: Client) -> None:
    response = await demo.post(
        "/v1/checks",
        json={
            "subject": {"id": "emp-de"},
            "action": "update",
            "checks": [{"resource": order("DE")}, {"resource": {"type": "nope"}}],
        },
    )
    assert response.status == 422
    assert "checks[1].resource.type" in (await response.json(content_type=None))["detail"]


async def test_consistency_token_in_body_and_header(demo: Client) -> None:
    body = {"subject": {"id": "emp-de"}, "action": "update", "resource": order("DE")}
    status, answer = await check(demo, {**body, "min_revision": 1})
    assert status == 200 and answer["allow"] is True
    status, _ = await check(demo, body, headers={"X-Groupgate-Min-Revision": "1"})
    assert status == 200
    # A revision the store has not reached is a conflict, never a guess.
    status, problem = await check(demo, {**body, "min_revision": 10**9})
    assert status == 409 and problem["status"] == 409
    status, _ = await check(demo, body, headers={"X-Groupgate-Min-Revision": "x"})
    assert status == 422


async def test_revoked_permission_is_not_used_after_write(demo: Client) -> None:
    body = {"subject": {"id": "emp-de"}, "action": "update", "resource": order("DE")}
    _, before = await check(demo, body)
    assert before["allow"] is True
    response = await demo.delete(
        "/v1/admin/tenants/demo/subjects/emp-de/memberships/de-fulfillment"
    )
    assert response.status == 200
    revision = (await response.json())["revision"]
    _, after = await check(demo, {**body, "min_revision": revision})
    assert after["allow"] is False and after["revision"] >= revision


async def test_filter_all_none_and_restricted(demo: Client) -> None:
    async def filter_(subject: str, action: str, type_id: str) -> Any:
        response = await demo.post(
            "/v1/filter",
            json={"subject": {"id": subject}, "action": action, "resource_type": type_id},
        )
        assert response.status == 200
        return await response.json()

    viewer = await filter_("emp-viewer", "read", "orders")
    assert viewer["all"] is True and viewer["filters"] == []
    none = await filter_("emp-viewer", "update", "orders")
    assert none["all"] is False and none["filters"] == []
    restricted = await filter_("emp-de", "update", "orders")
    assert restricted["all"] is False
    assert restricted["filters"] == [
        {"restrictions": ["DE"], "attributes": {}, "group": "de-fulfillment"}
    ]
    customer = await filter_("cust-admin", "read", "orders")
    assert {"company": ["c-parent"]} in [f["attributes"] for f in customer["filters"]]
    assert isinstance(customer["revision"], int)


async def test_filter_unknown_type(demo: Client) -> None:
    response = await demo.post(
        "/v1/filter", json={"subject": {"id": "emp-de"}, "action": "read", "resource_type": "x"}
    )
    assert response.status == 422


async def test_unknown_tenant_is_404(demo: Client) -> None:
    status, body = await check(
        demo,
        {"tenant": "nope", "subject": {"id": "emp-de"}, "action": "read", "resource": order()},
    )
    assert status == 404 and body["title"] == "Not found"
    assert "nope" in body["detail"]


async def test_named_action_must_exist_on_type(demo: Client) -> None:
    status, body = await check(
        demo,
        {"subject": {"id": "emp-catalog"}, "action": "publish", "resource": {"type": "orders"}},
    )
    assert status == 422 and "publish" in body["detail"]
    status, body = await check(
        demo,
        {"subject": {"id": "emp-catalog"}, "action": "read", "resource": {"type": "media"}},
    )
    assert status == 200 and body["allow"] is True


# --------------------------------------------------------------------------- sealed bodies

ACTIONS = valid_actions(load_policy(POLICIES))
STATE: Any = type("State", (), {"actions": ACTIONS})()
SEALED: dict[str, Any] = {
    "tenant": "t1",
    "subject": {"id": "emp1", "type": "user"},
    "action": "read",
    "resource": {
        "type": "orders",
        "id": "o1",
        "company": "c1",
        "vendor": "v1",
        "owner": "a@b",
        "customer": "cust1",
        "restrictions": ["DE"],
    },
    "explain": False,
    "min_revision": 3,
}
PLACES = [
    ("tenant",),
    ("subject",),
    ("subject", "id"),
    ("subject", "type"),
    ("subject", "properties"),
    ("action",),
    ("resource",),
    *(("resource", f) for f in ("type", "id", "company", "vendor", "owner", "customer")),
    ("resource", "restrictions"),
    ("resource", "properties"),
    ("resource", "extra"),
    ("context",),
    ("explain",),
    ("min_revision",),
    ("extra",),
]
# Values at the edges of the rules, valid or not, for any place.
EDGES = [
    mutations.ABSENT,
    None,
    "",
    "emp2",
    "x" * 128,
    "x" * 129,
    "x" * 256,
    "x" * 257,
    "t1\n",
    "bad id",
    0,
    -1,
    7,
    2**63 - 1,
    2**63,
    -(2**63),
    1e300,
    0.5,
    True,
    False,
    [],
    ["DE", "DE"],
    ["DE", 1],
    ["x"] * 256,
    ["x"] * 257,
    [[["deep"]]],
    {},
    {"id": "emp3"},
    {"a": {"b": {"c": {"d": 1}}}},
    "update",
    "approve",
    "publish",
    "carts",
    "products",
]
HEADERS = [None, "5", "x", "-1", "9" * 19]


def mutated(changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    return mutations.mutated(changes, SEALED)


def outcome(read: Any) -> Any:
    try:
        return read()
    except InvalidInput as exc:
        return type(exc), str(exc)


def reference(body: bytes, depth: int, header: str | None) -> Any:
    """The plain way, step by step: safety pass, fields, question, flags, tenant."""
    item = parsing.expect_object(parsing.loads(body, depth))
    parsing.only(item, native.CHECK_FIELDS, "")
    subject, action, resource = native.question(STATE, item, "")
    explain = parsing.boolean(item.get("explain"), "explain")
    min_rev = parsing.revision(item.get("min_revision"), header)
    tenant = native.tenant_field(item.get("tenant"))
    return native.CheckQuestion(subject, action, resource, explain, min_rev, tenant)


def same_verdict(body: bytes, depth: int = 32, header: str | None = None) -> bool:
    """Assert `read_check` answers `body` as the reference does; True when it was sealed."""
    value = parsing.decode(body)
    fast = outcome(lambda: native.read_check(STATE, body, value, depth, header))
    assert fast == outcome(lambda: reference(body, depth, header)), body
    sealed = native._sealed(ACTIONS, value)
    return sealed is not None and parsing.raw_keys(body) == sealed[1]


@pytest.mark.parametrize("place", PLACES, ids="/".join)
def test_read_check_agrees_at_every_edge(place: tuple[str, ...]) -> None:
    for value in EDGES:
        same_verdict(orjson.dumps(mutated([(place, value)])))


@settings(max_examples=600, deadline=None)
@given(
    changes=st.lists(st.tuples(st.sampled_from(PLACES), st.sampled_from(EDGES)), max_size=4),
    depth=st.sampled_from([4, 5, 32]),
    header=st.sampled_from(HEADERS),
    duplicate=st.sampled_from([None, b'"id":', b'"type":', b'"action":', b'"tenant":']),
    spaced=st.booleans(),
)
def test_read_check_agrees_on_mixed_changes(
    changes: list[tuple[tuple[str, ...], Any]],
    depth: int,
    header: str | None,
    duplicate: bytes | None,
    spaced: bool,
) -> None:
    body = orjson.dumps(mutated(changes), option=orjson.OPT_INDENT_2 if spaced else 0)
    if duplicate is not None and not spaced:  # repeat a key with a string value
        body = body.replace(duplicate, duplicate + b'"dup",' + duplicate, 1)
    same_verdict(body, depth, header)


def test_the_common_shapes_are_sealed() -> None:
    assert same_verdict(orjson.dumps(SEALED))
    assert same_verdict(orjson.dumps(SEALED), header="9")
    bare = {"subject": "emp1", "action": "read", "resource": {"type": "orders"}}
    assert same_verdict(orjson.dumps(bare))
    found = native.read_check(STATE, orjson.dumps(SEALED), SEALED, 32, None)
    assert found.resource.restrictions == frozenset({"DE"}) and found.min_revision == 3
    # Not sealed, so walked and precise: a context, properties, a null.
    for changes in (
        [(("context",), {})],
        [(("resource", "properties"), {})],
        [(("tenant",), None)],
    ):
        assert not same_verdict(orjson.dumps(mutated(changes)))


def test_a_duplicate_key_in_a_sealed_body_is_found() -> None:
    body = orjson.dumps(SEALED).replace(b'"type":"orders"', b'"type":"orders","type":"orders"')
    with pytest.raises(InvalidJson, match="duplicate key 'type'"):
        native.read_check(STATE, body, parsing.decode(body), 32, None)


async def test_an_id_with_a_trailing_newline_is_refused(demo: Client) -> None:
    body = {"tenant": "demo\n", "subject": "emp-de", "action": "read", "resource": order()}
    status, problem = await check(demo, body)
    assert status == 422 and "invalid id" in problem["detail"]
