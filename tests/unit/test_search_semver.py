"""Semantic version ranges of the ``version`` search filter."""

from __future__ import annotations

import pytest

from dukenet.errors import InvalidInput
from dukenet.registry.search_semver import parse_range

VERSIONS = [
    "0.1.0", "0.1.5", "0.2.0", "1.0.0-alpha.1", "1.0.0", "1.1.9", "1.2.0-beta.2", "1.2.0",
    "1.2.7", "1.3.0", "1.10.0", "2.0.0-rc.1", "2.0.0", "2.4.1", "10.0.0",
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (">=1.2,<2", ["1.2.0", "1.2.7", "1.3.0", "1.10.0"]),
        (">= 1.2 , < 2", ["1.2.0", "1.2.7", "1.3.0", "1.10.0"]),
        (">1.2", ["1.3.0", "1.10.0", "2.0.0", "2.4.1", "10.0.0"]),
        (">1.2.0", ["1.2.7", "1.3.0", "1.10.0", "2.0.0", "2.4.1", "10.0.0"]),
        ("<=1.2", ["0.1.0", "0.1.5", "0.2.0", "1.0.0", "1.1.9", "1.2.0", "1.2.7"]),
        ("<1", ["0.1.0", "0.1.5", "0.2.0"]),
        ("=1.2.7", ["1.2.7"]),
        ("==1.2.7", ["1.2.7"]),
        ("1.2.7", ["1.2.7"]),
        ("1.2", ["1.2.0", "1.2.7"]),
        ("1.2.x", ["1.2.0", "1.2.7"]),
        ("1.*", ["1.0.0", "1.1.9", "1.2.0", "1.2.7", "1.3.0", "1.10.0"]),
        ("^1.2", ["1.2.0", "1.2.7", "1.3.0", "1.10.0"]),
        ("^0.1.2", ["0.1.5"]),
        ("^0.1", ["0.1.0", "0.1.5"]),
        ("^0", ["0.1.0", "0.1.5", "0.2.0"]),
        ("~1.2", ["1.2.0", "1.2.7"]),
        ("~1", ["1.0.0", "1.1.9", "1.2.0", "1.2.7", "1.3.0", "1.10.0"]),
        (">=1.0,!=1.2.0,<1.3", ["1.0.0", "1.1.9", "1.2.7"]),
        ("*", [v for v in VERSIONS if "-" not in v]),
        # Prereleases only where a comparator on the same version names a prerelease.
        (">=1.2.0-beta.1,<1.3", ["1.2.0-beta.2", "1.2.0", "1.2.7"]),
        (">=2.0.0-rc.0", ["2.0.0-rc.1", "2.0.0", "2.4.1", "10.0.0"]),
        ("=1.0.0-alpha.1", ["1.0.0-alpha.1"]),
        (">=1.10", ["1.10.0", "2.0.0", "2.4.1", "10.0.0"]),  # numbers, not text, compare
    ],
)
def test_range_matches_exactly_the_semver_versions(text: str, expected: list[str]) -> None:
    version_range = parse_range(text)
    assert [v for v in VERSIONS if version_range.matches(v)] == expected


def test_sql_bounds_hold_every_match() -> None:
    for text in (">=1.2,<2", "^0.1.2", "~1.2", "1.2.x", ">1.2", "<=1.2", "=1.2.7", ">=2.0.0-rc.0"):
        version_range = parse_range(text)
        low, high = version_range.core_bounds()
        for version in VERSIONS:
            if version_range.matches(version):
                core = tuple(int(p) for p in version.split("-")[0].split("."))
                assert low is None or core >= low, (text, version)
                assert high is None or core <= high, (text, version)
    assert parse_range(">=1.2,<2").core_bounds() == ((1, 2, 0), (2, 0, 0))
    assert parse_range("*").core_bounds() == (None, None)


def test_equal_ranges_normalize_alike() -> None:
    assert parse_range(">= 1.2, <2").text == parse_range(">=1.2.0,<2.0.0").text
    assert parse_range("^1.2").text == parse_range(">=1.2,<2").text


def test_unparsable_versions_never_match() -> None:
    assert not parse_range(">=0").matches("latest")
    assert not parse_range(">=0").matches(None)


@pytest.mark.parametrize(
    "text", ["", ">=", "banana", ">=1.2,,<2", "<<2", "1.x.3", "x.1", ">1.x.y", "!=1.2", "~",
             ">=1.2.3.4", "^1.2-beta", ">=" + "1" * 300]
)  # fmt: skip
def test_bad_ranges_are_refused_naming_the_parameter(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_range(text)
    assert caught.value.field == "version"
