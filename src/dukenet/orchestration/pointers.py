"""RFC 6901 JSON Pointers and ``{"$ref": "<source>#<pointer>"}`` references in subtask inputs.

Parsing and resolution come from the ``jsonpointer`` library; this module adds the two
things DukeNET needs on top: finding and substituting references anywhere in an input
document, and writing a value at a pointer while creating the objects on its way (output
assembly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpointer

REF_KEY = "$ref"
TASK_SOURCE = "task"


class PointerError(ValueError):
    """A pointer is malformed, or names a location the document does not have.

    ``location`` is, when known, the JSON Pointer of the offending ``$ref`` object.
    """

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location


@dataclass(frozen=True)
class Reference:
    """One ``$ref`` found in an input: where it is, and what it points at."""

    location: str  # JSON Pointer of the ``{"$ref": ...}`` object inside the input
    source: str  # ``task`` or a subtask name
    pointer: str  # RFC 6901 pointer into the source's document


def escape(token: str | int) -> str:
    """One pointer reference token, escaped (``~`` → ``~0``, ``/`` → ``~1``)."""
    return jsonpointer.escape(str(token))


def join(base: str, *tokens: str | int) -> str:
    """``base`` extended by escaped tokens: ``join("/input", "a/b")`` → ``/input/a~1b``."""
    return base + "".join("/" + escape(token) for token in tokens)


def parse(pointer: str) -> list[str]:
    """The unescaped reference tokens of ``pointer`` (``PointerError`` when malformed)."""
    if not isinstance(pointer, str):
        raise PointerError("a JSON Pointer must be a string")
    try:
        return list(jsonpointer.JsonPointer(pointer).parts)
    except jsonpointer.JsonPointerException as exc:
        raise PointerError(f"{pointer!r} is not a JSON Pointer (RFC 6901): {exc}") from exc


def resolve(document: Any, pointer: str) -> Any:
    """The value at ``pointer`` in ``document`` (``PointerError`` when it is not there)."""
    try:
        return jsonpointer.JsonPointer(pointer).resolve(document)
    except jsonpointer.JsonPointerException as exc:
        raise PointerError(f"{pointer!r} does not resolve: {exc}") from exc


def assign(document: Any, pointer: str, value: Any) -> Any:
    """Write ``value`` at ``pointer``, creating missing objects on the way; return the root.

    The empty pointer replaces the whole document. An existing array is indexed by its
    token (``-`` appends); anything else on the way must be an object or missing.
    """
    tokens = parse(pointer)
    if not tokens:
        return value
    root = document if isinstance(document, dict | list) else {}
    node: Any = root
    for position, token in enumerate(tokens):
        last = position == len(tokens) - 1
        if isinstance(node, list):
            if token == "-":
                index = len(node)
            elif token.isdigit() and (token == "0" or not token.startswith("0")):
                index = int(token)
            else:
                raise PointerError(f"{pointer!r}: {token!r} is not an array index")
            if index > len(node):
                raise PointerError(f"{pointer!r}: index {index} is past the end of the array")
            if last:
                if index == len(node):
                    node.append(value)
                else:
                    node[index] = value
                return root
            if index == len(node):
                node.append({})
            if not isinstance(node[index], dict | list):
                node[index] = {}
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[token] = value
                return root
            child = node.get(token)
            if not isinstance(child, dict | list):
                child = node[token] = {}
            node = child
        else:  # pragma: no cover - every step above leaves an object or array
            raise PointerError(f"{pointer!r} crosses a scalar")
    return root


def parse_reference(value: Any) -> tuple[str, str] | None:
    """``(source, pointer)`` when ``value`` is exactly ``{"$ref": "source#pointer"}``."""
    if not isinstance(value, dict) or len(value) != 1 or REF_KEY not in value:
        return None
    target = value[REF_KEY]
    if not isinstance(target, str) or "#" not in target:
        raise PointerError('a "$ref" must be a string "<subtask name or task>#<JSON Pointer>"')
    source, _, pointer = target.partition("#")
    if not source:
        raise PointerError('a "$ref" must name its source before "#" (a subtask or "task")')
    parse(pointer)
    return source, pointer


def find_references(document: Any, location: str = "") -> list[Reference]:
    """Every ``$ref`` object in ``document``, depth first (``PointerError`` with the
    ``location`` of a malformed one)."""
    if isinstance(document, dict):
        if REF_KEY in document and len(document) == 1:
            try:
                parsed = parse_reference(document)
            except PointerError as exc:
                raise PointerError(str(exc), location=location) from exc
            assert parsed is not None
            return [Reference(location, parsed[0], parsed[1])]
        return [
            found
            for key, child in document.items()
            for found in find_references(child, join(location, key))
        ]
    if isinstance(document, list):
        return [
            found
            for index, child in enumerate(document)
            for found in find_references(child, join(location, index))
        ]
    return []


def substitute(document: Any, lookup: Callable[[str, str], Any]) -> Any:
    """A copy of ``document`` with every ``$ref`` replaced by ``lookup(source, pointer)``."""
    reference = parse_reference(document) if isinstance(document, dict) else None
    if reference is not None:
        return lookup(*reference)
    if isinstance(document, dict):
        return {key: substitute(child, lookup) for key, child in document.items()}
    if isinstance(document, list):
        return [substitute(child, lookup) for child in document]
    return document
