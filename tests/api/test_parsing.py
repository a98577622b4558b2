"""The JSON safety pass of `parsing.loads`: depth, numbers and duplicate keys, at the edges.

The fast paths (a level-by-level walk, counting `":` with `bytes.count`) are checked against a
slow oracle: the standard library's parser with a duplicate-refusing hook and a recursive
depth count, on generated documents whose separators are compact or spaced at random and
whose string values hold colons and quotes.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groupgate.api import parsing
from groupgate.api.problems import InvalidJson

DEPTH = 8


def nested(depth: int, *, lists: bool = False) -> bytes:
    """A document whose innermost container sits `depth` levels deep."""
    if lists:
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * (depth - 1) + b'{"b":1' + b"}" * depth


@pytest.mark.parametrize("lists", [False, True])
def test_depth_limit_is_exact(lists: bool) -> None:
    parsing.loads(nested(DEPTH, lists=lists), DEPTH)
    with pytest.raises(InvalidJson, match=f"deeper than {DEPTH} levels"):
        parsing.loads(nested(DEPTH + 1, lists=lists), DEPTH)


def test_depth_counts_the_deepest_branch_only() -> None:
    wide = {"x": [[1], [2]], "y": {"z": [[[3]]]}}  # deepest: y -> z -> [ -> [ -> [ = 5
    parsing.loads(json.dumps(wide).encode(), 5)
    with pytest.raises(InvalidJson, match="deeper than 4"):
        parsing.loads(json.dumps(wide).encode(), 4)


@pytest.mark.parametrize(
    "body",
    [b"9223372036854775808", b"[-9223372036854775808]", b'{"a":[1,1e300]}', b'{"a":1e19}'],
)
def test_numbers_out_of_range_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidJson, match="out of range"):
        parsing.loads(body, DEPTH)


def test_numbers_in_range_pass() -> None:
    assert parsing.loads(b"[9223372036854775807,-9223372036854775807,1.5]", DEPTH)[0] == 2**63 - 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":2}',
        b'{"a" :1,"a":2}',
        b'{"a":1,\n "a"\t:2}',
        b'{"x":"u:v","a":1,"a":2}',  # a colon in a value: the regex counts
        b'{"x":"\\":","a":1,"a":2}',  # an escaped quote and a colon in a value
        b'{"b":1,"c":{"a":1,"a":1}}',
    ],
)
def test_duplicate_keys_are_named(body: bytes) -> None:
    with pytest.raises(InvalidJson, match="duplicate key 'a'"):
        parsing.loads(body, DEPTH)


@pytest.mark.parametrize(
    "body",
    [b'{"a":"x\\":y"}', b'{"a":"\\":\\":"}', b'{"a" : 1, "b" : "c:d"}', b'["a:b","c\\":"]'],
)
def test_look_alikes_in_values_are_not_duplicates(body: bytes) -> None:
    assert parsing.loads(body, DEPTH) == json.loads(body)


# --------------------------------------------------------------------------- the oracle

KEYS = st.sampled_from(["a", "b", "c:d", 'q"', "k"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["x", "", 'say ":"', "a:b", '"', "\\"]),
)


def _pairs(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Objects as lists of pairs so that duplicates can be written.
    return st.lists(st.tuples(KEYS, children), max_size=4).map(Pairs)


class Pairs(list[tuple[str, Any]]):
    """An object written pair by pair (duplicates kept)."""


DOCS = st.recursive(SCALARS, lambda c: st.one_of(st.lists(c, max_size=4), _pairs(c)), max_leaves=25)


def write(value: Any, rng: random.Random) -> str:
    """Write `value` as JSON, each separator compact or spaced at random."""

    def sep(compact: str, spaced: str) -> str:
        return spaced if rng.random() < 0.3 else compact

    if isinstance(value, Pairs):
        inner = sep(",", " ,\n ").join(
            f"{json.dumps(k)}{sep(':', ' : ')}{write(v, rng)}" for k, v in value
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + sep(",", ", ").join(write(v, rng) for v in value) + "]"
    return json.dumps(value)


def broken_rules(body: bytes, max_depth: int) -> set[str]:
    """The slow, obvious answer: which rules the document breaks (empty: acceptable).

    Depth and numbers are judged on the document as parsed (the last of duplicate keys
    wins, as with orjson); duplicates on the text.
    """
    broken: set[str] = set()

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            broken.add("duplicate key")
        return dict(items)

    json.loads(body, object_pairs_hook=pairs)
    value = json.loads(body)

    def depth(v: Any) -> int:
        if isinstance(v, dict):
            return 1 + max((depth(c) for c in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((depth(c) for c in v), default=0)
        return 0

    def big(v: Any) -> bool:
        if isinstance(v, dict):
            return any(big(c) for c in v.values())
        if isinstance(v, list):
            return any(big(c) for c in v)
        return type(v) is int and not -(2**63) < v < 2**63

    if depth(value) > max_depth:
        broken.add("nested deeper")
    if big(value):
        broken.add("out of range")
    return broken


@settings(max_examples=400, deadline=None)
@given(doc=DOCS, rng=st.randoms(use_true_random=False), max_depth=st.integers(1, 5))
def test_loads_agrees_with_the_oracle(doc: Any, rng: random.Random, max_depth: int) -> None:
    body = write(doc, rng).encode()
    broken = broken_rules(body, max_depth)
    if not broken:
        assert parsing.loads(body, max_depth) == json.loads(body)
        return
    with pytest.raises(InvalidJson) as refused:
        parsing.loads(body, max_depth)
    # Several rules may be broken at once; the refusal names one of them.
    assert any(rule in refused.value.detail for rule in broken), (refused.value.detail, broken)
