"""JSON Schema (Draft 2020-12) checks with compiled validators cached by schema text.

Building a validator costs far more than using one, and the same few capability schemas
are checked on every claim and completion, so validators are kept in a bounded LRU cache.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from dukenet.errors import SchemaInvalid
from dukenet.orchestration import pointers


@lru_cache(maxsize=1024)
def _validator(schema_text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_text))


def validator_for(schema: Any) -> Draft202012Validator:
    """A compiled validator for ``schema`` (cached)."""
    return _validator(json.dumps(schema, sort_keys=True, separators=(",", ":")))


@lru_cache(maxsize=1024)
def _schema_problem(schema_text: str) -> str | None:
    try:
        Draft202012Validator.check_schema(json.loads(schema_text))
    except SchemaError as exc:
        return str(exc.message)
    return None


def check_schema(schema: Any, *, field: str) -> None:
    """``SchemaInvalid`` naming ``field`` unless ``schema`` is a valid Draft 2020-12 schema
    (the verdict on a schema text is cached: clients submit the same schemas again)."""
    problem = _schema_problem(json.dumps(schema, sort_keys=True, separators=(",", ":")))
    if problem is not None:
        raise SchemaInvalid(f"not a valid JSON Schema (Draft 2020-12): {problem}", field=field)


def first_error(schema: Any, document: Any) -> tuple[str, str] | None:
    """``(pointer, message)`` of the first way ``document`` breaks ``schema``, or ``None``."""
    error = next(iter(validator_for(schema).iter_errors(document)), None)
    if error is None:
        return None
    return pointers.join("", *error.absolute_path), error.message


def is_valid(schema: Any, document: Any) -> bool:
    """Whether ``document`` validates against ``schema``."""
    return bool(validator_for(schema).is_valid(document))


def validate(schema: Any, document: Any, *, field: str) -> None:
    """``SchemaInvalid`` naming the failing location under ``field`` unless it validates."""
    found = first_error(schema, document)
    if found is not None:
        where, message = found
        raise SchemaInvalid(f"{field or '/'}{where}: {message}", field=f"{field}{where}")
