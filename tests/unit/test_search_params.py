"""Search parameters: normalized so equal searches share cache entries, refused with the
parameter's name when wrong; cursors that cannot be forged or moved to another search."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dukenet.errors import InvalidInput
from dukenet.registry.search_cursor import decode_cursor, encode_cursor
from dukenet.registry.search_params import parse_search_query


def test_equal_searches_written_differently_hash_equal() -> None:
    one = parse_search_query(
        name=" Text.Summarize ", tags=["NLP", "eu,fast"], min_trust=Decimal("60.00"),
        max_price="0.10", currency="usd", accepts='{"b": 1, "a": [1, 2]}', q="  fast   text ",
    )  # fmt: skip
    two = parse_search_query(
        name="text.summarize", tags=["fast", "eu", "nlp", "nlp"], min_trust=60,
        max_price=Decimal("0.1"), currency="USD", accepts='{"a":[1,2],"b":1}', q="fast text",
    )  # fmt: skip
    assert one.digest == two.digest
    assert one.fingerprint == two.fingerprint
    assert one.tags == ("eu", "fast", "nlp")
    assert (one.name, one.currency, one.q) == ("text.summarize", "USD", "fast text")


def test_page_changes_the_cache_key_but_not_the_cursor_fingerprint() -> None:
    first = parse_search_query(name="a.b")
    bigger = parse_search_query(name="a.b", limit=50)
    later = parse_search_query(name="a.b", cursor="x.y")
    assert len({first.digest, bigger.digest, later.digest}) == 3
    assert first.fingerprint == bigger.fingerprint == later.fingerprint
    assert parse_search_query(name="a.b", sort="price").fingerprint != first.fingerprint


def test_name_prefix_and_defaults() -> None:
    query = parse_search_query(name="text.*")
    assert (query.name, query.name_prefix) == (None, "text.")
    assert (query.status, query.fresh_heartbeat, query.include_deprecated) == (
        "ACTIVE",
        True,
        False,
    )
    assert (query.sort, query.limit) == ("trust", 20)
    assert not query.post_filtered
    assert parse_search_query(accepts="null").post_filtered
    assert parse_search_query(version="^1").post_filtered


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": "Has Spaces"}, "name"),
        ({"name": "text.*.*"}, "name"),
        ({"q": "x" * 257}, "q"),
        ({"tags": ["ok", ""]}, None),  # empty parts are skipped, not refused
        ({"tags": ["t" * 101]}, "tags"),
        ({"tags": [f"t{i}" for i in range(33)]}, "tags"),
        ({"min_trust": "abc"}, "min_trust"),
        ({"min_trust": 100.5}, "min_trust"),
        ({"min_trust": "NaN"}, "min_trust"),
        ({"max_price": "1"}, "currency"),
        ({"max_price": "-0.01", "currency": "USD"}, "max_price"),
        ({"currency": "us"}, "currency"),
        ({"pricing_model": "free-ish"}, "pricing_model"),
        ({"max_latency_ms": 0}, "max_latency_ms"),
        ({"min_availability": 101}, "min_availability"),
        ({"version": "one"}, "version"),
        ({"status": "SUSPENDED"}, "status"),
        ({"status": "GONE"}, "status"),
        ({"accepts": "{"}, "accepts"),
        ({"accepts": "Infinity"}, "accepts"),
        ({"accepts": '"' + "x" * 20_000 + '"'}, "accepts"),
        ({"accepts": "9007199254740993"}, "accepts"),  # not interoperable JSON (RFC 8785)
        ({"sort": "newest"}, "sort"),
        ({"sort": "relevance"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], field: str | None) -> None:
    if field is None:
        assert parse_search_query(**params).tags == ("ok",)
        return
    with pytest.raises(InvalidInput) as caught:
        parse_search_query(**params)
    assert caught.value.field == field


KEY = b"k" * 32


def test_cursor_round_trip_and_tampering() -> None:
    position = ["-90.00", "0.0500", "ab" * 32]
    cursor = encode_cursor(KEY, "fp", position)
    assert decode_cursor(KEY, "fp", cursor) == position
    payload, tag = cursor.split(".")
    for bad in (
        payload + "." + tag[:-1] + ("A" if tag[-1] != "A" else "B"),
        payload[:-1] + "." + tag,
        encode_cursor(b"j" * 32, "fp", position),
        cursor + ".x",
        "",
        "%%%.%%%",
    ):
        with pytest.raises(InvalidInput) as caught:
            decode_cursor(KEY, "fp", bad)
        assert caught.value.field == "cursor"
    with pytest.raises(InvalidInput, match="other filters"):
        decode_cursor(KEY, "another query", cursor)
