"""Data along the graph: ``$ref`` resolution with RFC 6901 pointers and output assembly."""

from __future__ import annotations

import pytest

from dukenet.orchestration import inputs, pointers

pytestmark = pytest.mark.timeout(10)


def test_references_anywhere_are_replaced_by_upstream_values() -> None:
    document = {
        "text": {"$ref": "fetch#/body"},
        "list": [1, {"$ref": "task#/items/1"}, {"nested": {"$ref": "fetch#/meta/a~1b"}}],
        "whole": {"$ref": "fetch#"},
        "not_a_ref": {"$ref": "fetch#/body", "other": 1},
    }
    outputs = {"fetch": {"body": "hello", "meta": {"a/b": 7}}}
    resolved = inputs.resolve_input(document, {"items": ["x", "y"]}, outputs)
    assert resolved == {
        "text": "hello",
        "list": [1, "y", {"nested": 7}],
        "whole": {"body": "hello", "meta": {"a/b": 7}},
        "not_a_ref": {"$ref": "fetch#/body", "other": 1},
    }
    assert document["text"] == {"$ref": "fetch#/body"}  # the original is untouched
    assert inputs.referenced_sources(document) == {"fetch"}


def test_a_missing_location_is_a_resolution_error() -> None:
    with pytest.raises(inputs.ResolutionError, match="fetch#/nope"):
        inputs.resolve_input({"x": {"$ref": "fetch#/nope"}}, {}, {"fetch": {"body": 1}})
    with pytest.raises(inputs.ResolutionError):
        inputs.resolve_input({"x": {"$ref": "fetch#/items/5"}}, {}, {"fetch": {"items": [1]}})


def test_output_mappings_build_the_task_output() -> None:
    output = inputs.assemble_output(
        [
            ("a", {"summary": "s", "n": 3}, {"/report/summary": "/summary", "/count": "/n"}),
            ("b", {"tags": ["x", "y"]}, {"/report/first_tag": "/tags/0", "/tags": "/tags"}),
        ]
    )
    assert output == {"report": {"summary": "s", "first_tag": "x"}, "count": 3, "tags": ["x", "y"]}
    assert inputs.assemble_output([("a", {"v": 1}, {"": ""})]) == {"v": 1}
    assert inputs.assemble_output([]) == {}
    with pytest.raises(inputs.ResolutionError, match="nothing at '/missing'"):
        inputs.assemble_output([("a", {"v": 1}, {"/x": "/missing"})])


def test_pointer_helpers() -> None:
    assert pointers.join("/input", "a/b", 0, "c~") == "/input/a~1b/0/c~0"
    assert pointers.parse("/a~1b/c~0") == ["a/b", "c~"]
    assert pointers.assign({"k": [1]}, "/k/-", 2) == {"k": [1, 2]}
    assert pointers.assign(None, "/a/b", 1) == {"a": {"b": 1}}
    with pytest.raises(pointers.PointerError):
        pointers.parse("no-leading-slash")
    with pytest.raises(pointers.PointerError):
        pointers.parse_reference({"$ref": "no-hash"})
    found = pointers.find_references({"a": [{"$ref": "s#/x"}], "b": {"$ref": "task#"}})
    assert [(r.location, r.source, r.pointer) for r in found] == [
        ("/a/0", "s", "/x"),
        ("/b", "task", ""),
    ]
