"""Input resolution and output assembly: the data flow along the task graph.

When a subtask becomes ready, every ``{"$ref": "<name>#<pointer>"}`` in its input is
replaced by that location of the upstream subtask's output (``task#...``: the task input).
When the task completes, each subtask's ``output_mapping`` (task-output pointer → pointer
into that subtask's output) writes into the task output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from dukenet.orchestration import pointers


class ResolutionError(ValueError):
    """A reference or mapping names a location the upstream document does not have."""


def dump(value: Any) -> str | None:
    """Compact JSON text of a document (``None`` stays ``None``) for text-typed parameters."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def references(document: Any) -> list[pointers.Reference]:
    """Every ``$ref`` in ``document``."""
    return pointers.find_references(document)


def referenced_sources(document: Any) -> set[str]:
    """The subtask names (not ``task``) that the references in ``document`` read from."""
    return {
        reference.source
        for reference in pointers.find_references(document)
        if reference.source != pointers.TASK_SOURCE
    }


def resolve_input(document: Any, task_input: Any, outputs: Mapping[str, Any]) -> Any:
    """``document`` with its references replaced (``ResolutionError`` naming a missing one)."""

    def lookup(source: str, pointer: str) -> Any:
        if source == pointers.TASK_SOURCE:
            upstream = task_input
        elif source in outputs:
            upstream = outputs[source]
        else:
            raise ResolutionError(f"$ref {source}#{pointer}: no output from {source!r}")
        try:
            return pointers.resolve(upstream, pointer)
        except pointers.PointerError as exc:
            raise ResolutionError(f"$ref {source}#{pointer}: {exc}") from exc

    return pointers.substitute(document, lookup)


def assemble_output(mappings: Iterable[tuple[str, Any, Mapping[str, str]]]) -> Any:
    """The task output from ``(subtask name, output, output_mapping)`` in submission order."""
    result: Any = {}
    for name, output, mapping in mappings:
        for target, source in mapping.items():
            try:
                value = pointers.resolve(output, source)
            except pointers.PointerError as exc:
                raise ResolutionError(
                    f"output_mapping of {name!r}: its output has nothing at {source!r}"
                ) from exc
            try:
                result = pointers.assign(result, target, value)
            except pointers.PointerError as exc:
                raise ResolutionError(f"output_mapping of {name!r}: {exc}") from exc
    return result
