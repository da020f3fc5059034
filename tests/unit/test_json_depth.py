"""The depth limit on JSON request bodies (gateway_worker.protocols.json_bodies)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_worker.protocols.json_bodies import MAX_JSON_DEPTH, nested_deeper_than
from gateway_worker.protocols.upstash.parsing import BadRequest, parse_json

JsonValue = object


def depth(value: JsonValue) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


# Strings full of brackets, quotes and backslashes: they must never count as nesting.
tricky_text = st.text(alphabet='[]{}"\\ab', max_size=6)
documents = st.recursive(
    st.one_of(tricky_text, st.integers(), st.none()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=60,
)


@settings(max_examples=400, deadline=None)
@given(documents, st.integers(min_value=0, max_value=40), st.sampled_from([1, 2, 5, 32]))
def test_agrees_with_the_true_depth(doc: JsonValue, wrap: int, limit: int) -> None:
    # Wrapping in more arrays reaches depths above the limits (and past the count fast path).
    value: JsonValue = doc
    for _ in range(wrap):
        value = [value, "]]"]
    body = json.dumps(value).encode()
    assert nested_deeper_than(body, limit) == (depth(value) > limit)


def test_the_issue_body_and_the_edges() -> None:
    assert nested_deeper_than(b"[" * 5000 + b"]" * 5000)
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert not nested_deeper_than(at_limit)
    assert nested_deeper_than(b"[" + at_limit + b"]")
    # Depth without long runs of "[" (each level opens after a sibling).
    zigzag = b"[[]," * 40 + b"1" + b"]" * 40
    assert nested_deeper_than(zigzag) and depth(json.loads(zigzag)) == 41
    big_pipeline = json.dumps([["SET", f"k{i}", "v[{"] for i in range(5000)]).encode()
    assert not nested_deeper_than(big_pipeline)


@pytest.mark.parametrize(
    "body", [b"[" * 5000 + b"]" * 5000, b"[" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000]
)
def test_parse_json_refuses_deep_bodies_with_the_limit_named(body: bytes) -> None:
    with pytest.raises(BadRequest, match="more than 32 levels deep"):
        parse_json(body)


def test_parse_json_still_reads_pipelines_and_numbers() -> None:
    assert parse_json(b'[["SET","k",1.50],["GET","k"]]') == [["SET", "k", "1.50"], ["GET", "k"]]
