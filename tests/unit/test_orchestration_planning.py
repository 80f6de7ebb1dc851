"""Static checks of a submitted task graph: every mistake is refused with the JSON Pointer of
the culprit, and a good graph gets its edges both ways."""

from __future__ import annotations

from typing import Any

import pytest

from dukenet.errors import InvalidInput
from dukenet.orchestration.models import parse_submission
from dukenet.orchestration.planning import plan

pytestmark = pytest.mark.timeout(10)


def graph(*subtasks: dict[str, Any], **task: Any) -> dict[str, Any]:
    return {"name": "t", "input": {"url": "u", "items": [1, 2]}, "subtasks": list(subtasks), **task}


def node(name: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "capability": "x.y", "depends_on": list(depends_on), **extra}


def refused(body: dict[str, Any]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        plan(parse_submission(body))
    return caught.value


def test_a_diamond_gets_ids_and_edges_both_ways() -> None:
    planned = plan(
        parse_submission(graph(node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c")))
    )
    by_name = planned.by_name()
    assert by_name["a"].is_root and not by_name["d"].is_root
    assert set(by_name["a"].dependents) == {by_name["b"].subtask_id, by_name["c"].subtask_id}
    assert by_name["d"].depends_on == [by_name["b"].subtask_id, by_name["c"].subtask_id]
    assert [s.position for s in planned.subtasks] == [0, 1, 2, 3]


def test_unknown_depends_on_names_its_position() -> None:
    error = refused(graph(node("a"), node("b", "a"), node("c", "a", "nope")))
    assert error.instance_code == "INVALID_GRAPH"
    assert error.field == "/subtasks/2/depends_on/1"


def test_duplicate_names_and_self_dependencies_are_refused() -> None:
    assert refused(graph(node("a"), node("a"))).field == "/subtasks/1/name"
    assert refused(graph(node("a", "a"))).field == "/subtasks/0/depends_on/0"
    assert refused(graph(node("a"), node("b", "a", "a"))).field == "/subtasks/1/depends_on/1"


def test_a_cycle_is_refused_naming_an_edge_on_it() -> None:
    error = refused(graph(node("a", "c"), node("b", "a"), node("c", "b"), node("z")))
    assert error.instance_code == "INVALID_GRAPH"
    assert error.field is not None and error.field.startswith("/subtasks/")
    index = int(error.field.split("/")[2])
    assert index in (0, 1, 2)
    assert set(error.extra["cycle"]) == {"a", "b", "c"}


def test_references_must_point_at_ancestors_or_the_task_input() -> None:
    ok = graph(
        node("a", input={"u": {"$ref": "task#/url"}}),
        node("b", "a"),
        node("c", "b", input={"deep": [{"x": {"$ref": "a#/out/0"}}]}),
    )
    assert len(plan(parse_submission(ok)).by_name()["c"].references) == 1

    sibling = graph(node("a"), node("b"), node("c", "a", input={"text": {"$ref": "b#/body"}}))
    error = refused(sibling)
    assert error.instance_code == "INVALID_REFERENCE"
    assert error.field == "/subtasks/2/input/text/$ref"

    descendant = graph(node("a", input={"v": {"$ref": "b#/x"}}), node("b", "a"))
    assert refused(descendant).field == "/subtasks/0/input/v/$ref"

    unknown = graph(node("a", input=[{"$ref": "ghost#/x"}]))
    assert refused(unknown).field == "/subtasks/0/input/0/$ref"

    missing = graph(node("a", input={"v": {"$ref": "task#/nothing/here"}}))
    assert refused(missing).field == "/subtasks/0/input/v/$ref"

    malformed = graph(node("a", input={"v": {"$ref": "task#no-slash"}}))
    assert refused(malformed).instance_code == "INVALID_REFERENCE"


def test_escaped_keys_appear_escaped_in_the_pointer() -> None:
    body = graph(node("a"), node("b", input={"a/b": {"c~d": {"$ref": "a#/x"}}}))
    assert refused(body).field == "/subtasks/1/input/a~1b/c~0d/$ref"


def test_overlapping_output_mappings_are_refused() -> None:
    body = graph(
        node("a", output_mapping={"/result": "/x"}),
        node("b", output_mapping={"/result/inner": "/y"}),
    )
    assert refused(body).field == "/subtasks/1/output_mapping/~1result~1inner"
    same = graph(node("a", output_mapping={"/r": "/x"}), node("b", output_mapping={"/r": "/y"}))
    assert refused(same).field == "/subtasks/1/output_mapping/~1r"
    fine = graph(node("a", output_mapping={"/r/a": "/x"}), node("b", output_mapping={"/r/b": "/y"}))
    plan(parse_submission(fine))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "t", "subtasks": []}, "/subtasks"),
        ({"name": "t", "subtasks": [{"name": "task", "capability": "x"}]}, "/subtasks/0/name"),
        ({"name": "t", "subtasks": [{"name": "a#b", "capability": "x"}]}, "/subtasks/0/name"),
        (
            {"name": "t", "subtasks": [{"name": "a", "capability": "Bad Name"}]},
            "/subtasks/0/capability",
        ),
        ({"name": "t", "cost_limit": "0.00001", "subtasks": [node("a")]}, "/cost_limit"),
        ({"name": "t", "priority": "URGENT", "subtasks": [node("a")]}, "/priority"),
        ({"name": "t", "deadline": "2030-01-01T00:00:00", "subtasks": [node("a")]}, "/deadline"),
        ({"name": "t", "subtasks": [node("a", agent_id="short")]}, "/subtasks/0/agent_id"),
        (
            {"name": "t", "subtasks": [node("a", constraints={"min_trust": 101})]},
            "/subtasks/0/constraints/min_trust",
        ),
        (
            {"name": "t", "subtasks": [node("a", output_mapping={"x": "/y"})]},
            "/subtasks/0/output_mapping/x/[key]",
        ),
        ({"name": "t", "extra": 1, "subtasks": [node("a")]}, "/extra"),
    ],
)
def test_malformed_bodies_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_submission(body)
    assert caught.value.field == field
